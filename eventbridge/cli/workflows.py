"""Workflow commands over the API, with argo's verbs and flags."""

from __future__ import annotations

import sys
import time
from typing import Any

import click

from eventbridge.cli.common import (
    FINISHED,
    Client,
    age,
    apply_params,
    fail,
    namespace_option,
    output_option,
    parse_params,
    phase,
    print_object,
    query,
    read_one,
    server_option,
    summary,
)


def _path(namespace: str, name: str = "", action: str = "") -> str:
    path = f"/api/v1/workflows/{namespace}"
    if name:
        path += f"/{name}"
    if action:
        path += f"/{action}"
    return path


def wait_for(client: Client, namespace: str, name: str, *, show: bool = False) -> Any:
    """Poll until the workflow finished; with ``show`` redraw its tree on the terminal."""
    delay = 0.05
    while True:
        current = client.request("GET", _path(namespace, name))
        if show:
            click.clear()
            click.echo(summary(current))
        if phase(current) in FINISHED:
            return current
        time.sleep(delay)
        delay = min(delay * 2, 1.0)


@click.command()
@click.argument("file", required=False)
@click.option("--from", "from_", default="", help="Submit from KIND/NAME: workflowtemplate/x, cronwf/y, ...")
@click.option("-p", "--parameter", "params", multiple=True, help="NAME=VALUE workflow argument (repeatable).")
@click.option("-l", "--labels", default="", help="Labels to add: key=value,...")
@click.option("--wait", is_flag=True, help="Wait for the workflow to finish; exit 1 unless it Succeeded.")
@click.option("--watch", is_flag=True, help="Show the workflow's progress until it finishes.")
@output_option
@server_option
@namespace_option
def submit(
    file: str | None,
    from_: str,
    params: tuple[str, ...],
    labels: str,
    wait: bool,
    watch: bool,
    output: str | None,
    server: str,
    namespace: str,
) -> None:
    """Submit a Workflow from FILE, or from a template or cron workflow with --from."""
    client = Client(server)
    parameters = parse_params(params)
    if from_:
        kind, _, name = from_.partition("/")
        kinds = {
            "workflowtemplate": "WorkflowTemplate",
            "wftmpl": "WorkflowTemplate",
            "clusterworkflowtemplate": "ClusterWorkflowTemplate",
            "cwftmpl": "ClusterWorkflowTemplate",
            "cronworkflow": "CronWorkflow",
            "cronwf": "CronWorkflow",
            "cwf": "CronWorkflow",
        }
        if not name or kind.lower() not in kinds:
            fail(f"--from takes KIND/NAME with KIND one of {', '.join(sorted(kinds))}", 2)
        body = {
            "namespace": namespace,
            "resourceKind": kinds[kind.lower()],
            "resourceName": name,
            "submitOptions": {"parameters": [f"{p['name']}={p['value']}" for p in parameters], "labels": labels},
        }
        created = client.request("POST", f"/api/v1/workflows/{namespace}/submit", body)
    elif file:
        workflow = read_one(file, "Workflow")
        apply_params(workflow, parameters)
        if labels:
            meta_labels = workflow.setdefault("metadata", {}).setdefault("labels", {})
            for pair in filter(None, labels.split(",")):
                key, _, value = pair.partition("=")
                meta_labels[key] = value
        namespace = (workflow.get("metadata") or {}).get("namespace") or namespace
        created = client.request("POST", _path(namespace), {"workflow": workflow})
    else:
        fail("give a FILE or --from KIND/NAME", 2)
    name = created["metadata"]["name"]
    if wait or watch:
        created = wait_for(client, namespace, name, show=watch)
    if output in ("json", "yaml", "name"):
        print_object(created, output)
    elif not watch:
        click.echo(summary(created))
    if wait or watch:
        sys.exit(0 if phase(created) == "Succeeded" else 1)


@click.command(name="list")
@click.option("-l", "--selector", default="", help="Label selector (key=value,...).")
@click.option("--status", default="", help="Only workflows in these phases (comma separated).")
@output_option
@server_option
@namespace_option
def list_(selector: str, status: str, output: str | None, server: str, namespace: str) -> None:
    """List workflows, newest first."""
    path = _path(namespace) + query(**{"listOptions.labelSelector": selector})
    items = Client(server).request("GET", path)["items"] or []
    if status:
        wanted = {s.strip().lower() for s in status.split(",")}
        items = [i for i in items if phase(i).lower() in wanted]
    if output in ("json", "yaml", "name"):
        print_object(items, output)
        return
    click.echo(f"{'NAME':<48} {'STATUS':<10} {'AGE':<6} {'PROGRESS':<9} MESSAGE")
    for item in items:
        status_ = item.get("status") or {}
        click.echo(
            f"{item['metadata']['name']:<48} {phase(item):<10} "
            f"{age(item['metadata'].get('creationTimestamp')):<6} {status_.get('progress', ''):<9} "
            f"{status_.get('message', '')}"
        )


