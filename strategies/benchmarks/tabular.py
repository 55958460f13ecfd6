"""Objectives read from a table: one row per architecture, keyed by the space's string for it.

The CSV format is that of `shared/benchmarks/` (and the copies in `strategies/benchmarks/`): a
column of architecture strings (`arch`, parsed with `space.from_string`) and numeric metric
columns. A `TabularObjective` is a plain callable `objective(archs int32[n, D]) -> float32[n]`
answering its fitness column, the same shape as any other objective, and `metric(archs, column)`
reads any other column (e.g. the test accuracy of what a search returns, or a latency).
"""

from __future__ import annotations

import csv
import os

import numpy as np

from strategies.constraints import radix_strides

BENCHMARKS_DIR = os.path.dirname(os.path.abspath(__file__))
NB201_ACCURACY_CSV = os.path.join(BENCHMARKS_DIR, "nas_bench_201_12epoch.csv")
NB201_LATENCY_CSV = os.path.join(BENCHMARKS_DIR, "nas_bench_201_latency_ms.csv")


def _read_csv(path, arch_column):
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or arch_column not in reader.fieldnames:
            raise ValueError(f"{path}: expected a header with an {arch_column!r} column, got {reader.fieldnames}.")
        rows = list(reader)
    if not rows:
        raise ValueError(f"{path}: the table has no rows.")
    return reader.fieldnames, rows


def _numeric_columns(fieldnames, rows, arch_column):
    """Every column (but the architecture's) whose cells all parse as numbers."""
    columns = {}
    for name in fieldnames:
        if name == arch_column:
            continue
        try:
            columns[name] = np.asarray([float(r[name]) for r in rows], np.float64)
        except (TypeError, ValueError):
            continue  # a text column: not a metric
    return columns


class TabularObjective:
    """Looks architectures up in a CSV table.

    Args:
      path: the CSV file.
      space: the search space whose `from_string` parses the architecture column.
      fitness_column: the column `__call__` answers (higher is better); None for a table used
        only through `metric` (e.g. latencies).
      arch_column: the name of the architecture-string column.
    """

    def __init__(self, path, space, fitness_column=None, arch_column="arch"):
        self.path, self.space = str(path), space
        fieldnames, rows = _read_csv(self.path, arch_column)
        self._values = _numeric_columns(fieldnames, rows, arch_column)
        self.columns = tuple(self._values)
        self.archs = np.stack([space.from_string(r[arch_column]) for r in rows]).astype(np.int32)
        self._strides = radix_strides(space.num_choices)
        numbers = self.archs.astype(np.int64) @ self._strides
        if len(np.unique(numbers)) != len(numbers):
            raise ValueError(f"{self.path}: some architectures appear in more than one row.")
        self._row_of = dict(zip(numbers.tolist(), range(len(numbers))))
        if fitness_column is not None:
            self._check_column(fitness_column)
        self.fitness_column = fitness_column

    def __len__(self):
        return len(self.archs)

    def _check_column(self, column):
        if column not in self._values:
            raise ValueError(f"{self.path}: no numeric column {column!r}; columns are {', '.join(self.columns)}.")

    def rows(self, archs) -> np.ndarray:
        """The table row of each architecture (int[n]); a ValueError names any missing one."""
        archs = self.space.validate(np.asarray(archs))
        archs = archs[None] if archs.ndim == 1 else archs
        numbers = (archs.astype(np.int64) @ self._strides).tolist()
        rows = [self._row_of.get(k, -1) for k in numbers]
        if -1 in rows:
            missing = archs[rows.index(-1)]
            raise ValueError(f"{self.path}: architecture {self.space.to_string(missing)} is not in the table.")
        return np.asarray(rows)

    def metric(self, archs, column) -> np.ndarray:
        """`column`'s value for each architecture in `archs` (int[n, D] or int[D]): float32[n]."""
        self._check_column(column)
        return self._values[column][self.rows(archs)].astype(np.float32)

    def __call__(self, archs) -> np.ndarray:
        if self.fitness_column is None:
            raise ValueError(f"{self.path}: this table was loaded without a fitness column; pass "
                             f"fitness_column=one of {', '.join(self.columns)}.")
        return self.metric(archs, self.fitness_column)

    def values(self, column) -> np.ndarray:
        """The whole column, row-aligned with `self.archs` (float64)."""
        self._check_column(column)
        return self._values[column].copy()

    def best(self, column, feasible=None) -> np.ndarray:
        """The architecture with the highest `column`, optionally among rows where `feasible`
        (bool per row) holds."""
        values = self.values(column)
        if feasible is not None:
            values = np.where(np.asarray(feasible, bool), values, -np.inf)
        return self.archs[int(np.argmax(values))]


def nas_bench_201(space, fitness_column="cifar10-val") -> TabularObjective:
    """The project copy of NAS-Bench-201's 12-epoch accuracies (see README.md here); `space` is
    the NAS-Bench-201 space (`supernet.spaces.get("nas_bench_201")`), passed in."""
    return TabularObjective(NB201_ACCURACY_CSV, space, fitness_column)


def nas_bench_201_latency(space) -> TabularObjective:
    """The project copy of HW-NAS-Bench's latencies (ms) for NAS-Bench-201 cells; use `metric`."""
    return TabularObjective(NB201_LATENCY_CSV, space)
