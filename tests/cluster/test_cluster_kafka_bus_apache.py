"""The cluster roles with an EventBus on Apache Kafka (KRaft, the jars of scripts/kafka.sh), with the
bus's defaults: idempotent producer, 3 partitions, 10 s group sessions (the Tansu runs of
test_cluster_roles.py need ``--no-kafka-idempotent``). Real role processes, the real API server and
the test kubelet, as in test_cluster_roles.py, whose helpers this module uses.
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from pathlib import Path
from typing import Any

from kubecluster import KubeCluster, free_port
from test_cluster_roles import (
    GROUP,
    VERSION,
    Obj,
    create,
    http_post,
    list_objects,
    meta,
    role_kubeconfig,
    roles,
    wait_for,
)
from testkubelet import TestKubelet

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "servers"))
from realservers import shared_apache_kafka

__all__ = ["role_kubeconfig", "roles"]  # fixtures used here


async def test_webhook_events_through_an_idempotent_kafka_bus_end_in_one_workflow_each(
    cluster: KubeCluster, namespace: str, kubelet: TestKubelet, roles: Any
) -> None:
    kafka = shared_apache_kafka()
    topic = f"bus-{namespace}"
    webhook_port = free_port()
    await create(
        cluster,
        namespace,
        "eventbus",
        {"apiVersion": f"{GROUP}/{VERSION}", "kind": "EventBus", "metadata": meta(namespace, "default"),
         "spec": {"kafka": {"url": kafka.bootstrap, "topic": topic}}},
    )  # fmt: skip
    await create(
        cluster,
        namespace,
        "eventsources",
        {"apiVersion": f"{GROUP}/{VERSION}", "kind": "EventSource", "metadata": meta(namespace, "hooks"),
         "spec": {"webhook": {"example": {"port": str(webhook_port), "endpoint": "/example", "method": "POST"}}}},
    )  # fmt: skip
    workflow = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Workflow",
        "metadata": {"generateName": "from-kafka-"},
        "spec": {
            "entrypoint": "say",
            "arguments": {"parameters": [{"name": "message", "value": "placeholder"}]},
            "templates": [
                {
                    "name": "say",
                    "inputs": {"parameters": [{"name": "message"}]},
                    "container": {"image": "alpine", "command": ["echo"], "args": ["{{inputs.parameters.message}}"]},
                }
            ],
        },
    }
    sensor_name = f"on-hook-{uuid.uuid4().hex[:6]}"
    await create(
        cluster,
        namespace,
        "sensors",
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "Sensor",
            "metadata": meta(namespace, sensor_name),
            "spec": {
                "dependencies": [{"name": "hook", "eventSourceName": "hooks", "eventName": "example"}],
                "triggers": [
                    {
                        "template": {
                            "name": "run",
                            "argoWorkflow": {
                                "operation": "submit",
                                "source": {"resource": workflow},
                                "parameters": [
                                    {
                                        "src": {"dependencyName": "hook", "dataKey": "body.message"},
                                        "dest": "spec.arguments.parameters.0.value",
                                    }
                                ],
                            },
                        },
                    }
                ],
            },
        },
    )
    controller = roles("controller", "--executor-service-account", "eventbridge-executor")
    sensor = roles("sensor")  # the bus's defaults: idempotent producer, 3 partitions
    source = roles("eventsource", "--webhook-host", "127.0.0.1")
    for process in (controller, sensor, source):
        await process.wait_ready()

    messages = [f"hello {n}" for n in range(3)]
    for message in messages:
        status, text = await asyncio.to_thread(
            http_post, f"http://127.0.0.1:{webhook_port}/example", {"message": message}
        )
        assert status == 200, text

    async def all_finished() -> list[Obj] | None:
        items = await list_objects(cluster, namespace, "workflows")
        done = [w for w in items if (w.get("status") or {}).get("phase") in ("Succeeded", "Failed", "Error")]
        return done if len(done) >= len(messages) else None

    finished = await wait_for("three finished Workflows", all_finished, 90, controller, sensor, source)
    assert [w["status"]["phase"] for w in finished] == ["Succeeded"] * 3, [w["status"] for w in finished]
    results = sorted(
        node["outputs"]["result"] for w in finished for node in w["status"]["nodes"].values() if node["type"] == "Pod"
    )
    assert results == messages
    await asyncio.sleep(1)  # a duplicate delivery would show up as a fourth Workflow
    assert len(await list_objects(cluster, namespace, "workflows")) == 3

    # The eventsource role published through an idempotent producer: every record batch carries a
    # producer id and sequence numbers (a plain producer writes -1), and each event is stored once.
    batches = [b for b in kafka.record_batches(topic) if not b.control]
    assert sum(b.records for b in batches) == 3, batches
    assert all(b.producer_id >= 0 and b.base_sequence >= 0 for b in batches), batches
    assert len({b.partition for b in batches}) == 1  # one key (<eventsource>.<event>), one partition

    for process in (source, sensor, controller):
        assert await process.terminate() == 0, process.log()[-3000:]
