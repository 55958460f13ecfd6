"""Counting XLA compilations and timing jitted calls, for tests and benchmarks."""

from __future__ import annotations

import contextlib
import time

import jax
import numpy as np

_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"


class CompileCounter:
    count = 0


@contextlib.contextmanager
def count_compilations():
    """Counts every XLA backend compilation inside the block: `with count_compilations() as c: ...; c.count`."""
    counter = CompileCounter()

    def listener(event, duration, **kwargs):
        if event == _COMPILE_EVENT:
            counter.count += 1

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield counter
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)


def median_seconds(fn, *args, repeats: int = 5) -> float:
    """Median wall time of `fn(*args)` (already compiled) over `repeats` calls, waiting for results."""
    times = []
    for _ in range(repeats):
        tic = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - tic)
    return float(np.median(times))
