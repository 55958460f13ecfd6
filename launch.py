"""Runs one experiment: `python launch.py --config experiments/NAME.py[:variant] --workdir DIR`.

Flags, then `supernet.jobs.get(config.job).run(config, workdir)`; nothing else. The job unpacks
the config into the library's explicit arguments (the library never reads a config).

Before any work: the whole config is checked (`supernet.config_check`: a misspelt override such as
`--config.supernet.stpes=10` is one line naming `supernet.steps`), and the workdir's run identity
(`supernet.run_identity`): the same config resumes, another is refused unless `--restart`.
While the job runs, `progress.json` says "running" (then "failed" with the error, "interrupted"
after Ctrl-C, or "complete"); `results.json` is written once, atomically, when it is complete. A
rerun of a complete run says where its results are and exits.
"""

from __future__ import annotations

import difflib
import glob
import os
import signal
import sys
import time

import jax
from absl import app, flags, logging
from ml_collections import config_flags

# Unlocked and open to new keys so `options` dicts take their entry's fields from the command line;
# every other new key is refused by config_check.check_overrides, naming the closest valid key.
_CONFIG = config_flags.DEFINE_config_file("config", None, "experiment config file, e.g. experiments/quickstart.py:runlocal",
                                          lock_config=False, accept_new_attributes=True)
_RESTART = flags.DEFINE_bool("restart", False, "delete the run that --workdir holds (checkpoints, metrics, results) "
                             "and start this config there; without it a workdir of another config is refused")
_WORKDIR = flags.DEFINE_string("workdir", None, "directory for results.json, metrics.jsonl, checkpoints")
flags.mark_flags_as_required(["config", "workdir"])
_DISTRIBUTED = flags.DEFINE_enum("distributed", "auto", ["auto", "yes", "no"],
                                 "start jax.distributed: auto (when SLURM, Open MPI or a TPU pod slice started several "
                                 "processes, or the three flags below are given), yes (always; e.g. Kubernetes), no")
_COORDINATOR = flags.DEFINE_string("coordinator_address", None, "host:port of process 0, for an explicit multi-process start")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "number of processes, for an explicit multi-process start")
_VERBOSE = flags.DEFINE_bool("verbose", False, "keep the libraries' INFO log lines (orbax logs several per checkpoint)")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "this process's index (0..num_processes-1), for an explicit start")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}; use --config and --workdir only.")
    if not _VERBOSE.value:
        logging.set_verbosity(logging.WARNING)  # orbax and XLA log INFO lines on every checkpoint
    from supernet import distributed
    try:
        distributed.initialize(_DISTRIBUTED.value, _COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
    except ValueError as err:
        sys.exit(f"error: {err}")
    from supernet import backend, checkpoint, config_check, jobs, records, run_identity, runtime
    signal.signal(signal.SIGINT, runtime.interrupt_handler)   # Ctrl-C stops the run even where JAX swallows it
    config, workdir = _CONFIG.value, _WORKDIR.value
    try:
        config_check.check_overrides(config_flags.get_override_values(flags.FLAGS["config"]),
                                     config_check.defaults(config_flags.get_config_filename(flags.FLAGS["config"])))
        job = jobs.get(config.job)
        config_check.check(config, job)
        backend.from_config(config.get("backend"))
        os.makedirs(workdir, exist_ok=True)
        run = run_identity.claim(workdir, config.to_dict(), config.job, restart=_RESTART.value)
    except (config_check.ConfigError, run_identity.RunIdentityError, ValueError) as err:
        sys.exit(f"error: {err}")
    done = records.read_json(workdir, "results.json")
    if done and done.get("fingerprint") == run["fingerprint"] and done.get("status") == "complete":
        print(f"{workdir} already holds the complete results of this config: {os.path.join(workdir, 'results.json')}")
        return
    records.write_progress(workdir, "running", job=config.job)
    tic = time.perf_counter()
    try:
        results = job.run(config, workdir)
    except (checkpoint.NonFiniteError, checkpoint.CheckpointMismatchError) as err:
        records.write_progress(workdir, "failed", job=config.job, error=str(err))
        sys.exit(f"error: {err}")
    except KeyboardInterrupt:
        records.write_progress(workdir, "interrupted", job=config.job)
        sys.exit(f"interrupted; rerun the same command to resume from the last checkpoint in {workdir}.")
    except Exception as err:   # unexpected: say so in progress.json, and keep the traceback
        records.write_progress(workdir, "failed", job=config.job, error=f"{type(err).__name__}: {err}")
        raise
    results = records.results_document(
        results, job=config.job, config=config.to_dict(), fingerprint=run["fingerprint"],
        timings={"wall_time_s": time.perf_counter() - tic}, backend=backend.describe(),
        processes=jax.process_count(), devices=jax.device_count())
    print(f"wrote {records.write_json(workdir, 'results.json', results)}")
    records.write_progress(workdir, results["status"], job=config.job)


def check_paths(argv: list[str]) -> str | None:
    """One line for a config file that does not exist or a workdir that is a file (absl's own
    errors for these are tracebacks), else None."""
    for flag, value in zip(argv, argv[1:] + [""]):
        name, _, inline = flag.partition("=")
        value = inline if inline else value
        if name in ("--config", "-config"):
            path = value.split(":")[0]
            if not os.path.isfile(path):
                configs = [p for p in glob.glob(os.path.join(os.path.dirname(path) or ".", "*.py"))
                           if not os.path.basename(p).startswith("_")]
                near = difflib.get_close_matches(path, configs, 1, cutoff=0.8)
                hint = f" (did you mean {near[0]!r}?)" if near else ""
                return (f"error: config file {path!r} does not exist{hint}; pass --config "
                        f"experiments/<name>.py[:variant].")
        if name in ("--workdir", "-workdir") and os.path.exists(value) and not os.path.isdir(value):
            return f"error: --workdir {value!r} is a file, not a directory; pass a directory path."
    return None


if __name__ == "__main__":
    problem = check_paths(sys.argv[1:])
    if problem:
        sys.exit(problem)
    app.run(main)
