"""launch.py end to end on tiny settings: results files, locked configs, the benchmark job."""

import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def launch(*args, timeout=600):
    return subprocess.run([sys.executable, os.path.join(REPO, "launch.py"), *args], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, "JAX_PLATFORMS": "cpu"})


def test_quickstart_writes_results(tmp_path):
    tiny = ["--config.supernet.steps=12", "--config.search.budget=6", "--config.search.population=3",
            "--config.retrain.steps=10", "--config.space.options.channels=4", "--config.space.options.stages=1",
            "--config.search.calib_size=64", "--config.progress=False"]
    proc = launch("--config", "experiments/quickstart.py:runlocal", "--workdir", str(tmp_path), *tiny)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["best_arch"].startswith("|") and results["best_arch"].count("~") == 6
    assert 0.0 <= results["best_accuracy"] <= 1.0 and results["evaluated"] == 6
    assert results["config"]["supernet"]["steps"] == 12
    assert set(results["timings"]) >= {"supernet_training_s", "search_s", "retrain_s"}
    lines = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert {l["stage"] for l in lines} >= {"supernet", "search", "retrain/0", "retrain/1", "retrain/2"}
    assert all({"stage", "step", "time"} <= set(l) for l in lines)
    assert results["status"] == "complete" and results["fingerprint"] and "wall_time_s" in results["timings"]
    provenance = results["provenance"]
    assert set(provenance) >= {"version", "git", "jax", "jaxlib", "backend", "device_kind", "device_count",
                               "process_count", "utc"}
    assert provenance["backend"] == "cpu" and provenance["device_count"] >= 1 and provenance["utc"].endswith("+00:00")
    assert len(provenance["git"]["commit"]) == 40  # the tests run from a checkout
    assert "best architecture:" in proc.stdout
    assert results["winner_dir"] == str(tmp_path / "winner") and (tmp_path / "winner" / "forward.jax").stat().st_size > 0
    assert results["explain"]["num_results"] == 6 and (tmp_path / "importance.png").stat().st_size > 1000
    ensemble = results["ensemble"]
    assert len(ensemble["members"]) == 3 and len(set(ensemble["members"])) == 3
    assert ensemble["members"][0] == results["best_arch"]
    assert abs(sum(ensemble["weights"]) - 1) < 1e-5 and 0 <= ensemble["test_accuracy"] <= 1
    check = results["ranking"]  # no table named: the supernet's 3 favourites + 3 random, retrained
    assert check["kind"] == "retrained_top_k_plus_random" and check["n"] == 6 and check["num_top"] == 3
    rows = check["architectures"]
    assert [r["arch"] for r in rows[:3]] == ensemble["members"] and len({r["arch"] for r in rows}) == 6
    assert [r["retrained_test_accuracy"] for r in rows[:3]] == pytest.approx(ensemble["member_test_accuracies"])
    assert -1 <= check["kendall_tau"] <= 1 and "ranking (retrained_top_k_plus_random, n=6)" in proc.stdout
    assert (tmp_path / "ranking.png").stat().st_size > 1000


def test_a_module_of_yours_is_searched_from_a_config(tmp_path):
    """quickstart.py:module: the space is a Linen module with nas primitives, named in the config."""
    tiny = ["--config.supernet.steps=8", "--config.search.budget=4", "--config.search.population=2",
            "--config.retrain.steps=4", "--config.search.ensemble_size=1", "--config.ranking.check_size=1",
            "--config.progress=False"]
    proc = launch("--config", "experiments/quickstart.py:module", "--workdir", str(tmp_path / "a"), *tiny)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((tmp_path / "a" / "results.json").read_text())
    assert results["space"]["name"] == "nas" and "stage.depth" in results["space"]["decisions"]
    assert "stage.depth=" in results["best_arch"] and results["params"] > 0


def test_a_regression_is_searched_from_a_config(tmp_path):
    """quickstart.py:regression: the generated `sines` data, a module of yours, task.loss="mse" and a
    metric function named by its import path: the search, the retrained winner, the ensemble and
    the ranking check all use that metric."""
    tiny = ["--config.supernet.steps=8", "--config.search.budget=4", "--config.search.population=2",
            "--config.retrain.steps=4", "--config.search.ensemble_size=2", "--config.ranking.check_size=1",
            "--config.dataset.options.num_samples=200", "--config.progress=False",
            "--config.task.metric=supernet.task:mae", "--config.task.higher_is_better=false"]
    proc = launch("--config", "experiments/quickstart.py:regression", "--workdir", str(tmp_path), *tiny)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    assert (results["loss"], results["metric"], results["higher_is_better"]) == ("mse", "mae", False)
    assert results["test_metric"] > 0 and results["ensemble"]["test_metric"] > 0
    assert results["best_accuracy"] is None and results["best_accuracy_reason"] == "the task's metric is 'mae': see test_metric"
    rows = results["ranking"]["architectures"]
    assert all(r["retrained_negative_test_mae"] < 0 for r in rows) and "test mae retrained from scratch" in proc.stdout


