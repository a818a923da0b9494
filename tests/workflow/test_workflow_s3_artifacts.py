"""``s3`` artifacts and S3 artifact repositories against moto's standalone S3 server."""

from __future__ import annotations

import io
import sys
import tarfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from workflow_helpers import by_display, finished, phase, step, steps, wait_for, wf

from eventbridge.executors.artifacts_s3 import S3ObjectStore
from eventbridge.executors.host import HostExecutor
from eventbridge.models.core import ConfigMap, Secret
from eventbridge.models.references import ManifestReferences
from eventbridge.store.sqlite import SqliteStore
from eventbridge.workflow.controller import Controller

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "servers"))
from realservers import moto_server

ACCESS, SECRET = "AKIDEXAMPLE", "wJalrXUtnFEMI"
CREDENTIALS = {
    "accessKeySecret": {"name": "s3-creds", "key": "accessKey"},
    "secretKeySecret": {"name": "s3-creds", "key": "secretKey"},
}


@pytest.fixture(scope="module")
def moto() -> Iterator[str]:
    with moto_server() as server:
        yield server.url


@pytest.fixture
def s3(moto: str) -> Any:
    client = boto3.client(
        "s3", endpoint_url=moto, region_name="us-east-1", aws_access_key_id=ACCESS, aws_secret_access_key=SECRET
    )
    for bucket in ("art", "repo"):
        client.create_bucket(Bucket=bucket)
    yield client
    for bucket in ("art", "repo"):
        for item in client.list_objects_v2(Bucket=bucket).get("Contents") or []:
            client.delete_object(Bucket=bucket, Key=item["Key"])
        client.delete_bucket(Bucket=bucket)


def endpoint(moto: str) -> str:
    return moto.removeprefix("http://")


def references(moto: str) -> ManifestReferences:
    secret = Secret.model_validate(
        {
            "metadata": {"name": "s3-creds", "namespace": "default"},
            "stringData": {"accessKey": ACCESS, "secretKey": SECRET},
        }
    )
    repo = f"s3:\n  bucket: repo\n  endpoint: {endpoint(moto)}\n  insecure: true\n"
    repo += "  keyFormat: 'runs/{{workflow.name}}'\n"
    repo += "  accessKeySecret: {name: s3-creds, key: accessKey}\n  secretKeySecret: {name: s3-creds, key: secretKey}\n"
    config = ConfigMap.model_validate(
        {"metadata": {"name": "artifact-repositories", "namespace": "default"}, "data": {"my-key": repo}}
    )
    return ManifestReferences([secret, config])


@pytest.fixture
async def s3_controller(store: SqliteStore, tmp_path: Path, moto: str) -> AsyncIterator[Controller]:
    controller = Controller(
        store,
        HostExecutor(tmp_path / "state"),
        write_interval=0.05,
        references=references(moto),
        object_store=S3ObjectStore(),
    )
    await controller.start()
    yield controller
    await controller.stop()


async def run(store: SqliteStore, obj: dict[str, Any]) -> dict[str, Any]:
    name = (await store.create(obj))["metadata"]["name"]
    return await wait_for(store, name, finished, within=30)


