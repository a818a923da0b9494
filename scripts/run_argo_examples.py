#!/usr/bin/env python3
"""Run Argo Workflows' own examples with ``eventbridge run`` and compare with Argo's documented outcome.

Get the examples (they are not copied into this repository)::

    git --git-dir=<argo-workflows git dir> archive HEAD examples | tar -x -C /tmp/argo-wf
    python scripts/run_argo_examples.py /tmp/argo-wf/examples

Expected outcome, as Argo's e2e test (test/e2e/examples_test.go) defines it: every Workflow must
Succeed, except those labelled ``workflows.argoproj.io/no-test``: ``expected-failure`` must contain
a failure (the workflow fails, or a step fails and is tolerated by continueOn/depends),
``flaky`` may end either way, ``environment`` and ``duration`` are not run (they need a cluster,
credentials, the internet, or a long time). Examples that need a Kubernetes API (resource
templates, daemons, volumes claims), the internet or cloud credentials are skipped too, with the
reason shown. Runs two at a time; prints a table and the pass percentage.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

NO_TEST = "workflows.argoproj.io/no-test"
REFERENCE_DIRS = ("workflow-template", "cluster-workflow-template", "configmaps")
CLOUD_ARTIFACTS = ("s3", "gcs", "oss", "azure", "hdfs", "artifactory")
# Where Argo's label says less than the example does (read from the example itself).
EXPECTED_OVERRIDES = {
    # labelled expected-failure because it "requires interaction"; its step fails at random (retried)
    "template-defaults.yaml": "any",
    # not in Argo's tested set; these demonstrate a failure on purpose (read from the examples)
    "loops-arbitrary-sequential-steps.yaml": "failure",  # "will fail and stop here"
    "pod-gc-strategy.yaml": "failure",  # has a step that exits 1
    "pod-gc-strategy-with-label-selector.yaml": "failure",
    "resubmit.yaml": "failure",  # fails so that it can be resubmitted
    "retry-conditional.yaml": "failure",  # retries exit code 2 until the script exits 1
    "step-level-timeout.yaml": "failure",  # steps exceed their timeout
    "timeouts-workflow.yaml": "failure",  # the workflow exceeds activeDeadlineSeconds
    "retry-backoff.yaml": "any",  # random exit codes
    "dag-coinflip.yaml": "any",
    "retry-on-error.yaml": "any",  # random exit codes, 2 retries
}


@dataclass
class Example:
    path: Path
    name: str
    expected: str  # Succeeded, Failed, any
    skip: str = ""
    got: str = ""
    message: str = ""
    seconds: float = 0.0
    failed_node: bool = False
    extended: bool = False  # not in Argo's own tested set (no-test: environment/duration)

    @property
    def ok(self) -> bool:
        if self.expected == "any":
            return self.got in ("Succeeded", "Failed", "Error")
        if self.expected == "failure":  # meant to contain a failure: the workflow or a step fails
            return self.got in ("Failed", "Error") or (self.got == "Succeeded" and self.failed_node)
        return self.got == self.expected


def _walk(value: Any) -> list[Any]:
    found = [value]
    if isinstance(value, dict):
        for item in value.values():
            found.extend(_walk(item))
    elif isinstance(value, list):
        for item in value:
            found.extend(_walk(item))
    return found


def needs(doc: dict[str, Any], text: str) -> str:
    """Why this example cannot run here (cluster, internet, credentials), or ''."""
    spec = doc.get("spec") or {}
    templates = spec.get("templates") or []
    everything = _walk(spec)
    dicts = [v for v in everything if isinstance(v, dict)]
    if any("resource" in t for t in templates):
        return "cluster (resource template)"
    if any(t.get("daemon") for t in templates) or any(d.get("daemon") for d in dicts):
        return "cluster (daemon step reached by IP)"
    if spec.get("volumeClaimTemplates") or any("persistentVolumeClaim" in d for d in dicts):
        return "cluster (persistent volume)"
    if any(any(k in d for k in CLOUD_ARTIFACTS) for d in dicts if "name" in d or "key" in d):
        return "cloud credentials (artifact repository)"
    if "artifactRepositoryRef" in text or ("archiveLocation" in text and "s3" in text):
        return "cloud credentials (artifact repository)"
    external = re.search(r"https?://(?!localhost|127\.0\.0\.1)", json.dumps(spec)) is not None
    for d in dicts:
        http = d.get("http")
        if isinstance(http, dict) and external:
            return "internet (http)"
    if external:
        return "internet (a step calls an external URL)"
        git = d.get("git")
        if isinstance(git, dict) and "repo" in git:
            return "internet (git)"
    if re.search(r"\bsidecars\b", text):
        return "cluster (sidecar containers reached over the pod network)"
    if "plugin:" in text:
        return "executor plugin"
    return ""


# Examples Argo does not test (no-test: environment/duration) that --extended still skips, and why.
EXTENDED_SKIPS = {
    "forever.yaml": "runs forever",
    "suspend-template.yaml": "waits for a person to resume it",
    "suspend-template-outputs.yaml": "waits for a person to resume it",
    "hello-windows.yaml": "needs Windows nodes",
    "hello-hybrid.yaml": "needs Windows nodes",
    "secrets.yaml": "needs a Kubernetes Secret",
    "image-pull-secrets.yaml": "needs a registry secret",
    "node-selector.yaml": "needs labelled cluster nodes",
    "intermediate-parameters.yaml": "waits for a person to resume it",
    "exit-handler-slack.yaml": "internet (a Slack webhook)",
}


def collect(root: Path, extended: bool = False) -> list[Example]:
    examples: list[Example] = []
    for path in sorted(root.rglob("*.yaml")):
        try:
            text = path.read_text()
            docs = [d for d in yaml.safe_load_all(text) if isinstance(d, dict)]
        except (OSError, yaml.YAMLError):
            continue
        workflows = [d for d in docs if d.get("kind") == "Workflow"]
        if len(workflows) != 1:
            continue
        doc = workflows[0]
        label = ((doc.get("metadata") or {}).get("labels") or {}).get(NO_TEST, "")
        rel = str(path.relative_to(root))
        if label in ("environment", "duration"):
            if not extended:
                examples.append(Example(path, rel, "-", skip=f"argo no-test: {label}"))
                continue
            reason = EXTENDED_SKIPS.get(rel) or (
                "synchronization examples need the ConfigMap my-config (not shipped with them) and sleep for minutes"
                if "synchronization" in text
                else ""
            )
            expected = EXPECTED_OVERRIDES.get(rel, "Succeeded")
            examples.append(Example(path, rel, expected, skip=reason or needs(doc, text), extended=True))
            continue
        expected = {"expected-failure": "failure", "flaky": "any"}.get(label, "Succeeded")
        expected = EXPECTED_OVERRIDES.get(rel, expected)
        examples.append(Example(path, rel, expected, skip=needs(doc, text)))
    return examples


# Used with --runtime: the same as `eventbridge run FILE -f ... -o json`, through eventbridge.runtime.
_RUNTIME_RUNNER = """
import asyncio, json, sys, yaml
from pathlib import Path
from eventbridge.runtime import run_once
docs = [d for d in yaml.safe_load_all(Path(sys.argv[1]).read_text()) if isinstance(d, dict)]
workflow = next(d for d in docs if d.get("kind") == "Workflow")
print(json.dumps(asyncio.run(run_once(workflow, [Path(p) for p in sys.argv[2:]]))))
"""


async def run_one(example: Example, root: Path, limit: float, python: str, runtime: bool = False) -> None:
    refs = [str(root / ref) for ref in REFERENCE_DIRS if (root / ref).is_dir()]
    if runtime:
        command = [python, "-c", _RUNTIME_RUNNER, str(example.path), *refs]
    else:
        command = [python, "-m", "eventbridge", "run", str(example.path), "-o", "json"]
        for ref in refs:
            command += ["-f", ref]
    started = time.perf_counter()
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, start_new_session=True
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), limit)
    except TimeoutError:
        process.kill()
        await process.wait()
        example.got, example.message = "Timeout", f"no result within {limit:g}s"
        example.seconds = time.perf_counter() - started
        return
    example.seconds = time.perf_counter() - started
    try:
        obj = json.loads(stdout.decode())
    except json.JSONDecodeError:
        lines = [ln for ln in stderr.decode(errors="replace").splitlines() if ln.strip()]
        example.got = "CLI error"
        example.message = (lines[-1] if lines else f"exit code {process.returncode}")[:200]
        return
    status = obj.get("status") or {}
    example.got = status.get("phase") or "?"
    message = status.get("message") or ""
    failed = [
        n
        for n in (status.get("nodes") or {}).values()
        if n.get("phase") in ("Failed", "Error")
        and n.get("type") not in ("Steps", "DAG", "StepGroup", "TaskGroup", "Retry")
    ]
    example.failed_node = bool(failed)
    if failed:
        message = f"{failed[0].get('displayName')}: {failed[0].get('message', '')}"
    example.message = message[:200]


async def run_all(examples: list[Example], root: Path, jobs: int, limit: float, runtime: bool) -> None:
    gate = asyncio.Semaphore(jobs)

    async def guarded(example: Example) -> None:
        async with gate:
            await run_one(example, root, limit, sys.executable, runtime)
            mark = "ok " if example.ok else "BAD"
            print(f"  {mark} {example.name} -> {example.got} ({example.seconds:.1f}s)", file=sys.stderr, flush=True)

    await asyncio.gather(*(guarded(e) for e in examples if not e.skip))


def cause(example: Example) -> str:
    """A short failure category for the summary (the node name and specifics left out)."""
    if example.expected == "failure" and example.got == "Succeeded":
        return "succeeded although the example is meant to fail"
    message = example.message
    if ": " in message and not message.startswith(("invalid spec", "error")):
        message = message.split(": ", 1)[1]
    text = re.sub(r"'[^']*'|\"[^\"]*\"|\{\{[^}]*\}\}|\d+", "…", message)
    return text[:90] or f"(no message; {example.got})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("examples", nargs="?", default="/tmp/argo-wf/examples", type=Path)  # noqa: S108
    parser.add_argument("-j", "--jobs", type=int, default=2)
    parser.add_argument("-t", "--timeout", type=float, default=120.0)
    parser.add_argument("-k", "--only", default="", help="run only examples whose path contains this")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    parser.add_argument(
        "--extended",
        action="store_true",
        help="also run no-test: environment/duration examples that need no cluster, credentials or internet",
    )
    parser.add_argument("--runtime", action="store_true", help="call eventbridge.runtime.run_once instead of the CLI")
    args = parser.parse_args()
    root: Path = args.examples
    if not root.is_dir():
        print(f"{root} is not a directory: extract argo-workflows' examples there first", file=sys.stderr)
        return 2
    examples = [e for e in collect(root, args.extended) if args.only in e.name]
    asyncio.run(run_all(examples, root, args.jobs, args.timeout, args.runtime))
    ran = [e for e in examples if not e.skip]
    width = max((len(e.name) for e in examples), default=10)
    print(f"{'EXAMPLE':<{width}}  {'EXPECTED':<9} {'GOT':<10} {'OK':<4} {'SECS':>5}  MESSAGE")
    for e in examples:
        if e.skip:
            print(f"{e.name:<{width}}  {'-':<9} {'skipped':<10} {'-':<4} {'':>5}  {e.skip}")
        else:
            ok = "yes" if e.ok else "NO"
            print(f"{e.name:<{width}}  {e.expected:<9} {e.got:<10} {ok:<4} {e.seconds:5.1f}  {e.message}")
    passed = sum(e.ok for e in ran)
    percent = 100.0 * passed / len(ran) if ran else 0.0
    print()
    tested = [e for e in ran if not e.extended]
    if args.extended and tested:
        tested_ok = sum(e.ok for e in tested)
        print(f"Argo's tested set: {tested_ok} of {len(tested)} as documented = {100.0 * tested_ok / len(tested):.1f}%")
    print(
        f"ran {len(ran)} of {len(examples)} examples ({len(examples) - len(ran)} skipped): "
        f"{passed} as documented = {percent:.1f}%"
    )
    causes = collections.Counter(cause(e) for e in ran if not e.ok)
    if causes:
        print("main causes of failures:")
        for text, count in causes.most_common(15):
            print(f"  {count:3d}  {text}")
    skipped = collections.Counter(e.skip for e in examples if e.skip)
    print("skipped:")
    for text, count in skipped.most_common():
        print(f"  {count:3d}  {text}")
    if args.json:
        args.json.write_text(json.dumps([e.__dict__ | {"path": str(e.path), "ok": e.ok} for e in examples], indent=2))
    return 0 if passed == len(ran) else 1


if __name__ == "__main__":
    sys.exit(main())
