"""The garbage collector of a long-running process."""

from __future__ import annotations

import gc


def settle_after_start() -> None:
    """Collect once, then move every object alive now out of the collector's view (``gc.freeze``).

    After start-up the process holds tens of thousands of long-lived objects (modules, models,
    the running sources and sensors). Each full collection walked them all, about 20 ms with the
    event loop stopped, which showed as the slowest webhook answers (docs/performance.md, B1).
    Frozen, they are no longer walked. The price: an object alive now that later dies in a
    reference cycle is never freed; objects freed by reference counting (nearly all) are."""
    gc.collect()
    gc.freeze()


def unsettle() -> None:
    """Give the frozen objects back to the collector (when the service stops: in one process that
    starts and stops services many times, as tests do, nothing then stays frozen for good)."""
    gc.unfreeze()


__all__ = ["settle_after_start", "unsettle"]
