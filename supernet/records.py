"""Machine-readable run records: `metrics.jsonl` (one JSON object a line) and `results.json`."""

from __future__ import annotations

import json
import os

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

    def write(self, **fields) -> None:
        if not distributed.is_writer():
            return
        fields = to_jsonable(fields)
        with open(self.file, "a") as f:
            f.write(json.dumps(fields) + "\n")
        self.events.write(fields)


def write_json(workdir: str, name: str, content: dict) -> str:
    """Writes `workdir/name` atomically and returns its path (process 0 only: the others return
    the path without writing)."""
    file = os.path.join(workdir, name)
    if not distributed.is_writer():
        return file
    os.makedirs(workdir, exist_ok=True)
    with open(file + ".tmp", "w") as f:
        json.dump(to_jsonable(content), f, indent=2)
    os.replace(file + ".tmp", file)
    return file
