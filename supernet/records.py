"""Machine-readable run records: `metrics.jsonl` (one JSON object a line), `results.json` (written
once, when the job is complete) and `progress.json` (the job's status while it runs or after it
failed). Every file a run writes goes through here or `supernet.checkpoint`.

Every metrics line carries `stage`, `step` and `time` (Unix seconds). A stage that resumes from a
checkpoint at step s first `rewind`s the log: its lines past s are dropped, so the file never holds
a step twice.
"""

from __future__ import annotations

import contextlib
import datetime
import fnmatch
import json
import os
import shutil
import subprocess
import time

import numpy as np

from supernet import distributed, events


def to_jsonable(value):
    """numpy / jax scalars and arrays -> plain Python, recursively."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if hasattr(value, "tolist"):
        return np.asarray(value).tolist()
    return value


class MetricsLog:
    """Appends one JSON line per call to `workdir/metrics.jsonl` and mirrors its numbers into
    TensorBoard event files in `workdir` (`supernet.events`); only process 0 writes."""

    def __init__(self, workdir: str, name: str = "metrics.jsonl"):
        os.makedirs(workdir, exist_ok=True)
        self.file = os.path.join(workdir, name)
        self.events = events.EventMirror(workdir)
        self._drop_partial_last_line()

    def write(self, stage: str, step: int, **fields) -> None:
        """Appends one line (stage, step, time and `fields`) from the writing process only."""
        if not distributed.is_writer():
            return
        fields = to_jsonable({"stage": stage, "step": int(step), "time": time.time(), **fields})
        with open(self.file, "a") as f:
            f.write(json.dumps(fields) + "\n")
        self.events.write(fields)

    def lines(self) -> list[dict]:
        """Every complete line, parsed."""
        return read_lines(self.file)

    def rewind(self, stage: str, step: int) -> None:
        """Drops the lines of `stage` (and of its sub-stages `stage/...`) past `step`: what a
        resumed stage is about to write again."""
        if not distributed.is_writer():
            return
        ours = lambda line: line.get("stage") == stage or str(line.get("stage", "")).startswith(stage + "/")
        lines = self.lines()
        kept = [line for line in lines if not (ours(line) and line.get("step", 0) > step)]
        if len(kept) != len(lines):
            _write_atomically(self.file, "".join(json.dumps(line) + "\n" for line in kept))

    def _drop_partial_last_line(self) -> None:
        if distributed.is_writer():
            _drop_partial_last_line(self.file)


def read_lines(file: str) -> list[dict]:
    """Every complete line of a JSON-lines file, parsed ([] when there is no file)."""
    if not os.path.isfile(file):
        return []
    with open(file) as f:
        return [json.loads(line) for line in f if line.endswith("\n")]


def append_line(file: str, content: dict) -> None:
    """Appends one JSON line and syncs it to disk (process 0 only): what a killed run has finished
    stays finished."""
    if not distributed.is_writer():
        return
    _drop_partial_last_line(file)
    with open(file, "a") as f:
        f.write(json.dumps(to_jsonable(content)) + "\n")
        f.flush()
        os.fsync(f.fileno())


def _drop_partial_last_line(file: str) -> None:
    """A process killed mid-write leaves half a line; the next append must not continue it."""
    if not os.path.isfile(file):
        return
    with open(file, "rb") as f:
        raw = f.read()
    if raw and not raw.endswith(b"\n"):
        _write_atomically(file, raw[:raw.rfind(b"\n") + 1].decode())


def write_json(workdir: str, name: str, content: dict) -> str:
    """Writes `workdir/name` atomically and returns its path (process 0 only: the others return
    the path without writing)."""
    file = os.path.join(workdir, name)
    if not distributed.is_writer():
        return file
    os.makedirs(workdir, exist_ok=True)
    _write_atomically(file, json.dumps(to_jsonable(content), indent=2))
    return file


def read_json(workdir: str, name: str) -> dict | None:
    """The JSON file `workdir/name`, or None when it does not exist."""
    file = os.path.join(workdir, name)
    if not os.path.isfile(file):
        return None
    with open(file) as f:
        return json.load(f)


def write_progress(workdir: str, status: str, **fields) -> str:
    """`progress.json`: "running" (with the stage), "failed" (with the error) or "complete"."""
    return write_json(workdir, "progress.json", {"status": status, "time": time.time(), **fields})


# What a run leaves in its workdir; `--restart` deletes these.
RUN_FILES = ("run.json", "progress.json", "results.json", "metrics.jsonl", "checkpoints")
EVENT_FILES = "events.out.tfevents"  # the TensorBoard mirror's files start so
# The jobs' own outputs there (fnmatch patterns); `--restart` deletes them too, or the new run would
# resume from an old run's rows or show its pictures. AutoModel writes only RUN_FILES there.
JOB_OUTPUTS = (
    "ground_truth.csv", "ground_truth.part*of*.csv", "ground_truth.json",  # jobs/ground_truth.py
    "architecture.png", "effects.png", "importance.png", "ranking.png", "winner",  # jobs/search.py
    "arch_weights.png",  # jobs/differentiable.py (and architecture.png)
    "fine_tuned.jsonl", "ranking_*.png",  # jobs/ranking.py
    "best_so_far.png", "pareto.png",  # jobs/strategies_nb201.py
    "benchmark.json",  # jobs/benchmark.py
)


def has_run_files(workdir: str) -> bool:
    """Whether `workdir` holds what a run writes (`RUN_FILES`, TensorBoard events, checkpoints)."""
    names = os.listdir(workdir) if os.path.isdir(workdir) else []
    return any(n in RUN_FILES or n.startswith(EVENT_FILES) or n.endswith(".ckpt") for n in names)


def remove_run(workdir: str) -> None:
    """Deletes a previous run's files from `workdir` (checkpoints, records, TensorBoard events, the
    jobs' outputs); anything else, e.g. a user's notes, stays."""
    if not distributed.is_writer() or not os.path.isdir(workdir):
        return
    for name in os.listdir(workdir):
        path = os.path.join(workdir, name)
        if _is_run_output(name):
            shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)


def _is_run_output(name: str) -> bool:
    """Whether a workdir entry is a run's own, or the `.tmp` of one (`atomic_file`, killed mid-write)."""
    name = name.removesuffix(".tmp")
    return (name in RUN_FILES or name.startswith(EVENT_FILES) or name.endswith(".ckpt")
            or name == "checkpoints.corrupt" or any(fnmatch.fnmatchcase(name, p) for p in JOB_OUTPUTS))


