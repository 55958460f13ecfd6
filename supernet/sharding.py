"""Data parallelism over every device with `jax.make_mesh` + `NamedSharding` (no pmap).

Parameters and optimiser state are replicated; batches are split along their first axis over the
mesh's `data` axis. `jax.jit` inserts the cross-device gradient mean itself, so the same step code
runs on one CPU, eight forced host devices, a GPU or a multi-host pod.
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

DATA_AXIS = "data"


def make_mesh(num_devices: int | None = None) -> Mesh:
    """A 1-D mesh over the first `num_devices` devices (default: all, across all hosts)."""
    available = jax.device_count()
    n = available if num_devices is None else int(num_devices)
    if not 1 <= n <= available:
        raise ValueError(f"asked for {num_devices} devices, {available} are available; "
                         f"use 1..{available} (or None for all).")
    # Auto axes: XLA's partitioner places the collectives, so vmapped population evaluation and
    # per-example code need no sharding annotations.
    return jax.make_mesh((n,), (DATA_AXIS,), devices=jax.devices()[:n],
                         axis_types=(jax.sharding.AxisType.Auto,))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def batch_sharded(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P(DATA_AXIS))


def check_batch_size(batch_size: int, mesh: Mesh, what: str = "global batch size") -> None:
    n = mesh.devices.size
    if batch_size % n:
        lower = max(n, batch_size // n * n)
        raise ValueError(f"{what} {batch_size} does not divide by the {n} devices of the mesh; "
                         f"use a multiple of {n}, e.g. {lower} or {lower + n}.")


def shard_batch(mesh: Mesh, *arrays: np.ndarray):
    """Puts host batches on the mesh, split along axis 0 (each host passes its own share)."""
    sharding = batch_sharded(mesh)
    out = []
    for a in arrays:
        check_batch_size(a.shape[0] * jax.process_count(), mesh)
        out.append(jax.make_array_from_process_local_data(sharding, np.asarray(a)))
    return out if len(out) > 1 else out[0]


def replicate(mesh: Mesh, tree):
    return jax.device_put(tree, replicated(mesh))