def tgz_members(data: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        return {m.name: (tar.extractfile(m).read() if m.isfile() else b"") for m in tar.getmembers()}  # type: ignore[union-attr]


def producer_consumer(output_s3: dict[str, Any] | None) -> dict[str, Any]:
    artifact: dict[str, Any] = {"name": "msg", "path": "/tmp/msg.txt"}
    if output_s3 is not None:
        artifact["s3"] = output_s3
    return wf(
        [
            steps(
                "main",
                [step("make", "make")],
                [
                    step(
                        "use",
                        "use",
                        arguments={"artifacts": [{"name": "in", "from": "{{steps.make.outputs.artifacts.msg}}"}]},
                    )
                ],
            ),
            {
                "name": "make",
                "container": {"image": "alpine", "command": ["sh", "-c", "echo hello s3 > /tmp/msg.txt"]},
                "outputs": {"artifacts": [artifact]},
            },
            {
                "name": "use",
                "inputs": {"artifacts": [{"name": "in", "path": "/tmp/in.txt"}]},
                "script": {"image": "alpine", "command": ["sh"], "source": "cat /tmp/in.txt"},
            },
        ]
    )


async def test_an_output_artifact_goes_to_s3_and_feeds_the_next_step(
    s3_controller: Controller, store: SqliteStore, s3: Any, moto: str
) -> None:
    location = {"endpoint": endpoint(moto), "insecure": True, "bucket": "art", "key": "out/msg.tgz", **CREDENTIALS}
    done = await run(store, producer_consumer(location))
    assert phase(done) == "Succeeded", done["status"].get("message")
    record = by_display(done)["make"]["outputs"]["artifacts"][0]
    assert record["s3"]["bucket"] == "art" and record["s3"]["key"] == "out/msg.tgz"
    assert "local" not in record
    body = s3.get_object(Bucket="art", Key="out/msg.tgz")["Body"].read()
    assert tgz_members(body) == {"msg.txt": b"hello s3\n"}
    assert by_display(done)["use"]["outputs"]["result"] == "hello s3"
    assert SECRET not in str(done) and ACCESS not in str(done)


async def test_key_only_artifacts_use_the_repository_of_artifact_repository_ref(
    s3_controller: Controller, store: SqliteStore, s3: Any
) -> None:
    manifest = producer_consumer({"key": "shared/msg.tgz"})
    manifest["spec"]["artifactRepositoryRef"] = {"key": "my-key"}
    done = await run(store, manifest)
    assert phase(done) == "Succeeded", done["status"].get("message")
    assert tgz_members(s3.get_object(Bucket="repo", Key="shared/msg.tgz")["Body"].read()) == {"msg.txt": b"hello s3\n"}
    # without a key, the repository's keyFormat decides: <keyFormat>/<artifact>.tgz
    plain = producer_consumer(None)
    plain["spec"]["artifactRepositoryRef"] = {"configMap": "artifact-repositories", "key": "my-key"}
    done = await run(store, plain)
    assert phase(done) == "Succeeded", done["status"].get("message")
    key = f"runs/{done['metadata']['name']}/msg.tgz"
    assert by_display(done)["make"]["outputs"]["artifacts"][0]["s3"]["key"] == key
    assert s3.get_object(Bucket="repo", Key=key)["ContentLength"] > 0


async def test_input_artifacts_from_s3_objects_and_prefixes(
    s3_controller: Controller, store: SqliteStore, s3: Any, moto: str
) -> None:
    s3.put_object(Bucket="art", Key="plain.txt", Body=b"plain text\n")
    s3.put_object(Bucket="art", Key="tree/a.txt", Body=b"A")
    s3.put_object(Bucket="art", Key="tree/sub/b.txt", Body=b"B")
    base = {"endpoint": endpoint(moto), "insecure": True, "bucket": "art", **CREDENTIALS}
    manifest = wf(
        [
            {
                "name": "main",
                "inputs": {
                    "artifacts": [
                        {"name": "file", "path": "/tmp/file.txt", "s3": {**base, "key": "plain.txt"}},
                        {"name": "dir", "path": "/tmp/dir", "s3": {**base, "key": "tree"}},
                    ]
                },
                "script": {
                    "image": "alpine",
                    "command": ["sh"],
                    "source": "cat /tmp/file.txt /tmp/dir/a.txt /tmp/dir/sub/b.txt",
                },
            }
        ]
    )
    done = await run(store, manifest)
    assert phase(done) == "Succeeded", done["status"].get("message")
    assert by_display(done)[done["metadata"]["name"]]["outputs"]["result"] == "plain text\nAB"
    missing = wf(
        [
            {
                "name": "main",
                "inputs": {"artifacts": [{"name": "f", "path": "/tmp/f", "s3": {**base, "key": "nope"}}]},
                "container": {"image": "alpine", "command": ["true"]},
            }
        ]
    )
    failed = await run(store, missing)
    node = by_display(failed)[failed["metadata"]["name"]]
    assert node["phase"] == "Error"
    assert "s3://art/nope: no such key" in node["message"]


async def test_the_controller_default_repository_and_a_missing_client(
    store: SqliteStore, tmp_path: Path, s3: Any, moto: str
) -> None:
    repository = {"s3": {"endpoint": endpoint(moto), "insecure": True, "bucket": "repo", **CREDENTIALS}}
    controller = Controller(
        store,
        HostExecutor(tmp_path / "state"),
        write_interval=0.05,
        references=references(moto),
        object_store=S3ObjectStore(),
        artifact_repository=repository,
    )
    await controller.start()
    try:
        done = await run(store, producer_consumer(None))
    finally:
        await controller.stop()
    assert phase(done) == "Succeeded", done["status"].get("message")
    name = done["metadata"]["name"]
    pod = by_display(done)["make"]["id"]
    keys = [item["Key"] for item in s3.list_objects_v2(Bucket="repo").get("Contents") or []]
    assert len(keys) == 1 and keys[0].startswith(f"{name}/{name}-make-") and keys[0].endswith("/msg.tgz")
    assert pod  # the key's middle part is the pod name (template + hash of the node name)

    no_client = Controller(
        store, HostExecutor(tmp_path / "state2"), write_interval=0.05, artifact_repository=repository
    )
    await no_client.start()
    try:
        done = await run(store, producer_consumer(None))
    finally:
        await no_client.stop()
    assert by_display(done)["make"]["phase"] == "Error"
    assert "need an S3 client" in by_display(done)["make"]["message"]