@pytest.mark.parametrize("setting, message", [
    (dict(loss="hinge"), "task.loss='hinge' is not valid; valid: cross_entropy, mse, mae, or 'package.module:"),
    (dict(metric="acuracy"), r"task.metric='acuracy' is not valid \(did you mean 'accuracy'\?\)"),
    (dict(loss="cross_entropy", metric="mse"), "task: metric 'mse' compares values"),
    (dict(loss="mse", metric="supernet.task:nope"), "task.metric 'supernet.task:nope' cannot be imported"),
    (dict(loss="mse", metric="supernet.task:mae"), "whether higher is better cannot be inferred"),
    (dict(loss="mse", higher_is_better="maybe"), "task.higher_is_better must be 'true', 'false' or ''"),
])
def test_a_bad_task_is_named_before_any_work(setting, message):
    from experiments import quickstart
    from supernet import config_check, jobs
    config = quickstart.get_config("runlocal")
    config.task.update(setting)
    with pytest.raises(config_check.ConfigError, match=message):
        config_check.check(config, jobs.get(config.job))
    config = quickstart.get_config("regression")
    config.ranking.table = "strategies/benchmarks/ground_truth_nb201_mnist1d.csv"
    with pytest.raises(config_check.ConfigError, match="ranking.table: the tables hold accuracies"):
        config_check.check(config, jobs.get(config.job))
    config = quickstart.get_config("regression")
    config.search.ensemble_method = "vote"
    with pytest.raises(config_check.ConfigError, match="a voting ensemble needs class labels"):
        config_check.check(config, jobs.get(config.job))


def test_a_module_whose_outputs_are_not_one_per_class_is_named():
    from supernet.spaces.module import from_module
    assert from_module("experiments.own_cnn:Net", 10, (8, 8, 1)).input_shape == (8, 8, 1)
    with pytest.raises(ValueError, match=r"space.options.module 'experiments.own_cnn:Net' gives 10 outputs, but the "
                                         r"data has 5 classes; make its last layer nn.Dense\(5\)"):
        from_module("experiments.own_cnn:Net", 5, (8, 8, 1))


@pytest.mark.parametrize("experiment, settings, message", [
    ("quickstart:runlocal", {"search.max_params": -1}, r"search.max_params must be >= 0 \(0: no limit\), got -1"),
    ("quickstart:runlocal", {"supernet.batch_size": 100000},
     r"supernet.batch_size=100000 is larger than the train split \(1150 examples of digits\); lower "
     r"--config.supernet.batch_size to at most 1150"),
    ("quickstart:runlocal", {"search.options.mutation_order": "randm"},
     r"search.options: evolution: mutation_order must be one of .*, got 'randm' \(did you mean 'random'\?\)"),
    ("quickstart:runlocal", {"search.options.population_size": -3}, "population_size must be in 1..capacity"),
    ("quickstart:runlocal", {"ranking.table": "nope.csv"},
     r"ranking.table='nope.csv' does not exist \(looked at [^,]*nope.csv\); set --config.ranking.table to"),
    ("quickstart:regression", {"task.loss": "cross_entropy"}, "real-valued targets; set --config.task.loss=mse"),
    ("quickstart:runlocal", {"dataset.name": "cifar10"},
     "dataset.options.data_dir is not set; pass --config.dataset.options.data_dir=DIR, the `cifar-10-batches-py`"),
    ("quickstart:runlocal", {"search.metric": "acc"}, r"search.metric='acc' is not valid \(did you mean 'accuracy'"),
    ("quickstart:runlocal", {"backend.cell": "sparce"}, r"backend.cell='sparce' is not valid \(did you mean 'sparse'"),
    ("strategies_nb201:runlocal", {"strategies": ("random", "evolutoin")},
     r"strategies='evolutoin' is not valid \(did you mean 'evolution'\?\); valid: autoencoder"),
    ("strategies_nb201:runlocal", {"prior": "parms"}, r"prior='parms' is not valid \(did you mean 'params'\?\); "
                                                      r"valid: '', params, flops"),
    ("strategies_nb201:runlocal", {"fitness_column": "cifar10-vall"},
     r"fitness_column='cifar10-vall' is not valid \(did you mean 'cifar10-val'\?\)"),
    ("ranking:runlocal", {"rankers": ("parms",)}, r"unknown ranker\(s\) \['parms'\] \(did you mean 'params'\?\)"),
    ("ranking:runlocal", {"ground_truth.table": "nope.csv"},
     r"ground_truth.table='nope.csv' does not exist \(looked at [^,]*\); make one"),
    ("quickstart:runlocal", {"ranking.table": "strategies/benchmarks/nas_bench_201_12epoch.csv"},
     r"ranking.table: .*expected columns 'arch' and 'test_accuracy_mean'; the header has \['index'"),
    ("ranking", {"ground_truth.table": "strategies/benchmarks/ground_truth_cnn_mnist1d.csv"},
     r"was made on space 'cnn1d', but this run searches 'nas_bench_201': run a config of that space"),
    ("ground_truth:runlocal", {"ground_truth.shard_index": 2, "ground_truth.num_shards": 2},
     r"ground_truth.shard_index 2 must lie in 0..1 \(ground_truth.num_shards=2\)"),
])
def test_a_bad_value_is_one_line_before_any_work(experiment, settings, message):
    """Values launch.py would only trip on in the job are refused by its check, naming the key and the fix."""
    import importlib
    from supernet import config_check, jobs
    name, _, variant = experiment.partition(":")
    config = importlib.import_module(f"experiments.{name}").get_config(variant)
    for key, value in settings.items():
        *parents, leaf = key.split(".")
        section = config
        for parent in parents:
            section = section[parent]
        section[leaf] = value
    with pytest.raises(config_check.ConfigError, match=message):
        config_check.check(config, jobs.get(config.job))


