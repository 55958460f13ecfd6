"""supernet.ranking (rank correlations, precision@k, top-1 pick, noise ceiling, reading tables) and
the `ranking` job end to end on a tiny synthetic table."""

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import scipy.stats

from supernet import ranking, spaces
from supernet import ground_truth

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write_synthetic_table(path, space, test_seed0, test_seed1, val_mean=None, seed=0):
    """A CSV with the ground-truth job's columns and MADE-UP values (synthetic, for exercising the
    code paths only; never a result). One distinct architecture per row."""
    n = len(test_seed0)
    archs = ground_truth.sample_architectures(space, n, seed)
    test_seed0, test_seed1 = np.asarray(test_seed0, float), np.asarray(test_seed1, float)
    val_mean = test_seed0 if val_mean is None else np.asarray(val_mean, float)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=ground_truth.columns([0, 1]))
        writer.writeheader()
        for i, arch in enumerate(archs):
            writer.writerow({"arch": space.to_string(arch), "val_accuracy_seed0": val_mean[i],
                             "val_accuracy_seed1": val_mean[i], "test_accuracy_seed0": test_seed0[i],
                             "test_accuracy_seed1": test_seed1[i], "val_accuracy_mean": val_mean[i],
                             "test_accuracy_mean": (test_seed0[i] + test_seed1[i]) / 2,
                             "params": space.params(arch), "flops": space.flops(arch), "train_seconds": 0.0})
    return path


