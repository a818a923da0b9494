"""deploy/ as `kubectl apply -k deploy/` would send it: the real API server accepts every object."""

from __future__ import annotations

from kubecluster import KubeCluster, apply_crds, create_objects, render_kustomization
from kubernetes import client as k8s


def test_deploy_objects_are_accepted(cluster: KubeCluster) -> None:
    objects = render_kustomization()
    kinds = [o["kind"] for o in objects]
    assert kinds.count("CustomResourceDefinition") == 8
    assert {o["metadata"]["name"] for o in objects if o["kind"] == "Deployment"} == {
        "eventbridge-controller",
        "eventbridge-eventsource",
        "eventbridge-sensor",
        "eventbridge-server",
    }
    assert all(o["metadata"].get("namespace") == "eventbridge" for o in objects if o["kind"] in ("Deployment", "Role"))
    with cluster.api_client() as api:
        apply_crds(api, [o for o in objects if o["kind"] == "CustomResourceDefinition"])
        create_objects(api, [o for o in objects if o["kind"] != "CustomResourceDefinition"])
        apps = k8s.AppsV1Api(api)
        deployments = apps.list_namespaced_deployment("eventbridge").items
        assert sorted(d.spec.template.spec.containers[0].args[0] for d in deployments) == [
            "controller",
            "eventsource",
            "sensor",
            "server",
        ]
        assert {d.spec.template.spec.service_account_name for d in deployments} == {"eventbridge"}
        services = {s.metadata.name: s for s in k8s.CoreV1Api(api).list_namespaced_service("eventbridge").items}
        assert services["eventbridge-eventsource"].spec.ports[0].port == 12000
        assert services["eventbridge-server"].spec.ports[0].port == 2746
        # The role's RBAC is what the roles need: ask the API server as the ServiceAccount would.
        review = k8s.AuthorizationV1Api(api).create_subject_access_review(
            {
                "spec": {
                    "user": "system:serviceaccount:eventbridge:eventbridge",
                    "resourceAttributes": {
                        "namespace": "eventbridge",
                        "verb": "create",
                        "group": "coordination.k8s.io",
                        "resource": "leases",
                    },
                }
            }
        )
        assert review.status.allowed
