"""Machine-readable run records: `metrics.jsonl` (one JSON object a line) and `results.json`."""

from __future__ import annotations

import json
import os

import numpy as np


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
    """Appends one JSON line per call to `workdir/metrics.jsonl`."""

    def __init__(self, workdir: str, name: str = "metrics.jsonl"):
        os.makedirs(workdir, exist_ok=True)
        self.file = os.path.join(workdir, name)

    def write(self, **fields) -> None:
        with open(self.file, "a") as f:
            f.write(json.dumps(to_jsonable(fields)) + "\n")


def write_json(workdir: str, name: str, content: dict) -> str:
    """Writes `workdir/name` atomically and returns its path."""
    os.makedirs(workdir, exist_ok=True)
    file = os.path.join(workdir, name)
    with open(file + ".tmp", "w") as f:
        json.dump(to_jsonable(content), f, indent=2)
    os.replace(file + ".tmp", file)
    return file
