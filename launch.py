"""Runs one experiment: `python launch.py --config experiments/NAME.py[:variant] --workdir DIR`.

Flags, then `supernet.jobs.get(config.job).run(config, workdir)`; nothing else. The job unpacks
the config into the library's explicit arguments (the library never reads a config). Configs are
locked: a misspelt override such as `--config.supernet.stpes=10` is an error.
"""

from __future__ import annotations

import os
import time

import jax
from absl import app, flags
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "experiment config file, e.g. experiments/quickstart.py:runlocal",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "directory for results.json, metrics.jsonl, checkpoints")
flags.mark_flags_as_required(["config", "workdir"])
_DISTRIBUTED = flags.DEFINE_enum("distributed", "auto", ["auto", "yes", "no"],
                                 "start jax.distributed: auto (when SLURM, Open MPI or a TPU pod slice started several "
                                 "processes, or the three flags below are given), yes (always; e.g. Kubernetes), no")
_COORDINATOR = flags.DEFINE_string("coordinator_address", None, "host:port of process 0, for an explicit multi-process start")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "number of processes, for an explicit multi-process start")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "this process's index (0..num_processes-1), for an explicit start")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}; use --config and --workdir only.")
    from supernet import distributed
    distributed.initialize(_DISTRIBUTED.value, _COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
    from supernet import backend, jobs, records
    config, workdir = _CONFIG.value, _WORKDIR.value
    backend.from_config(config.get("backend"))
    job = jobs.get(config.job)
    os.makedirs(workdir, exist_ok=True)
    tic = time.perf_counter()
    results = job.run(config, workdir)
    results = {**results, "config": config.to_dict(), "backend": backend.describe(),
               "processes": jax.process_count(), "devices": jax.device_count(), "wall_time_s": time.perf_counter() - tic}
    print(f"wrote {records.write_json(workdir, 'results.json', results)}")


if __name__ == "__main__":
    app.run(main)