def test_a_module_that_cannot_be_built_is_named_before_any_work():
    from experiments import quickstart
    from supernet import config_check, jobs
    config = quickstart.get_config("module")
    config.space.options.module = "experiments.own_cnn:NoSuchNet"
    with pytest.raises(config_check.ConfigError,
                       match="space.options.module 'experiments.own_cnn:NoSuchNet' cannot be built"):
        config_check.check(config, jobs.get(config.job))

def test_unknown_config_key_is_an_error(tmp_path):
    proc = launch("--config", "experiments/quickstart.py:runlocal", "--workdir", str(tmp_path),
                  "--config.supernet.stpes=3")
    lines = proc.stderr.strip().splitlines()  # one line, not a traceback
    assert proc.returncode != 0 and len(lines) == 1
    assert lines[0].startswith("error: unknown config key 'supernet.stpes' (did you mean 'supernet.steps'?)")


def test_unknown_variant_is_an_error(tmp_path):
    proc = launch("--config", "experiments/quickstart.py:fast", "--workdir", str(tmp_path))
    assert proc.returncode != 0 and "valid: module, regression, runlocal" in proc.stderr


def test_benchmark_writes_figures(tmp_path):
    tiny = ["--config.benchmark.channels=4", "--config.benchmark.cells_per_stage=1", "--config.benchmark.stages=1", "--config.benchmark.num_archs=2",
            "--config.benchmark.repeats=2", "--config.benchmark.compile_steps=5", "--config.benchmark.population=3",
            "--config.benchmark.input_shape=(8, 8, 3)", "--config.benchmark.batch_size=16", "--config.progress=False"]
    proc = launch("--config", "experiments/benchmark.py:runlocal", "--workdir", str(tmp_path), *tiny)
    assert proc.returncode == 0, proc.stderr[-3000:]
    bench = json.loads((tmp_path / "benchmark.json").read_text())
    assert bench["train_step_compiles"] == 1
    assert bench["train_step_ratio"] > 0 and len(bench["per_arch"]) == 2
    assert bench["population_eval_archs_per_s"] > 0 and bench["loop_eval_archs_per_s"] > 0
    assert bench["population_eval_all_vmapped_archs_per_s"] > 0 and bench["population_eval_vmap_archs"] == 1
    assert bench["supernet_path"] == "sparse" and bench["folded_step_ms"] > 0 and bench["folded_train_step_ratio"] > 0


