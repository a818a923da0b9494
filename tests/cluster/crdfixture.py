"""A test CRD (``Widget`` in ``test.eventbridge.io/v1``, namespaced, any fields) for the any-kind tests."""

from __future__ import annotations

import contextlib
import time
from typing import Any

from kubecluster import KubeCluster
from kubernetes import client as k8s

GROUP = "test.eventbridge.io"
API_VERSION = f"{GROUP}/v1"
KIND = "Widget"
PLURAL = "widgets"

CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": f"{PLURAL}.{GROUP}"},
    "spec": {
        "group": GROUP,
        "scope": "Namespaced",
        "names": {"plural": PLURAL, "singular": "widget", "kind": KIND, "shortNames": ["wdg"]},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
            }
        ],
    },
}


def ensure_widget_crd(cluster: KubeCluster, timeout: float = 30) -> None:
    """Create the Widget CRD once and wait until discovery serves it."""
    with cluster.api_client() as api:
        ext = k8s.ApiextensionsV1Api(api)
        try:
            ext.create_custom_resource_definition(CRD)  # type: ignore[arg-type]
        except k8s.ApiException as exc:
            if exc.status != 409:
                raise
        custom = k8s.CustomObjectsApi(api)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(k8s.ApiException):
                if PLURAL in {r.name for r in custom.get_api_resources(GROUP, "v1").resources}:
                    return
            time.sleep(0.1)
    raise RuntimeError(f"CRD {PLURAL}.{GROUP} was not served within {timeout}s")


def widget(name: str, namespace: str, **fields: Any) -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": name, "namespace": namespace}, **fields}
