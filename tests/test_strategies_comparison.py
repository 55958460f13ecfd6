"""Tests for the comparison runner and the NAS-Bench-201 experiment config."""

import json

import numpy as np
import pytest

from experiments import strategies_nb201
from strategies.benchmarks import tabular
from supernet.jobs import strategies_nb201 as comparison


def test_best_so_far_follows_the_first_best_by_fitness():
    fitness = np.array([[1.0, 3.0, 2.0, 3.0, np.nan, 5.0]])
    report = np.array([[10.0, 30.0, 20.0, 31.0, 99.0, 50.0]])
    np.testing.assert_array_equal(comparison.best_so_far(fitness, report), [[10, 30, 30, 30, 30, 50]])


def test_run_comparison_writes_its_outputs(tmp_path, nb201, nb201_table):
    names = ["random", "evolution"]
    results = comparison.run_comparison(nb201, nb201_table, names, budgets=[5, 12], seeds=2, workdir=str(tmp_path),
                                        strategy_options={"evolution": {"population_size": 4, "tournament_size": 2}},
                                        progress=False)
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["table"] == results["table"]
    assert set(saved["table"]) == set(names) and set(saved["table"]["random"]) == {"5", "12"}
    assert saved["reference"]["report"] == pytest.approx(89.03)
    lines = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert len(lines) == len(names) * 2 * 2
    for line in lines:  # the reported value is the test accuracy of the best-by-validation query
        arch = nb201.from_string(line["arch"])
        assert nb201_table.metric(arch, "cifar10-test")[0] == pytest.approx(line["report"])
        assert nb201_table(arch[None])[0] == pytest.approx(line["fitness"])
    means = [np.mean([l["report"] for l in lines if l["strategy"] == "random" and l["budget"] == 12])]
    assert saved["table"]["random"]["12"]["mean"] == pytest.approx(means[0])
    found = [l["fitness"] >= saved["reference"]["fitness"] - 1e-6 for l in lines if l["budget"] == 12]
    assert sum(saved["table"][n]["12"]["found_reference"] for n in names) == pytest.approx(sum(found) / 2)
    assert (tmp_path / "best_so_far.png").stat().st_size > 1000
    assert "beats_random_at_5" in saved["targets"]
    explained = saved["explain"]["evolution"]  # the first seed's 12 queries, explained
    assert explained["num_results"] == 12 and set(explained["importance"]) == set(nb201.decision_names)


def test_identical_query_sequences_counts_seeds_per_pair_and_budget():
    rng = np.random.default_rng(0)
    runs = rng.integers(0, 5, size=(3, 6, 4))  # 3 seeds, 6 queries
    other = runs.copy()
    other[1, 4] = (other[1, 4] + 1) % 5  # seed 1 departs at query 5
    other[2, 0] = (other[2, 0] + 1) % 5  # seed 2 at once
    counts = comparison.identical_query_sequences({"a": runs, "a again": runs.copy(), "b": other}, [4, 6])
    assert counts == {"a vs a again": {"4": 3, "6": 3}, "a vs b": {"4": 2, "6": 1}, "a again vs b": {"4": 2, "6": 1}}


def test_the_comparison_reports_a_strategy_under_two_names_as_identical(tmp_path, nb201, nb201_table, monkeypatch):
    # "alias" is `local` under another name: the same search, so the same queries on every seed.
    real_get = comparison.registry.get
    monkeypatch.setattr(comparison.registry, "get",
                        lambda name, *a, **k: real_get("local" if name == "alias" else name, *a, **k))
    results = comparison.run_comparison(nb201, nb201_table, ["local", "alias"], budgets=[4, 15], seeds=3,
                                        workdir=str(tmp_path), progress=False)
    counts = results["identical_query_sequences"]
    assert counts == {"local vs alias": {"4": 3, "15": 3}}
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["identical_query_sequences"] == counts


def test_targets_are_computed_from_the_table():
    summary = {"random": {"5": {"mean": 88.0}, "12": {"mean": 88.5}},
               "evolution": {"5": {"mean": 88.4}, "12": {"mean": 88.2}}}
    targets = comparison._targets(summary, [5, 12], {"report": 89.0})
    assert targets["reference_report"] == 89.0
    assert targets["gap_to_reference"]["evolution"] == pytest.approx({"5": 0.6, "12": 0.8})
    assert targets["best_at_5"] == {"strategy": "evolution", "gap_to_reference": pytest.approx(0.6)}
    assert targets["best_at_12"]["strategy"] == "random"
    assert targets["beats_random_at_5"] == {"evolution": True}


