"""Runs one experiment: `python launch.py --config experiments/NAME.py[:variant] --workdir DIR`.

Flags, then `supernet.jobs.get(config.job).run(config, workdir)`; nothing else. The job unpacks
the config into the library's explicit arguments (the library never reads a config). Configs are
locked: a misspelt override such as `--config.supernet.stpes=10` is an error.
"""

from __future__ import annotations

import os
import time

from absl import app, flags
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "experiment config file, e.g. experiments/quickstart.py:runlocal",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "directory for results.json, metrics.jsonl, checkpoints")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}; use --config and --workdir only.")
    from supernet import jobs, records
    config, workdir = _CONFIG.value, _WORKDIR.value
    job = jobs.get(config.job)
    os.makedirs(workdir, exist_ok=True)
    tic = time.perf_counter()
    results = job.run(config, workdir)
    results = {**results, "config": config.to_dict(), "wall_time_s": time.perf_counter() - tic}
    print(f"wrote {records.write_json(workdir, 'results.json', results)}")


if __name__ == "__main__":
    app.run(main)
