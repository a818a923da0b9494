"""B8's test kubelet in its own process: ``python -m bench.b8_kubelet '<json>'``.

The JSON names the API server (``host``, ``token``, ``ca_file``, ``workdir``, ``kubeconfig``,
``apiserver_port``) and the ``namespaces`` whose Pods to run. The kubelet is ``tests/cluster/
testkubelet.py`` (Pods as host processes, status written back through the API); it runs here, not
in the worker, so its CPU does not share the controller's event loop and interpreter lock. It
prints ``ready`` once watching and runs until its stdin closes.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import sys
from pathlib import Path
from typing import Any

TESTS_CLUSTER = Path(__file__).resolve().parent.parent / "tests" / "cluster"


def cluster_module(name: str) -> Any:
    """A module of tests/cluster (the real API server and the test kubelet live with the tests)."""
    if str(TESTS_CLUSTER) not in sys.path:
        sys.path.insert(0, str(TESTS_CLUSTER))
    return importlib.import_module(name)


async def main(spec: dict[str, Any]) -> None:
    kubecluster = cluster_module("kubecluster")
    testkubelet = cluster_module("testkubelet")
    cluster = kubecluster.KubeCluster(
        Path(spec["workdir"]),
        spec["host"],
        spec["token"],
        Path(spec["ca_file"]),
        Path(spec["kubeconfig"]),
        int(spec["apiserver_port"]),
    )  # no processes: this one only uses the API server, never stops it
    async with testkubelet.TestKubelet(cluster, set(spec["namespaces"])):
        sys.stdout.write("ready\n")
        sys.stdout.flush()
        await asyncio.to_thread(sys.stdin.read)  # until the worker closes the pipe (or dies)


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(main(json.loads(sys.argv[1])))
