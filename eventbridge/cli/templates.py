"""``template``, ``cluster-template`` and ``cron`` command groups over the API."""

from __future__ import annotations

import click

from eventbridge.cli.common import (
    Client,
    age,
    namespace_option,
    output_option,
    print_object,
    read_documents,
    server_option,
)


def _group(name: str, kind: str, path: str, body_key: str, *, cluster: bool = False) -> click.Group:
    """A CRUD group (create/get/list/delete/lint) for one stored kind."""

    def base(namespace: str) -> str:
        return path if cluster else f"{path}/{namespace}"

    @click.group(name=name, help=f"Manage {kind}s.")
    def group() -> None:
        pass

    @group.command(name="create")
    @click.argument("files", nargs=-1, required=True)
    @output_option
    @server_option
    @namespace_option
    def create(files: tuple[str, ...], output: str | None, server: str, namespace: str) -> None:
        """Create from FILES."""
        client = Client(server)
        for file in files:
            for obj in read_documents(file):
                if obj.get("kind") != kind:
                    continue
                ns = (obj.get("metadata") or {}).get("namespace") or namespace
                created = client.request("POST", base(ns), {body_key: obj})
                if output:
                    print_object(created, output)
                else:
                    click.echo(f"{kind} {created['metadata']['name']} created")

    @group.command(name="get")
    @click.argument("name")
    @output_option
    @server_option
    @namespace_option
    def get(name: str, output: str | None, server: str, namespace: str) -> None:
        """Show one."""
        print_object(Client(server).request("GET", f"{base(namespace)}/{name}"), output or "yaml")

    @group.command(name="list")
    @output_option
    @server_option
    @namespace_option
    def list_(output: str | None, server: str, namespace: str) -> None:
        """List them."""
        items = Client(server).request("GET", base(namespace))["items"] or []
        if output in ("json", "yaml", "name"):
            print_object(items, output)
            return
        if kind == "CronWorkflow":
            click.echo(f"{'NAME':<40} {'AGE':<6} {'LAST RUN':<9} {'SCHEDULES':<30} SUSPENDED")
            for item in items:
                spec, status = item.get("spec") or {}, item.get("status") or {}
                schedules = ",".join(spec.get("schedules") or [spec.get("schedule", "")])
                click.echo(
                    f"{item['metadata']['name']:<40} {age(item['metadata'].get('creationTimestamp')):<6} "
                    f"{age(status.get('lastScheduledTime')):<9} {schedules:<30} {bool(spec.get('suspend'))}"
                )
            return
        click.echo(f"{'NAME':<48} AGE")
        for item in items:
            click.echo(f"{item['metadata']['name']:<48} {age(item['metadata'].get('creationTimestamp'))}")

    @group.command(name="delete")
    @click.argument("names", nargs=-1, required=True)
    @server_option
    @namespace_option
    def delete(names: tuple[str, ...], server: str, namespace: str) -> None:
        """Delete them."""
        client = Client(server)
        for name in names:
            client.request("DELETE", f"{base(namespace)}/{name}")
            click.echo(f"{kind} '{name}' deleted")

    @group.command(name="lint")
    @click.argument("files", nargs=-1, required=True)
    @server_option
    @namespace_option
    def lint(files: tuple[str, ...], server: str, namespace: str) -> None:
        """Lint FILES on the server."""
        client = Client(server)
        for file in files:
            for obj in read_documents(file):
                if obj.get("kind") == kind:
                    client.request("POST", f"{base(namespace)}/lint", {body_key: obj})
                    click.echo(f"{file}: {kind} {obj.get('metadata', {}).get('name', '')} is valid")

    if kind == "CronWorkflow":
        for action in ("suspend", "resume"):
            group.add_command(_cron_action(action))
    return group


def _cron_action(action: str) -> click.Command:
    @click.command(name=action, help=f"{action.capitalize()} cron workflows.")
    @click.argument("names", nargs=-1, required=True)
    @server_option
    @namespace_option
    def command(names: tuple[str, ...], server: str, namespace: str) -> None:
        client = Client(server)
        for name in names:
            client.request("PUT", f"/api/v1/cron-workflows/{namespace}/{name}/{action}", {})
            click.echo(f"CronWorkflow '{name}' {action}{'d' if action == 'resume' else 'ed'}")

    return command


COMMANDS = [
    _group("template", "WorkflowTemplate", "/api/v1/workflow-templates", "template"),
    _group(
        "cluster-template",
        "ClusterWorkflowTemplate",
        "/api/v1/cluster-workflow-templates",
        "template",
        cluster=True,
    ),
    _group("cron", "CronWorkflow", "/api/v1/cron-workflows", "cronWorkflow"),
]
