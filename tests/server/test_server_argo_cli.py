"""The real argo CLI (github.com/argoproj/argo-workflows, built by scripts/argo_cli.sh) against the real
`eventbridge up` process: list, get, submit --watch/--wait, logs, suspend/resume, delete, templates,
cron workflows, and bearer tokens. The test fails, never skips, when the binary is missing."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from argo_cli_helpers import Argo, Server, argo_binary, plain

pytestmark = pytest.mark.timeout(180)

TOKEN = "argo-cli-test-token"
READ_TOKEN = "argo-cli-read-only"

HELLO = """\
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata:
  generateName: hello-
  labels:
    suite: argo-cli
spec:
  entrypoint: main
  arguments:
    parameters:
      - name: who
        value: world
  templates:
    - name: main
      inputs:
        parameters:
          - name: who
      container:
        image: alpine
        command: [sh, -c]
        args: ["echo hello {{inputs.parameters.who}}; echo second line"]
"""

SLOW_STEPS = """\
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata:
  name: NAME
spec:
  entrypoint: main
  templates:
    - name: main
      steps:
        - - name: first
            template: nap
        - - name: second
            template: say
    - name: nap
      container:
        image: alpine
        command: [sh, -c, "sleep 1.5; echo napped"]
    - name: say
      container:
        image: alpine
        command: [sh, -c, "echo after resume"]
"""

TEMPLATE = """\
apiVersion: argoproj.io/v1alpha1
kind: WorkflowTemplate
metadata:
  name: greeter
spec:
  entrypoint: main
  arguments:
    parameters:
      - name: who
        value: nobody
  templates:
    - name: main
      inputs:
        parameters:
          - name: who
      container:
        image: alpine
        command: [sh, -c, "echo greetings {{inputs.parameters.who}}"]
"""

FLAKY = """\
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata:
  name: flaky
spec:
  entrypoint: main
  arguments:
    parameters:
      - name: fail
        value: "yes"
  templates:
    - name: main
      inputs:
        parameters:
          - name: fail
      container:
        image: alpine
        command: [sh, -c]
        args: ["test {{inputs.parameters.fail}} = no || { echo this try fails; exit 3; }; echo this try works"]
"""

APPROVAL = """\
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata:
  generateName: approval-
spec:
  entrypoint: main
  templates:
    - name: main
      steps:
        - - name: approve
            template: gate
        - - name: after
            template: nap
    - name: gate
      suspend: {}
    - name: nap
      container:
        image: alpine
        command: [sh, -c, "sleep 30"]
"""

CRON = """\
apiVersion: argoproj.io/v1alpha1
kind: CronWorkflow
metadata:
  name: nightly
spec:
  schedules: ["0 3 * * *"]  # argo v4 knows only `schedules` (it removed `schedule`)
  timezone: UTC
  workflowSpec:
    entrypoint: main
    templates:
      - name: main
        container:
          image: alpine
          command: [sh, -c, "echo nightly"]
