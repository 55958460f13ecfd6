"""Multi-process start-up: `jax.distributed` for runs that span several processes (hosts).

`initialize` runs before any JAX computation (launch.py calls it first). Each process then sees
the global devices (`jax.devices()`, which `sharding.make_mesh` spans), produces only its share of
every global batch (`sharding.host_share`), and only process 0 writes files (`is_writer`).
"""

from __future__ import annotations

import os

import jax

MODES = ("auto", "yes", "no")


def detected_cluster() -> str | None:
    """The multi-process launcher this process runs under, from its environment, or None.
    Only launchers that start several processes count: a one-task SLURM job stays single-process."""
    if int(os.environ.get("SLURM_STEP_NUM_TASKS", os.environ.get("SLURM_NTASKS", "1"))) > 1:
        return "slurm"
    if int(os.environ.get("OMPI_COMM_WORLD_SIZE", "1")) > 1:
        return "open mpi"
    if "," in os.environ.get("TPU_WORKER_HOSTNAMES", ""):
        return "tpu pod"
    if os.environ.get("JAX_COORDINATOR_ADDRESS"):
        return "JAX_COORDINATOR_ADDRESS"
    return None


def initialize(mode: str = "auto", coordinator_address: str | None = None, num_processes: int | None = None,
               process_id: int | None = None) -> bool:
    """Starts `jax.distributed` when the run spans processes; returns whether it did.

    Explicit arguments (coordinator `host:port`, process count, this process's id) always start it.
    Otherwise `mode="auto"` starts it when `detected_cluster()` finds SLURM, Open MPI, a TPU pod
    slice or JAX_COORDINATOR_ADDRESS, letting `jax.distributed.initialize()` read the rest from
    the environment; `"yes"` always calls it (e.g. Kubernetes, which JAX detects itself); `"no"`
    never does. Prints this process's index, the process count and the devices.
    """
    if mode not in MODES:
        raise ValueError(f"distributed mode {mode!r} is not one of {MODES}; use auto (detect), yes or no.")
    explicit = coordinator_address or num_processes is not None or process_id is not None
    if explicit and None in (coordinator_address, num_processes, process_id):
        raise ValueError("an explicit multi-process start needs all three of --coordinator_address (host:port), "
                         "--num_processes and --process_id; pass all three, or none to auto-detect.")
    started = mode != "no" and bool(explicit or mode == "yes" or detected_cluster())
    if started:
        jax.distributed.initialize(coordinator_address, num_processes, process_id)
    print(summary(), flush=True)
    return started


def summary() -> str:
    """This process's index, the process count and the devices it sees (logged by every process)."""
    return (f"process {jax.process_index()} of {jax.process_count()}: {jax.local_device_count()} local, "
            f"{jax.device_count()} global {jax.default_backend()} device(s)")


def is_writer() -> bool:
    """Only process 0 writes results, metrics, event files and plots (the others compute the same
    numbers; their copies would race for the same files)."""
    return jax.process_index() == 0