@click.command()
@click.argument("name")
@output_option
@server_option
@namespace_option
def get(name: str, output: str | None, server: str, namespace: str) -> None:
    """Show one workflow."""
    workflow = Client(server).request("GET", _path(namespace, name))
    if output in ("json", "yaml", "name"):
        print_object(workflow, output)
    else:
        click.echo(summary(workflow))


@click.command()
@click.argument("name")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines until the workflow ends.")
@click.option("--node", "pod", default="", help="Only this pod/node.")
@server_option
@namespace_option
def logs(name: str, follow: bool, pod: str, server: str, namespace: str) -> None:
    """Print the logs of a workflow's steps."""
    path = _path(namespace, name, "log") + query(podName=pod, **{"logOptions.follow": "true" if follow else ""})
    for chunk in Client(server).lines(path, timeout=3600 if follow else 30):
        result = chunk.get("result") or {}
        click.echo(f"{result.get('podName', '')}: {result.get('content', '')}")


@click.command()
@click.argument("name")
@server_option
@namespace_option
def delete(name: str, server: str, namespace: str) -> None:
    """Delete a workflow (its running steps are killed)."""
    Client(server).request("DELETE", _path(namespace, name))
    click.echo(f"Workflow '{name}' deleted")


@click.command()
@click.argument("name")
@server_option
@namespace_option
def wait(name: str, server: str, namespace: str) -> None:
    """Wait for a workflow to finish; exit 1 unless it Succeeded."""
    final = wait_for(Client(server), namespace, name)
    click.echo(f"{name} {phase(final)}")
    sys.exit(0 if phase(final) == "Succeeded" else 1)


@click.command()
@click.argument("name")
@server_option
@namespace_option
def watch(name: str, server: str, namespace: str) -> None:
    """Show a workflow's node tree live until it finishes."""
    wait_for(Client(server), namespace, name, show=True)


PAST = {
    "suspend": "suspended",
    "resume": "resumed",
    "stop": "stopped",
    "terminate": "terminated",
    "retry": "retried",
    "resubmit": "resubmitted",
}


def _action(action: str, help_text: str) -> click.Command:
    @click.command(name=action, help=help_text)
    @click.argument("name")
    @click.option("--node-field-selector", default="", help="Only nodes matching this selector.")
    @click.option("--restart-successful", is_flag=True, help="retry: also re-run succeeded nodes that match.")
    @click.option("--memoized", is_flag=True, help="resubmit: keep the succeeded steps.")
    @click.option("-p", "--parameter", "params", multiple=True, help="NAME=VALUE (retry, resubmit).")
    @click.option("--message", default="", help="stop: a message for the stopped nodes.")
    @server_option
    @namespace_option
    def command(
        name: str,
        node_field_selector: str,
        restart_successful: bool,
        memoized: bool,
        params: tuple[str, ...],
        message: str,
        server: str,
        namespace: str,
    ) -> None:
        body: dict[str, Any] = {"name": name, "namespace": namespace}
        if node_field_selector:
            body["nodeFieldSelector"] = node_field_selector
        if restart_successful:
            body["restartSuccessful"] = True
        if memoized:
            body["memoized"] = True
        if params:
            body["parameters"] = [f"{p['name']}={p['value']}" for p in parse_params(params)]
        if message:
            body["message"] = message
        result = Client(server).request("PUT", _path(namespace, name, action), body)
        new_name = (result or {}).get("metadata", {}).get("name", name)
        click.echo(f"workflow {new_name} {PAST[action]}")

    return command


ACTIONS = [
    _action("suspend", "Suspend a workflow."),
    _action("resume", "Resume a suspended workflow or its suspend nodes."),
    _action("stop", "Stop a workflow; exit handlers still run."),
    _action("terminate", "Terminate a workflow; exit handlers do not run."),
    _action("retry", "Retry a failed workflow from its failed nodes."),
    _action("resubmit", "Submit a new workflow with the same spec."),
]

COMMANDS = [submit, list_, get, logs, delete, wait, watch, *ACTIONS]
