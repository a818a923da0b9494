"""Shared pieces of the fuzz tests: JSON-like values, and a guard that runs one call and checks
that only the project's own errors come out, within a CPU-time and a memory budget."""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Callable
from typing import Any

from hypothesis import strategies as st

from eventbridge.errors import EventBridgeError

#: Per call: CPU seconds and bytes of new Python allocations that any input may cost.
CPU_BUDGET = 2.0
MEMORY_BUDGET = 64 * 1024 * 1024

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=25,
)
words = st.sampled_from(["a", "b", "body", "ref", "x", "items", "0", "1", "-1", "#", "name", "é", "²", "", " "])


def guarded(call: Callable[[], Any], *, trace_memory: bool = False) -> Any:
    """Run ``call``; return its result or the EventBridgeError it raised. Any other exception
    fails the test, and so does going over the CPU or memory budget."""
    if trace_memory:
        tracemalloc.start()
    started = time.process_time()
    try:
        result: Any = call()
    except EventBridgeError as exc:
        result = exc
    finally:
        spent = time.process_time() - started
        peak = 0
        if trace_memory:
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
    assert spent < CPU_BUDGET, f"took {spent:.2f}s of CPU"
    assert peak < MEMORY_BUDGET, f"allocated {peak / 1e6:.0f} MB"
    return result
