"""Trigger types, one module each, registered in :data:`eventbridge.triggers.base.TRIGGERS`.

Importing this package registers the built-in types.
"""

from eventbridge.triggers import argo_workflow, log

__all__ = ["argo_workflow", "log"]