def git_commit(directory: str | None = None) -> dict | None:
    """The git checkout that holds `directory` (default: this package's folder).

    Args:
        directory: a folder; its files must be tracked by the checkout (a package installed into a
            virtual environment that happens to lie inside some checkout is not that checkout's code).

    Returns:
        {"commit": the 40-character HEAD sha, "dirty": whether `git status --porcelain` lists any
        change}, or None when the folder is not part of a checkout or git is missing or fails.
    """
    directory = directory or os.path.dirname(os.path.abspath(__file__))

    def git(*args):
        return subprocess.run(["git", "-C", directory, *args], capture_output=True, text=True, timeout=30)

    try:
        head = git("rev-parse", "HEAD")
        tracked = git("ls-files", "--", ".")
        if head.returncode != 0 or tracked.returncode != 0 or not tracked.stdout.strip():
            return None
        status = git("status", "--porcelain")
        return {"commit": head.stdout.strip(), "dirty": status.returncode != 0 or bool(status.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return None


def provenance() -> dict:
    """Where a result was measured; never fails for want of git.

    Returns:
        {"package", "version" (`supernet.__version__`), "git" (`git_commit()`: None outside a
        checkout), "jax", "jaxlib", "backend" (`jax.default_backend()`), "device_kind" (of the
        first device), "device_count", "process_count", "utc" (ISO 8601, "+00:00")}.
    """
    import jax
    import jaxlib
    from supernet.version import __version__
    return {"package": "supernet-nas", "version": __version__, "git": git_commit(),
            "jax": jax.__version__, "jaxlib": jaxlib.__version__, "backend": jax.default_backend(),
            "device_kind": jax.devices()[0].device_kind, "device_count": jax.device_count(),
            "process_count": jax.process_count(),
            "utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}


def results_document(results: dict, *, job: str, config: dict, fingerprint: str, **fields) -> dict:
    """One results schema for every job: status ('complete' unless the job says otherwise, e.g. a
    ground-truth shard waiting for the others), best_arch, best_accuracy (or None with
    `best_accuracy_reason`), config, fingerprint, timings, provenance (`provenance()`), then the
    job's own fields."""
    results = dict(results)
    status = results.pop("status", "complete")
    best = {"best_arch": results.pop("best_arch", None), "best_accuracy": results.pop("best_accuracy", None),
            "best_accuracy_reason": results.pop("best_accuracy_reason", None)}
    if best["best_accuracy"] is None and not best["best_accuracy_reason"]:
        best["best_accuracy_reason"] = (f"the task's metric is {results['metric']!r}: see test_metric"
                                        if "test_metric" in results and results.get("metric") != "accuracy"
                                        else f"the {job} job does not retrain a searched architecture")
    return {"status": status, "job": job, **best, "config": config, "fingerprint": fingerprint,
            "timings": {**results.pop("timings", {}), **fields.pop("timings", {})}, "provenance": provenance(),
            **fields, **results}


@contextlib.contextmanager
def atomic_file(file: str, mode: str = "w", **open_options):
    """`with atomic_file(path) as f: ...` writes a temporary file, flushes it to disk, then
    renames it over `path`: readers see the old or the new file, never half of one."""
    with open(file + ".tmp", mode, **open_options) as f:
        yield f
        f.flush()
        os.fsync(f.fileno())
    os.replace(file + ".tmp", file)


def _write_atomically(file: str, text: str) -> None:
    with atomic_file(file) as f:
        f.write(text)
