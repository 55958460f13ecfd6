"""Counting XLA compilations and timing jitted calls, for tests and benchmarks."""

from __future__ import annotations

import contextlib
import time

import jax
import numpy as np

# Recorded around every backend compile request, also one that loads the executable from a
# persistent compilation cache (JAX_COMPILATION_CACHE_DIR) instead of compiling it.
_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"


class CompileCounter:
    """What `count_compilations` yields: `count`, the executables built so far in the block."""
    count = 0


@contextlib.contextmanager
def count_compilations():
    """Counts every executable XLA builds inside the block: `with count_compilations() as c: ...;
    c.count`. An executable loaded from a persistent compilation cache (JAX_COMPILATION_CACHE_DIR)
    counts once too, so the count does not depend on what an earlier process compiled."""
    counter = CompileCounter()

    def on_compile(event, duration, **kwargs):
        counter.count += event == _COMPILE_EVENT

    jax.monitoring.register_event_duration_secs_listener(on_compile)
    try:
        yield counter
    finally:
        jax.monitoring.unregister_event_duration_listener(on_compile)


def median_seconds(fn, *args, repeats: int = 5) -> float:
    """Median wall time of `fn(*args)` (already compiled) over `repeats` calls, waiting for results."""
    times = []
    for _ in range(repeats):
        tic = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - tic)
    return float(np.median(times))
