"""Tests for strategies.benchmarks.tabular: lookups against the shipped NAS-Bench-201 tables, and errors."""

import csv

import numpy as np
import pytest

from strategies.benchmarks import tabular

ROW1 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
BEST_VAL = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_1x1~1|nor_conv_3x3~2|"


def test_shipped_copies_match_the_shared_tables():
    import filecmp
    import os
    shared = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "benchmarks")  # ../shared
    for name in ("nas_bench_201_12epoch.csv", "nas_bench_201_latency_ms.csv"):
        if os.path.exists(os.path.join(shared, name)):
            assert filecmp.cmp(os.path.join(tabular.BENCHMARKS_DIR, name), os.path.join(shared, name), shallow=False)


def test_lookup_of_known_rows(nb201_table, nb201):
    assert len(nb201_table) == 15625 == nb201.size
    arch = nb201.from_string(ROW1)
    np.testing.assert_allclose(nb201_table(arch[None]), [82.834])
    np.testing.assert_allclose(nb201_table.metric(arch, "cifar10-test"), [88.22])
    np.testing.assert_allclose(nb201_table.metric(np.stack([arch, arch]), "imagenet-val"), [35.4333] * 2, rtol=1e-6)
    assert nb201_table(arch[None]).dtype == np.float32
    assert nb201.to_string(nb201_table.best("cifar10-val")) == BEST_VAL
    assert nb201_table.values("cifar10-test").max() == pytest.approx(89.16)


def test_every_architecture_is_in_the_table_once(nb201_table, nb201):
    archs = np.asarray(nb201.sample(__import__("jax").random.key(0), 500))
    rows = nb201_table.rows(archs)
    np.testing.assert_array_equal(nb201_table.archs[rows], archs)


def test_latency_table_and_feasible_best(nb201, nb201_table):
    latency = tabular.nas_bench_201_latency(nb201)
    arch = nb201.from_string(ROW1)
    np.testing.assert_allclose(latency.metric(arch, "pixel3"), [17.238])
    fast = latency.metric(nb201_table.archs, "pixel3") <= 10.0
    best_fast = nb201_table.best("cifar10-val", fast)
    assert latency.metric(best_fast, "pixel3")[0] <= 10.0
    assert nb201_table(best_fast[None])[0] < nb201_table(nb201_table.best("cifar10-val")[None])[0]
    with pytest.raises(ValueError, match="loaded without a fitness column"):
        latency(arch[None])


def _write(path, rows, header=("index", "arch", "acc", "note")):
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def test_any_csv_in_the_same_format(tmp_path, nb201):
    other = "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|"
    path = _write(tmp_path / "t.csv", [(0, ROW1, 1.5, "a"), (1, other, 2.5, "b")])
    table = tabular.TabularObjective(path, nb201, "acc")
    assert table.columns == ("index", "acc")  # the text column is not a metric
    np.testing.assert_allclose(table(np.stack([nb201.from_string(other), nb201.from_string(ROW1)])), [2.5, 1.5])


def test_errors_name_the_problem(tmp_path, nb201, nb201_table):
    with pytest.raises(ValueError, match="no numeric column 'cifar10-tset'; columns are index, cifar10-test"):
        nb201_table.metric(nb201_table.archs[:1], "cifar10-tset")
    with pytest.raises(ValueError, match="decision 0"):
        nb201_table(np.array([[7, 0, 0, 0, 0, 0]]))
    path = _write(tmp_path / "partial.csv", [(0, ROW1, 1.0, "")])
    partial = tabular.TabularObjective(path, nb201, "acc")
    with pytest.raises(ValueError, match=r"architecture \|none~0\|.* is not in the table"):
        partial(np.zeros((1, 6), np.int32))
    duplicated = _write(tmp_path / "dup.csv", [(0, ROW1, 1.0, ""), (1, ROW1, 2.0, "")])
    with pytest.raises(ValueError, match="more than one row"):
        tabular.TabularObjective(duplicated, nb201, "acc")
    no_arch = _write(tmp_path / "noarch.csv", [(0, ROW1, 1.0, "")], header=("index", "genotype", "acc", "x"))
    with pytest.raises(ValueError, match="'arch' column"):
        tabular.TabularObjective(no_arch, nb201, "acc")
    bad_string = _write(tmp_path / "bad.csv", [(0, "|conv~0|", 1.0, "")])
    with pytest.raises(ValueError, match="nas_bench_201"):
        tabular.TabularObjective(bad_string, nb201, "acc")