def test_benchmark_of_a_nas_module_compiles_once(tmp_path):
    """The own_cnn variant: the supernet of a user's module against its extracted networks."""
    proc = launch("--config", "experiments/benchmark.py:own_cnn,runlocal", "--workdir", str(tmp_path),
                  "--config.benchmark.num_archs=1", "--config.benchmark.largest_variant=skip=0",
                  "--config.progress=False")
    assert proc.returncode == 0, proc.stderr[-3000:]
    bench = json.loads((tmp_path / "benchmark.json").read_text())
    assert bench["nas_module"] == "experiments.own_cnn:Net" and bench["input_shape"] == [8, 8, 1]
    assert bench["train_step_compiles"] == 1 and bench["train_step_compile_loop_steps"] == 10
    largest, variant = bench["largest"], bench["largest_variant"]
    assert "skip=1" in largest["arch"] and "skip=0" in variant["arch"]  # the variant changes only skip
    assert largest["arch"].replace("skip=1", "skip=0") == variant["arch"]
    for row in (largest, variant, *bench["per_arch"]):
        assert row["supernet_ms"] > 0 and row["standalone_ms"] > 0
        assert row["ratio"] == pytest.approx(row["supernet_ms"] / row["standalone_ms"])
    assert bench["largest_step_ratio"] == largest["ratio"] and len(bench["per_arch"]) == 1
    # With skip=0 the stem feeds the head, so XLA drops the backward pass of op and stage.
    assert variant["standalone_xla"]["flops"] < largest["standalone_xla"]["flops"]
    cold = bench["cold_start"]
    assert min(cold["trace_s"], cold["build_s"], cold["first_step_compile_s"]) > 0
    assert cold["trace_and_build_s"] == pytest.approx(cold["trace_s"] + cold["build_s"])
    assert bench["machine"]["backend"] == "cpu" and len(bench["provenance"]["git"]["commit"]) == 40
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["provenance"]["backend"] == "cpu" and len(results["provenance"]["git"]["commit"]) == 40


def test_benchmark_of_a_missing_module_or_decision_is_one_line(tmp_path):
    proc = launch("--config", "experiments/benchmark.py:own_cnn,runlocal", "--workdir", str(tmp_path),
                  "--config.benchmark.nas_module=experiments.own_cnn:NoSuchNet")
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode != 0 and len(lines) == 1
    assert "benchmark.nas_module 'experiments.own_cnn:NoSuchNet' cannot be built" in lines[0]
    assert "'package.module:Class'" in lines[0]
    proc = launch("--config", "experiments/benchmark.py:own_cnn,runlocal", "--workdir", str(tmp_path),
                  "--config.benchmark.largest_variant=skop=1")
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode != 0 and len(lines) == 1
    assert "benchmark.largest_variant names 'skop', which is no decision of the space" in lines[0]


def test_ground_truth_shards_share_one_workdir(tmp_path):
    tiny = ["--config.ground_truth.train.steps=4", "--config.ground_truth.num_archs=3",
            "--config.ground_truth.num_shards=2", "--config.progress=False"]
    args = ["--config", "experiments/ground_truth.py:runlocal", "--workdir", str(tmp_path), *tiny]
    first = launch(*args, "--config.ground_truth.shard_index=0")
    assert first.returncode == 0, first.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["status"] == "waiting for the other shards" and not (tmp_path / "ground_truth.csv").exists()
    second = launch(*args, "--config.ground_truth.shard_index=1")  # the same run, so its workdir is accepted
    assert second.returncode == 0, second.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["status"] == "complete" and results["rows"] == 3
    rows = (tmp_path / "ground_truth.csv").read_text().splitlines()
    assert rows[0].startswith("arch,val_accuracy_seed0") and len({r.split(",")[0] for r in rows[1:]}) == 3
    made = json.loads((tmp_path / "ground_truth.json").read_text())  # the table's task, next to it
    assert made["task"]["dataset"]["options"]["noise"] == 2.0 and made["task"]["seed"] == 0
    assert made["recipe"]["steps"] == 4 and made["seeds"] == [0, 1] and made["num_archs"] == 3
    again = launch(*args, "--config.ground_truth.shard_index=0")
    assert again.returncode == 0 and "already holds the complete results" in again.stdout


@pytest.mark.parametrize("experiment", ["quickstart", "mnist1d", "ranking", "ground_truth", "benchmark",
                                        "differentiable", "strategies_nb201"])
def test_every_experiment_config_passes_its_jobs_checks(experiment):
    """What launch.py checks before any work (common fields, the job's own `check`: strategy options,
    few-shot decisions, a named table's task), for each config and its runlocal variant."""
    import importlib
    from supernet import config_check, jobs
    module = importlib.import_module(f"experiments.{experiment}")
    for arg in (None, "runlocal", *(("own_cnn", "own_cnn,gpu") if experiment == "benchmark" else ()),
                *(("module", "regression") if experiment == "quickstart" else ())):
        config = module.get_config(arg)
        config_check.check(config, jobs.get(config.job))
    if experiment == "mnist1d":  # a few-shot split on a decision the space lacks fails here, not after training
        config.few_shot.decisions = (9,)
        with pytest.raises(config_check.ConfigError, match="few-shot split decision 9 is not a decision"):
            config_check.check(config, jobs.get(config.job))