"""


@pytest.fixture(scope="module")
def binary() -> Path:
    return argo_binary()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    process = Server(tmp_path_factory.mktemp("argo-cli"))
    process.start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
def argo(binary: Path, server: Server, tmp_path: Path) -> Argo:
    return Argo(binary, server, tmp_path)


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


def test_version_talks_to_the_server(argo: Argo) -> None:
    out = argo.run("version").stdout
    assert "argo:" in out and "v4.0.5" in out
    assert "argo-server:" in out  # the server's half of the answer came from /api/v1/version


def test_submit_watch_get_list_and_logs(argo: Argo, tmp_path: Path) -> None:
    manifest = write(tmp_path, "hello.yaml", HELLO)
    submitted = argo.run("submit", str(manifest), "-p", "who=argo-cli", "--watch")
    assert "Succeeded" in submitted.stdout, submitted.stdout
    name = next(line.split()[-1] for line in submitted.stdout.splitlines() if line.startswith("Name:"))
    assert name.startswith("hello-")

    got = argo.run("get", name).stdout
    assert "Succeeded" in got and name in got
    document = argo.json("get", name)
    assert document["metadata"]["name"] == name
    assert document["status"]["phase"] == "Succeeded"
    assert document["spec"]["arguments"]["parameters"][0]["value"] == "argo-cli"

    listed = argo.run("list").stdout.splitlines()
    assert listed[0].split()[:2] == ["NAME", "STATUS"]
    row = next(line for line in listed if line.startswith(name))
    assert "Succeeded" in row
    assert name in argo.run("list", "-o", "name").stdout.split()
    assert name in argo.run("list", "-l", "suite=argo-cli", "-o", "name").stdout.split()
    assert name not in argo.run("list", "-l", "suite=other", "-o", "name").stdout.split()
    assert name in argo.run("list", "--completed", "-o", "name").stdout.split()
    assert name not in argo.run("list", "--running", "-o", "name").stdout.split()

    logs = plain(argo.run("logs", name).stdout).splitlines()
    assert [line.split(": ", 1)[1] for line in logs] == ["hello argo-cli", "second line"]
    assert all(line.startswith(name) for line in logs)
    assert plain(argo.run("logs", name, "--grep", "second").stdout).strip().endswith(": second line")


def test_logs_follow_a_running_workflow_with_argo_pod_names(argo: Argo, tmp_path: Path) -> None:
    manifest = write(tmp_path, "follow.yaml", SLOW_STEPS.replace("NAME", "follow-me"))
    argo.run("submit", str(manifest))
    followed = [line.split(": ", 1) for line in plain(argo.run("logs", "follow-me", "--follow").stdout).splitlines()]
    assert [content for _, content in followed] == ["napped", "after resume"]
    got = plain(argo.run("get", "follow-me").stdout)
    assert "Succeeded" in got
    # the pod names of `argo logs` are the ones `argo get` computes: <workflow>-<template>-<hash>
    pods = [pod for pod, _ in followed]
    assert pods[0].startswith("follow-me-nap-") and pods[1].startswith("follow-me-say-")
    assert all(pod in got for pod in pods)
    one = plain(argo.run("logs", "follow-me", pods[1]).stdout).strip()
    assert one == f"{pods[1]}: after resume"


def test_latest_alias(argo: Argo, tmp_path: Path) -> None:
    manifest = write(tmp_path, "latest.yaml", SLOW_STEPS.replace("NAME", "newest-of-all"))
    argo.run("submit", str(manifest))
    assert "Name:                newest-of-all" in argo.run("get", "@latest").stdout
    assert "@latest Succeeded" in argo.run("wait", "@latest").stdout
    assert plain(argo.run("logs", "@latest").stdout).strip().endswith("after resume")


def test_retry_resubmit_and_archive(argo: Argo, tmp_path: Path) -> None:
    manifest = write(tmp_path, "flaky.yaml", FLAKY)
    failed = argo.run("submit", str(manifest), "--wait", check=False)
    assert failed.returncode == 1 and "flaky Failed" in failed.stdout
    assert "exit code 3" in argo.run("get", "flaky").stdout

    argo.run("retry", "flaky", "-p", "fail=no")
    assert "flaky Succeeded" in argo.run("wait", "flaky").stdout
    assert plain(argo.run("logs", "flaky").stdout).strip().endswith("this try works")

    name = argo.run("resubmit", "flaky", "--wait", "-o", "name").stdout.split()[0]
    assert name.startswith("flaky-")
    again = argo.json("get", name)
    assert again["status"]["phase"] == "Succeeded"
    assert again["metadata"]["labels"]["workflows.argoproj.io/resubmitted-from-workflow"] == "flaky"

    uid = argo.json("get", "flaky")["metadata"]["uid"]
    archived = argo.run("archive", "list").stdout
    assert uid in archived and "flaky" in archived
    assert "Name:                flaky" in argo.run("archive", "get", uid).stdout


def suspended_at(argo: Argo, name: str, node: str) -> bool:
    """Whether workflow ``name`` waits in its suspend node ``node``."""
    nodes = (argo.json("get", name).get("status") or {}).get("nodes") or {}
    return any(n.get("displayName") == node and n.get("phase") == "Running" for n in nodes.values())


def test_resume_a_suspend_node_stop_and_terminate(argo: Argo, tmp_path: Path) -> None:
    manifest = write(tmp_path, "approval.yaml", APPROVAL)
    first = argo.run("submit", str(manifest), "-o", "name").stdout.split()[0]
    second = argo.run("submit", str(manifest), "-o", "name").stdout.split()[0]
    deadline = time.monotonic() + 20
    while not (suspended_at(argo, first, "approve") and suspended_at(argo, second, "approve")):
        assert time.monotonic() < deadline, "the workflows never reached their suspend node"
        time.sleep(0.1)

    argo.run("node", "set", first, "--message", "approved by ci", "--node-field-selector", "displayName=approve")
    assert (
        f"workflow {first} resumed" in argo.run("resume", first, "--node-field-selector", "displayName=approve").stdout
    )
    argo.run("resume", second)
    assert f"workflow {first} stopped" in argo.run("stop", first, "--message", "enough").stdout
    assert f"workflow {second} terminated" in argo.run("terminate", second).stdout
    assert f"{first} Failed" in argo.run("wait", first, check=False).stdout
    assert f"{second} Failed" in argo.run("wait", second, check=False).stdout

    stopped, terminated = argo.json("get", first), argo.json("get", second)
    approve = next(n for n in stopped["status"]["nodes"].values() if n.get("displayName") == "approve")
    assert approve["phase"] == "Succeeded" and approve.get("message") == "approved by ci"
    assert "Stop" in stopped["status"]["message"] and "Terminate" in terminated["status"]["message"]


def test_delete(argo: Argo, tmp_path: Path) -> None:
    manifest = write(tmp_path, "gone.yaml", SLOW_STEPS.replace("NAME", "to-delete"))
    argo.run("submit", str(manifest), "--wait")
    assert "Workflow 'to-delete' deleted" in argo.run("delete", "to-delete").stdout
    missing = argo.run("get", "to-delete", check=False)
    assert missing.returncode != 0
    assert "not found" in (missing.stdout + missing.stderr).lower()


def test_templates_and_submit_from_template(argo: Argo, tmp_path: Path) -> None:
    created = argo.run("template", "create", str(write(tmp_path, "template.yaml", TEMPLATE)))
    assert "greeter" in created.stdout
    listed = argo.run("template", "list").stdout.splitlines()
    assert listed[0].split()[0] == "NAME" and any(line.split()[0] == "greeter" for line in listed[1:])
    assert argo.json("template", "get", "greeter")["metadata"]["name"] == "greeter"

    submitted = argo.run("submit", "--from", "workflowtemplate/greeter", "-p", "who=cli", "--wait", "-o", "name")
    name = submitted.stdout.split()[0]
    assert argo.json("get", name)["status"]["phase"] == "Succeeded"
    assert plain(argo.run("logs", name).stdout).strip().endswith("greetings cli")

    # `argo template update` leaves the name out of the URL; the server takes it from the body
    argo.run("template", "update", str(write(tmp_path, "template.yaml", TEMPLATE.replace("nobody", "everybody"))))
    name = argo.run("submit", "--from", "workflowtemplate/greeter", "--wait", "-o", "name").stdout.split()[0]
    assert plain(argo.run("logs", name).stdout).strip().endswith("greetings everybody")


def test_server_dry_run_names_but_does_not_create(argo: Argo, tmp_path: Path) -> None:
    manifest = write(tmp_path, "dry.yaml", HELLO.replace("generateName: hello-", "generateName: dry-"))
    name = argo.run("submit", str(manifest), "--server-dry-run", "-o", "name").stdout.strip()
    assert name.startswith("dry-") and len(name) == len("dry-") + 5
    assert "NotFound" in argo.run("get", name, check=False).stderr


def test_cluster_templates(argo: Argo, tmp_path: Path) -> None:
    cluster = TEMPLATE.replace("kind: WorkflowTemplate", "kind: ClusterWorkflowTemplate").replace(
        "name: greeter", "name: cluster-greeter"
    )
    argo.run("cluster-template", "create", str(write(tmp_path, "cluster.yaml", cluster)))
    listed = argo.run("cluster-template", "list").stdout.split()
    assert "cluster-greeter" in listed
    name = argo.run("submit", "--from", "clusterworkflowtemplate/cluster-greeter", "--wait", "-o", "name").stdout
    assert plain(argo.run("logs", name.split()[0]).stdout).strip().endswith("greetings nobody")
    assert "deleted" in argo.run("cluster-template", "delete", "cluster-greeter").stdout
    assert "cluster-greeter" not in argo.run("cluster-template", "list").stdout.split()


def test_cron_list_get_suspend(argo: Argo, tmp_path: Path) -> None:
    argo.run("cron", "create", str(write(tmp_path, "cron.yaml", CRON)))
    listed = argo.run("cron", "list").stdout.splitlines()
    assert listed[0].split()[:2] == ["NAME", "AGE"]
    row = next(line for line in listed[1:] if line.split()[0] == "nightly")
    assert "0 3 * * *" in row and "false" in row  # schedule, not suspended
    argo.run("cron", "suspend", "nightly")
    assert argo.json("cron", "get", "nightly")["spec"]["suspend"] is True
    row = next(line for line in argo.run("cron", "list").stdout.splitlines() if line.startswith("nightly"))
    assert "true" in row
    argo.run("cron", "resume", "nightly")
    argo.run("cron", "update", str(write(tmp_path, "cron.yaml", CRON.replace("0 3 * * *", "0 4 * * *"))))
    updated = argo.json("cron", "get", "nightly")
    assert updated["spec"]["schedules"] == ["0 4 * * *"] and not updated["spec"].get("suspend")


def test_errors_come_back_as_grpc_codes(argo: Argo, tmp_path: Path) -> None:
    missing = argo.run("get", "no-such-workflow", check=False)
    assert missing.returncode != 0
    assert "NotFound" in missing.stderr or "not found" in missing.stderr.lower(), missing.stderr
    bad = write(tmp_path, "bad.yaml", HELLO.replace("entrypoint: main", "entrypoint: nowhere"))
    rejected = argo.run("submit", str(bad), check=False)
    assert rejected.returncode != 0
    assert "nowhere" in rejected.stderr, rejected.stderr


def test_bearer_tokens(binary: Path, tmp_path: Path) -> None:
    tokens = write(tmp_path, "tokens", f"{TOKEN} write name=ci\n{READ_TOKEN} read name=viewer\n")
    secured = Server(tmp_path / "secured", auth_file=tokens)
    secured.start(token=TOKEN)
    try:
        argo = Argo(binary, secured, tmp_path)
        refused = argo.run("list", check=False)
        assert refused.returncode != 0
        assert "Unauthenticated" in refused.stderr or "token" in refused.stderr, refused.stderr

        manifest = write(tmp_path, "hello.yaml", HELLO)
        name = argo.run("submit", str(manifest), "--wait", "-o", "name", token=TOKEN).stdout.split()[0]
        assert name in argo.run("list", "-o", "name", token=READ_TOKEN).stdout.split()
        assert plain(argo.run("logs", name, token=READ_TOKEN).stdout).strip().endswith("second line")
        denied = argo.run("delete", name, token=READ_TOKEN, check=False)
        assert denied.returncode != 0
        assert "PermissionDenied" in denied.stderr or "read-only" in denied.stderr, denied.stderr
        assert json.loads(argo.run("get", name, "-o", "json", token=TOKEN).stdout)["metadata"]["name"] == name
    finally:
        secured.stop()
