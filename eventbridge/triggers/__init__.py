"""Trigger types, one module each, registered in :data:`eventbridge.triggers.base.TRIGGERS`.

Importing this package registers the built-in types: ``argoWorkflow``, ``k8s``, ``http``,
``kafka`` and ``log``.
"""

from eventbridge.triggers import argo_workflow, http, k8s, kafka, log

__all__ = ["argo_workflow", "http", "k8s", "kafka", "log"]