def test_found_reference_counts_seeds_that_reached_the_best_fitness():
    fitness = np.array([[1.0, 5.0, 2.0], [np.nan, 2.0, 3.0]])
    np.testing.assert_array_equal(comparison._found(fitness, 5.0), [[False, True, True], [False, False, False]])


def test_run_comparison_with_a_latency_limit(tmp_path, nb201, nb201_table):
    latency = tabular.nas_bench_201_latency(nb201)
    results = comparison.run_comparison(nb201, nb201_table, ["random", "evolution"], budgets=[10], seeds=[3, 4],
                                        workdir=str(tmp_path), latency_table=latency, latency_column="pixel3",
                                        latency_limit=8.0, progress=False)
    assert results["reference"]["feasible_fraction"] < 0.5
    for name, front in results["pareto"].items():
        assert front["violations"] == 0
        cost = [p["cost"] for p in front["points"]]
        fitness = [p["fitness"] for p in front["points"]]
        assert max(cost) <= 8.0 and np.all(np.diff(cost) > 0) and np.all(np.diff(fitness) > 0)
    assert (tmp_path / "pareto.png").exists()


def test_comparison_is_deterministic(tmp_path, nb201, nb201_table):
    a = comparison.run_comparison(nb201, nb201_table, ["evolution"], [8], 2, str(tmp_path / "a"), progress=False)
    b = comparison.run_comparison(nb201, nb201_table, ["evolution"], [8], 2, str(tmp_path / "b"), progress=False)
    assert a["table"] == b["table"]


def test_a_rerun_resumes_the_finished_strategies(tmp_path, nb201, nb201_table, monkeypatch):
    first = comparison.run_comparison(nb201, nb201_table, ["random", "evolution"], [6], 2, str(tmp_path),
                                      progress=False)
    lines = (tmp_path / "metrics.jsonl").read_text()
    (tmp_path / "checkpoints" / "comparison" / "evolution.npz").unlink()  # as if killed during evolution
    searched = []
    real_search = comparison.run_search
    monkeypatch.setattr(comparison, "run_search", lambda strategy, *a: searched.append(strategy) or real_search(strategy, *a))
    again = comparison.run_comparison(nb201, nb201_table, ["random", "evolution"], [6], 2, str(tmp_path),
                                      progress=False)
    assert len(searched) == 1  # random was loaded, only evolution ran again
    assert again["table"] == first["table"] and again["wall_seconds"]["random"] == first["wall_seconds"]["random"]
    assert (tmp_path / "metrics.jsonl").read_text().splitlines()[:2] == lines.splitlines()[:2]


def test_experiment_config_variants():
    base = strategies_nb201.get_config()
    assert base.job == "strategies_nb201" and base.seeds >= 20 and tuple(base.budgets) == (100, 300)
    assert set(base.strategies) == {"random", "evolution", "bayesian", "reinforce", "autoencoder", "local"}
    assert base.latency_table == ""
    local = strategies_nb201.get_config("runlocal")
    assert local.seeds < base.seeds and max(local.budgets) < max(base.budgets)
    both = strategies_nb201.get_config("runlocal,latency")
    assert both.latency_table.endswith("nas_bench_201_latency_ms.csv") and both.seeds == local.seeds
    assert base.prior == "" and strategies_nb201.get_config("prior").prior == "params"
    with pytest.raises(ValueError, match="valid: latency, prior, runlocal"):
        strategies_nb201.get_config("fast")


def test_comparison_with_a_parameter_count_prior(tmp_path, nb201, nb201_table):
    results = comparison.run_comparison(nb201, nb201_table, ["random"], budgets=[4], seeds=2, workdir=str(tmp_path),
                                        prior="params", progress=False)
    assert results["prior"] == "params"
    # Random search with the prior asks the best-scored of its uniform candidates: large cells.
    params = [nb201.params(nb201.from_string(json.loads(l)["arch"]))
              for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert min(params) > np.median([nb201.params(a) for a in np.asarray(nb201_table.archs)[::97]])
    with pytest.raises(ValueError, match="prior must be one of"):
        comparison.run_comparison(nb201, nb201_table, ["random"], budgets=[4], seeds=1, workdir=str(tmp_path / "x"),
                                  prior="latency", progress=False)


def test_the_job_runs_the_seeds_from_first_seed(tmp_path):
    config = strategies_nb201.get_config("runlocal")
    config.strategies, config.seeds, config.first_seed, config.budgets = ("random",), 2, 100, (3,)
    config.progress = False
    assert strategies_nb201.get_config().first_seed == 0
    assert comparison.run(config, str(tmp_path))["seeds"] == [100, 101]