def test_hand_computed_correlations():
    # 5 concordant pairs, 1 discordant: tau = 4/6; rank differences (0, 1, -1, 0): rho = 1 - 6*2/(4*15)
    assert ranking.kendall_tau([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(2 / 3)
    assert ranking.spearman_rho([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)
    # one tie in a: 5 concordant, 0 discordant, tau-b = 5 / sqrt((6 - 1) * 6)
    assert ranking.kendall_tau([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(5 / np.sqrt(30))
    assert np.isnan(ranking.kendall_tau([1, 1, 1], [1, 2, 3]))


def test_correlations_match_scipy_with_ties():
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 6, 40), rng.integers(0, 6, 40)  # many ties
    assert ranking.kendall_tau(a, b) == pytest.approx(scipy.stats.kendalltau(a, b, variant="b").statistic)
    assert ranking.spearman_rho(a, b) == pytest.approx(scipy.stats.spearmanr(a, b).statistic)


def test_perfect_and_reversed_predictors():
    truth = np.linspace(0.5, 0.9, 40)
    perfect = ranking.report(2 * truth + 1, truth)
    assert perfect["kendall_tau"] == pytest.approx(1) and perfect["spearman_rho"] == pytest.approx(1)
    assert perfect["precision_top5pct"] == 1 and perfect["precision_top10pct"] == 1
    assert perfect["top1_true_rank"] == 1 and perfect["top1_regret"] == 0 and perfect["n"] == 40
    reversed_ = ranking.report(-truth, truth)
    assert reversed_["kendall_tau"] == pytest.approx(-1) and reversed_["precision_top10pct"] == 0
    assert reversed_["top1_true_rank"] == 40 and reversed_["top1_regret"] == pytest.approx(0.4)
    assert ranking.report(-truth, truth, higher_is_better=False)["kendall_tau"] == pytest.approx(1)


def test_precision_at_k():
    truth = np.arange(20.0)  # true top 10% (k = 2): rows 19, 18
    predicted = truth.copy()
    predicted[18] = -1  # the predictor's top 2 are rows 19 and 17: one of two right
    assert ranking.precision_at(predicted, truth, 0.10) == 0.5
    assert ranking.precision_at(predicted, truth, 0.05) == 1  # k = 1: row 19
    # three-way tie for the top 2 places, one of them truly in the top 2: expected precision 1/3
    tied = np.zeros(20)
    tied[[19, 5, 6]] = 1
    assert ranking.precision_at(tied, truth, 0.10) == pytest.approx((2 / 3) / 2)


def test_top1_rank_regret_and_name():
    truth = np.array([0.7, 0.9, 0.8, 0.6])
    r = ranking.report([3, 1, 2, 0], truth, names=list("abcd"))  # picks row 0, truly third
    assert (r["top1_index"], r["top1_true_rank"], r["top1_name"]) == (0, 3, "a")
    assert r["top1_regret"] == pytest.approx(0.2) and r["top1_ties"] == 1
    tied = ranking.report([1, 1, 0, 0], truth)  # rows 0 and 1 tie: ranks 3 and 1 on average
    assert tied["top1_true_rank"] == 2 and tied["top1_ties"] == 2 and tied["top1_regret"] == pytest.approx(0.1)


def test_bad_inputs_are_errors():
    with pytest.raises(ValueError, match="aligned"):
        ranking.report([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="non-finite"):
        ranking.report([1, np.nan, 3], [1, 2, 3])


def test_read_ground_truth_and_noise_ceiling(tmp_path):
    space = spaces.get("nas_bench_201")
    path = write_synthetic_table(tmp_path / "synthetic.csv", space, [0.1, 0.2, 0.3, 0.4], [0.1, 0.3, 0.2, 0.4],
                                 val_mean=[0.4, 0.3, 0.2, 0.1])
    archs, values, rows = ranking.read_ground_truth(str(path), space)
    assert archs.shape == (4, 6) and archs.dtype == np.int32
    np.testing.assert_allclose(values, [0.1, 0.25, 0.25, 0.4])
    assert space.to_string(archs[2]) == rows[2]["arch"] and isinstance(rows[2]["params"], float)
    ceiling = ranking.noise_ceiling(rows, [0, 1])
    assert ceiling["test_seed_tau"] == pytest.approx(2 / 3)
    assert ceiling["val_test_tau"] == pytest.approx(-5 / np.sqrt(30))  # val reversed; the mean has one tie
    assert ranking.noise_ceiling(rows)["seeds"] == [0, 1]
    with pytest.raises(ValueError, match="no_such_column"):
        ranking.read_ground_truth(str(path), space, column="no_such_column")


def test_against_table_and_retrained_check(tmp_path, capsys):
    """The one-shot job's ranking check: an objective judged on a table's rows, and the cheap check."""
    space = spaces.get("nas_bench_201")
    truth = [0.5, 0.7, 0.6, 0.9, 0.8]
    path = write_synthetic_table(tmp_path / "t.csv", space, truth, truth)
    archs, _, rows = ranking.read_ground_truth(str(path), space)
    by_name = {r["arch"]: r["test_accuracy_mean"] for r in rows}
    oracle = lambda a: np.asarray([by_name[space.to_string(x)] for x in a])  # sees the rows it is given
    table_report = ranking.against_table(oracle, space, str(path))
    assert table_report["kind"] == "ground_truth_table" and table_report["n"] == 5
    assert table_report["kendall_tau"] == pytest.approx(1.0) and table_report["top1_true_rank"] == 1
    assert table_report["noise_ceiling"]["test_seed_tau"] == pytest.approx(1.0)
    saved = {"oracle": [0.9, 0.8, 0.7, 0.6, 0.5], "reversed": [0.5, 0.6, 0.7, 0.8, 0.9]}
    rescored = ranking.rescore([r["arch"] for r in sorted(rows, key=lambda r: -r["test_accuracy_mean"])], saved,
                               rows[:4])  # four rows trained so far
    assert rescored["oracle"]["n"] == 4 and rescored["oracle"]["kendall_tau"] == pytest.approx(1.0)
    assert rescored["reversed"]["kendall_tau"] == pytest.approx(-1.0)
    saved_file = tmp_path / "results.json"
    saved_file.write_text(json.dumps({"archs": [r["arch"] for r in rows], "rankers": {"oracle": {"scores": truth}}}))
    ranking.main([str(saved_file), "--table", str(path)])  # the command-line re-scoring
    assert "oracle: n 5  tau +1.000" in capsys.readouterr().out
    check = ranking.retrained_check([0.9, 0.8, 0.1], [0.95, 0.90, 0.97], ["a", "b", "c"], num_top=2)
    assert check["kind"] == "retrained_top_k_plus_random" and (check["num_top"], check["num_random"]) == (2, 1)
    assert check["top1_true_rank"] == 2 and check["kendall_tau"] == pytest.approx(-1 / 3)
    assert check["architectures"][2] == {"arch": "c", "predicted": 0.1, "retrained_test_accuracy": 0.97}


def test_noise_ceiling_with_four_seeds():
    rows = [{f"test_accuracy_seed{s}": v for s, v in enumerate(values)} | {"val_accuracy_mean": i,
                                                                           "test_accuracy_mean": i}
            for i, values in enumerate([(1, 1, 1, 1), (2, 4, 2, 2), (3, 2, 5, 3), (4, 3, 4, 4)])]
    # halves: seeds (0, 1) -> means 1, 3, 2.5, 3.5; seeds (2, 3) -> 1, 2, 4, 4 (one tie)
    ceiling = ranking.noise_ceiling(rows, [0, 1, 2, 3])
    expected = scipy.stats.kendalltau([1, 3, 2.5, 3.5], [1, 2, 4, 4]).statistic
    assert ceiling["halves"] == [[0, 1], [2, 3]] and ceiling["test_seed_tau"] == pytest.approx(expected)


def test_ranking_job_end_to_end(tmp_path):
    """Through launch.py on a tiny network. Proxies: naswot stands for all three here (the job
    calls them through one code path; tests/test_proxies.py covers each), to keep the test short."""
    space = spaces.get("nas_bench_201")
    rng = np.random.default_rng(0)
    table = write_synthetic_table(tmp_path / "synthetic_ground_truth.csv", space, rng.uniform(0.5, 0.9, 12),
                                  rng.uniform(0.5, 0.9, 12))
    workdir = tmp_path / "run"
    tiny = [f"--config.ground_truth.table={table}", "--config.ground_truth.max_rows=10",
            "--config.ground_truth.score_sample=12",  # the synthetic table's rows are this sample's
            "--config.rankers=('params', 'flops', 'naswot', 'supernet', 'supernet_loss', 'few_shot', 'fine_tuned', "
            "'few_shot+naswot', 'params+naswot')",
            "--config.supernet.sampling=fair",
            "--config.dataset.options.num_samples=1000", "--config.space.options.channels=4",
            "--config.space.options.stages=1", "--config.proxy_batch=16", "--config.supernet.steps=3",
            "--config.supernet.batch_size=16", "--config.supernet.calib_size=32",
            "--config.supernet.eval_batch_size=25", "--config.progress=False"]
    command = [sys.executable, os.path.join(REPO, "launch.py"), "--config", "experiments/ranking.py:runlocal",
               "--workdir", str(workdir), *tiny]
    proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "JAX_PLATFORMS": "cpu"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((workdir / "results.json").read_text())
    assert results["rows"] == 10 and results["table"] == str(table) and results["column"] == "test_accuracy_mean"
    assert set(results["noise_ceiling"]) >= {"test_seed_tau", "val_test_tau"}
    assert list(results["rankers"]) == ["params", "flops", "naswot", "supernet", "supernet_loss", "few_shot",
                                        "fine_tuned", "few_shot+naswot", "params+naswot"]
    scores = {name: r["scores"] for name, r in results["rankers"].items()}
    for hybrid in ("few_shot+naswot", "params+naswot"):
        np.testing.assert_allclose(scores[hybrid], ranking.rank_average(*(scores[c] for c in hybrid.split("+"))))
    for name, r in results["rankers"].items():
        assert r["n"] == 10 and -1 <= r["kendall_tau"] <= 1 and 1 <= r["top1_true_rank"] <= 10, name
        assert 0 <= r["precision_top10pct"] <= 1 and r["top1_regret"] >= 0 and r["top1_name"].startswith("|")
        assert (workdir / f"ranking_{name}.png").stat().st_size > 1000
        assert len(r["scores"]) == 12 and len(results["archs"]) == 12
    assert results["config"]["supernet"]["steps"] == 3 and "noise ceiling" in proc.stdout


def test_search_job_reports_against_a_named_table(tmp_path):
    """The quickstart's full config (it names the shipped table) on tiny settings and a synthetic
    table: results.json's `ranking` is the report against every row of the table."""
    space = spaces.get("nas_bench_201")
    rng = np.random.default_rng(1)
    table = write_synthetic_table(tmp_path / "synthetic_ground_truth.csv", space, rng.uniform(0.5, 0.9, 8),
                                  rng.uniform(0.5, 0.9, 8))
    tiny = [f"--config.ranking.table={table}", "--config.dataset.options.num_samples=1000",
            "--config.space.options.channels=4", "--config.space.options.stages=1", "--config.supernet.steps=3",
            "--config.supernet.batch_size=16", "--config.search.budget=6", "--config.search.population=3",
            "--config.search.calib_size=32", "--config.search.eval_batch_size=25", "--config.retrain.steps=3",
            "--config.retrain.batch_size=16", "--config.search.ensemble_size=1",
            "--config.hybrid.reference_size=16", "--config.progress=False"]
    command = [sys.executable, os.path.join(REPO, "launch.py"), "--config", "experiments/quickstart.py",
               "--workdir", str(tmp_path / "run"), *tiny]
    proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "JAX_PLATFORMS": "cpu"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((tmp_path / "run" / "results.json").read_text())["ranking"]
    assert report["kind"] == "ground_truth_table" and report["n"] == 8 and report["table"] == str(table)
    assert -1 <= report["kendall_tau"] <= 1 and set(report["noise_ceiling"]) >= {"test_seed_tau", "val_test_tau"}
    assert "ranking (ground_truth_table, n=8)" in proc.stdout
    assert (tmp_path / "run" / "ranking.png").stat().st_size > 1000 and report["scatter_png"].endswith("ranking.png")


def test_table_paths_and_rankers_are_checked(tmp_path, monkeypatch):
    from experiments import ranking as ranking_config
    from supernet.jobs import ranking as ranking_job
    (tmp_path / "mine.csv").write_text("arch\n")
    monkeypatch.chdir(tmp_path)
    assert ground_truth.resolve_table("mine.csv") == str(tmp_path / "mine.csv")  # the current directory first
    assert ground_truth.resolve_table("experiments/ranking.py") == os.path.join(REPO, "experiments", "ranking.py")
    with pytest.raises(FileNotFoundError, match="ground_truth.py"):
        ground_truth.resolve_table("benchmarks/no_such_table.csv")
    config = ranking_config.get_config("runlocal")
    for bad in (("params", "grasp"), ("few_shot+grasp",)):
        config.rankers = bad
        with pytest.raises(ValueError, match="valid: params, flops, synflow, naswot, snip, supernet.*joined by '\\+'"):
            ranking_job.check(config)


def test_rank_average_is_the_mean_rank_scaled_to_one():
    np.testing.assert_allclose(ranking.rank_average([10, 30, 20]), [0.0, 1.0, 0.5])
    # Two rankers that disagree on the order: the hybrid splits the difference; ties share a rank.
    np.testing.assert_allclose(ranking.rank_average([1, 2, 3, 4], [4, 3, 3, 1]), [0.5, 5 / 12, 7 / 12, 0.5])
    assert ranking.rank_average([np.nan, 1.0, 2.0])[0] == 0.0  # a failed evaluation ranks lowest
    with pytest.raises(ValueError, match="same architectures"):
        ranking.rank_average([1, 2, 3], [1, 2])


def test_a_table_is_only_used_on_the_task_it_was_made_on(tmp_path, capsys):
    """Each table records its task (dataset, space, seed; ground_truth.json beside it): a run on
    another task is refused before any work, with the overrides that fix it."""
    from experiments import quickstart
    from experiments import ranking as ranking_config
    from supernet.jobs import search as search_job
    from supernet.jobs import ranking as ranking_job
    official = "strategies/benchmarks/ground_truth_nb201_mnist1d.csv"
    ranking_job.check(ranking_config.get_config())  # the shipped tables match the configs that use them
    search_job.check(quickstart.get_config())
    config = ranking_config.get_config()
    config.ground_truth.table = official
    with pytest.raises(ValueError, match="dataset.options.noise is 1.0 there and 2.0 here") as err:
        ranking_job.check(config)
    fix = [arg for arg in str(err.value).split() if arg.startswith("--config.dataset")]
    assert fix == ["--config.dataset.options.noise=1.0", "--config.dataset.options.num_samples=20000",
                   "--config.dataset.options.train_split=0.25,"]
    config.dataset.options.update(noise=1.0, num_samples=20000, train_split=0.25)
    ranking_job.check(config)
    config.seed = 1  # another train/val carve
    with pytest.raises(ValueError, match="seed is 0 there and 1 here"):
        ranking_job.check(config)
    config.ground_truth.check_task = False
    ranking_job.check(config)
    table = write_synthetic_table(tmp_path / "mine.csv", spaces.get("nas_bench_201"), [0.5, 0.6], [0.5, 0.6])
    config = ranking_config.get_config()
    config.ground_truth.table = str(table)
    ranking_job.check(config)  # a table without a task file (made before they existed): not checked, said so
    assert "mine.csv has no task file (mine.json)" in capsys.readouterr().out


def test_launch_refuses_a_table_from_another_task(tmp_path):
    proc = subprocess.run([sys.executable, os.path.join(REPO, "launch.py"), "--config", "experiments/ranking.py",
                           "--workdir", str(tmp_path), "--config.ground_truth.table=strategies/benchmarks/"
                           "ground_truth_nb201_mnist1d.csv"], cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "JAX_PLATFORMS": "cpu"})
    assert proc.returncode != 0 and "--config.dataset.options.noise=1.0" in proc.stderr
    assert not (tmp_path / "run.json").exists()  # refused before the run was claimed


@pytest.mark.parametrize("call, message", [
    (lambda: ranking.kendall_tau([1, 2, 3], [1, 2]), r"aligned 1-D arrays .* shapes \(3,\) and \(2,\)"),
    (lambda: ranking.spearman_rho([[1, 2]], [[1, 2]]), "aligned 1-D arrays"),
    (lambda: ranking.precision_at([1, 2, 3], [3, 2, 1], 0), r"fraction must lie in \(0, 1\], got 0"),
    (lambda: ranking.rescore(["a", "b"], {"params": [1, 2]}, [{"arch": "c", "test_accuracy_mean": 0.5}]),
     "none of the 2 scored architectures is in the table's 1 rows"),
])
def test_misuse_of_the_ranking_helpers_is_one_line(call, message):
    with pytest.raises(ValueError, match=message):
        call()
