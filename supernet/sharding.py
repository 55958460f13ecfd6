"""Data parallelism over every device with a 1-D `Mesh` + `NamedSharding` (no pmap).

Parameters and optimiser state are replicated; batches are split along their first axis over the
mesh's `data` axis. `jax.jit` inserts the cross-device gradient mean itself, so the same step code
runs on one CPU, eight forced host devices, a GPU or a multi-host pod.

Per-host data: every loop builds the same *global* batch on every process (from the same seed)
and hands it to `shard_batch`, which keeps only this process's rows (`host_share`) and assembles
the global array from all processes' shares. The global batch sequence is therefore the same
for any number of processes; a batch size is always global.
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
    if n < available and jax.process_count() > 1:
        raise ValueError(f"a multi-process run uses every global device; asked for {num_devices} of {available} "
                         f"over {jax.process_count()} processes. Use num_devices=None (config: num_devices=0).")
    # Process-major device order: process p's devices hold rows [p*B/P, (p+1)*B/P) of a global
    # batch, which is what `host_share` gives it. Auto axes: XLA's partitioner places the
    # collectives, so vmapped population evaluation and per-example code need no annotations.
    devices = sorted(jax.devices()[:n], key=lambda d: (d.process_index, d.id))
    return Mesh(np.asarray(devices), (DATA_AXIS,), axis_types=(jax.sharding.AxisType.Auto,))


def replicated(mesh: Mesh) -> NamedSharding:
    """The sharding that puts a full copy on every device of `mesh`."""
    return NamedSharding(mesh, P())


def batch_sharded(mesh: Mesh) -> NamedSharding:
    """The sharding that splits the leading (batch) axis over the mesh's data axis."""
    return NamedSharding(mesh, P(DATA_AXIS))


def check_batch_size(batch_size: int, mesh: Mesh, what: str = "global batch size") -> None:
    """A ValueError, suggesting the nearest sizes, unless `batch_size` divides by the devices."""
    n = mesh.devices.size
    if batch_size % n:
        lower = max(n, batch_size // n * n)
        raise ValueError(f"{what} {batch_size} does not divide by the {n} devices of the mesh; "
                         f"use a multiple of {n}, e.g. {lower} or {lower + n}.")


def host_share(batch: np.ndarray, process_index: int | None = None, process_count: int | None = None) -> np.ndarray:
    """This process's rows of a global batch: the `process_index`-th of `process_count` equal,
    contiguous blocks (defaults: this process, all processes). The blocks of all processes,
    concatenated in process order, are the global batch."""
    index = jax.process_index() if process_index is None else process_index
    count = jax.process_count() if process_count is None else process_count
    if len(batch) % count:
        raise ValueError(f"a global batch of {len(batch)} rows does not split evenly over {count} processes; "
                         f"use a multiple of the global device count.")
    size = len(batch) // count
    return batch[index * size:(index + 1) * size]


def shard_batch(mesh: Mesh, *arrays: np.ndarray):
    """Puts global batches on the mesh, split along axis 0: every process passes the whole global
    batch (the same on every process) and contributes only its `host_share`."""
    sharding = batch_sharded(mesh)
    out = []
    for a in arrays:
        a = np.asarray(a)
        check_batch_size(a.shape[0], mesh)
        out.append(jax.make_array_from_process_local_data(sharding, host_share(a), a.shape))
    return out if len(out) > 1 else out[0]


def fetch(tree):
    """Device arrays -> numpy on every process, gathering the shards other processes hold (a
    batch-sharded output of a multi-process step is not fully addressable by any one process)."""
    def get(a):
        if isinstance(a, jax.Array) and not a.is_fully_addressable:
            from jax.experimental import multihost_utils
            return np.asarray(multihost_utils.process_allgather(a, tiled=True))
        return np.asarray(a)
    return jax.tree.map(get, tree)


def replicate(mesh: Mesh, tree):
    """`tree` placed on every device of `mesh`."""
    return jax.device_put(tree, replicated(mesh))


def prefetch(mesh: Mesh, batches, size: int = 2):
    """Global host batches -> batches on the mesh, `size - 1` ahead: the next batch's transfer is
    issued before the current one is handed out, so it overlaps with the step that uses it."""
    import collections
    queue = collections.deque()
    for batch in batches:
        queue.append(shard_batch(mesh, *batch))
        if len(queue) == size:
            yield queue.popleft()
    yield from queue
