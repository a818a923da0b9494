"""Wiring: the only package that chooses implementations.

``embedded`` builds the one-process mode (``eventbridge up``, ``eventbridge run``); ``cluster`` builds
the roles of cluster mode (``eventbridge controller``, ``eventsource``, ``sensor``, ``server``).
"""

from eventbridge.runtime.embedded import (
    EmbeddedRuntime,
    Settings,
    engine_checks,
    run_once,
    wait_for_workflow,
)

__all__ = ["EmbeddedRuntime", "Settings", "engine_checks", "run_once", "wait_for_workflow"]
