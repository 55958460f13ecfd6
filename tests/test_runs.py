"""Runs that never lie and never lose work: the non-finite guard, corrupt and foreign
checkpoints, run identity, config checks before any work, metrics without duplicates, one
results schema. Each failure measured on a real run is a case here; the kill-anywhere test is
tests/test_kill_anywhere.py."""

import glob
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import differentiable as differentiable_config
from experiments import quickstart
from supernet import checkpoint, config_check, data, evaluation, jobs, one_shot, records, run_identity, sharding, spaces, training
from supernet.runtime import Runtime


@pytest.fixture(scope="module")
def tiny():
    ds = data.get("digits", seed=0)
    space = spaces.get("nas_bench_201", num_classes=10, input_shape=ds.input_shape, channels=4,
                       cells_per_stage=1, stages=1)
    return ds, space, space.supernet(), sharding.make_mesh()


# -- non-finite guard ---------------------------------------------------------------------------------

def test_diverging_supernet_stops_with_one_line_and_keeps_the_good_checkpoint(tiny, tmp_path):
    ds, space, model, mesh = tiny
    optimizer = training.make_optimizer(1e6, steps=8)  # as --config.supernet.learning_rate=1e6 would
    with pytest.raises(checkpoint.NonFiniteError) as err:
        training.train_supernet(space, model, ds.train, steps=8, batch_size=32, optimizer=optimizer,
                                key=jax.random.key(0), log_every=2,
                                runtime=Runtime(mesh, str(tmp_path), progress=False, hints=jobs.HINTS))
    message = str(err.value)
    assert "\n" not in message and "stage 'supernet'" in message and "supernet.learning_rate" in message
    assert f"at step {err.value.step}" in message
    saved = checkpoint.Checkpoints(checkpoint.stage_dir(str(tmp_path), "supernet"))
    for step in saved.steps():  # whatever was written before the divergence is finite
        target = training.create_state(space, model, optimizer, jax.random.key(0), ds.input_shape)
        assert checkpoint.all_finite(saved._restore(step, target))


def test_a_non_finite_checkpoint_is_never_written(tmp_path):
    saved = checkpoint.Checkpoints(str(tmp_path))
    saved.save(1, {"w": np.ones(3, np.float32)}, stage="s")
    with pytest.raises(checkpoint.NonFiniteError, match=r"parameters at step 2 of stage 's'.*step 1\) is kept"):
        saved.save(2, {"w": np.array([1.0, np.nan, 0.0], np.float32)}, stage="s")
    assert saved.steps() == [1]


def test_nan_logits_score_nan_fitness_and_an_all_nan_search_is_an_error(tiny):
    ds, space, model, mesh = tiny
    params = training.init_params(space, model, jax.random.key(0), ds.input_shape)
    broken = jax.tree.map(lambda p: jnp.full_like(p, jnp.nan), params)
    archs = np.asarray(space.sample(jax.random.key(1), 2))
    scores = evaluation.evaluate_population(space, model, broken, archs, ds.train.x[:32], ds.val.x[:64],
                                            ds.val.y[:64], mesh=mesh, batch_size=32)
    assert np.isnan(scores["accuracy"]).all()  # not class 0's share of the labels
    with pytest.raises(checkpoint.NonFiniteError, match="every architecture"):
        one_shot._best([float("nan")] * 3, "search", Runtime(mesh))
    assert one_shot._best([float("nan"), 0.5, 0.2], "search", Runtime(mesh)) == 1


# -- checkpoints ----------------------------------------------------------------------------------------

def _two_steps(tmp_path):
    saved = checkpoint.Checkpoints(str(tmp_path / "ckpt"))
    for step in (1, 2):
        saved.save(step, {"w": np.full((64, 64), step, np.float32)}, stage="s")
    return saved, {"w": np.zeros((64, 64), np.float32)}


def _data_files(saved, step):
    return [f for f in glob.glob(os.path.join(saved.directory, str(step), "**", "*"), recursive=True)
            if os.path.isfile(f) and "/d/" in f]


@pytest.mark.parametrize("damage", ["garbage", "truncate", "delete"])
def test_a_corrupt_latest_checkpoint_is_reported_and_the_previous_one_used(tmp_path, damage):
    saved, target = _two_steps(tmp_path)
    for file in _data_files(saved, 2):
        raw = bytearray(open(file, "rb").read())
        if damage == "garbage":  # 4 KB of garbage in the middle
            mid = len(raw) // 2
            raw[mid:mid + 4096] = os.urandom(len(raw[mid:mid + 4096]))
        elif damage == "truncate":
            raw = raw[:len(raw) // 3]
        if damage == "delete":
            os.remove(file)
        else:
            open(file, "wb").write(bytes(raw))
    with pytest.warns(UserWarning, match=rf"checkpoint {saved.directory}/2 is corrupt"):
        step, tree = checkpoint.Checkpoints(saved.directory).restore_latest(target)
    assert step == 1 and float(tree["w"].mean()) == 1.0
    assert os.path.isdir(saved.directory + ".corrupt/2")  # set aside for inspection, out of the way


@pytest.mark.parametrize("error", [PermissionError("read-only mount"), MemoryError(), RuntimeError("a bug")])
def test_errors_that_are_not_corruption_propagate_and_nothing_is_set_aside(tmp_path, monkeypatch, error):
    saved, target = _two_steps(tmp_path)

    def fail(*args, **kwargs):
        raise error
    monkeypatch.setattr(checkpoint.Checkpoints, "_restore", fail)
    with pytest.raises(type(error)):
        checkpoint.Checkpoints(saved.directory).restore_latest(target)
    assert not os.path.exists(saved.directory + ".corrupt") and saved.steps() == [1, 2]


def test_only_process_0_sets_a_corrupt_checkpoint_aside(tmp_path, monkeypatch):
    saved, target = _two_steps(tmp_path)
    for file in _data_files(saved, 2):
        os.remove(file)
    monkeypatch.setattr(checkpoint.jax, "process_index", lambda: 1)
    step, _ = checkpoint.Checkpoints(saved.directory).restore_latest(target)
    assert step == 1 and not os.path.exists(saved.directory + ".corrupt")  # skipped, left for process 0


def test_a_checkpoint_of_another_shape_or_dtype_is_refused(tmp_path):
    saved, _ = _two_steps(tmp_path)
    for other in ({"w": np.zeros((32, 64), np.float32)}, {"w": np.zeros((64, 64), np.float16)}):
        with pytest.raises(checkpoint.CheckpointMismatchError, match="--restart"):
            saved.restore_latest(other)


def test_checkpoint_interval_gives_a_few_per_stage():
    assert checkpoint.interval(150, 200) == 38  # runlocal's supernet: checkpoint_every=200 > 150 steps
    assert checkpoint.interval(1200, 200) == 200
    assert checkpoint.interval(8) == 2


# -- run identity ----------------------------------------------------------------------------------------

def test_same_config_resumes_another_is_refused_restart_starts_afresh(tmp_path):
    workdir = str(tmp_path)
    config = quickstart.get_config("runlocal").to_dict()
    run_identity.claim(workdir, config, "search")
    records.MetricsLog(workdir).write("supernet", 50, loss=1.0)
    assert run_identity.claim(workdir, {**config, "progress": False}, "search")["job"] == "search"  # may change
    other = {**config, "seed": 1, "supernet": {**config["supernet"], "steps": 300}}
    with pytest.raises(run_identity.RunIdentityError) as err:
        run_identity.claim(workdir, other, "search")
    message = str(err.value)
    assert "seed: 0 there, 1 here" in message and "supernet.steps: 150 there, 300 here" in message
    assert "new --workdir" in message and "--restart" in message and "\n" not in message
    run_identity.claim(workdir, other, "search", restart=True)
    assert not os.path.exists(os.path.join(workdir, "metrics.jsonl"))
    assert records.read_json(workdir, "run.json")["fingerprint"] == run_identity.fingerprint(other)


def test_restart_deletes_the_runs_outputs_and_keeps_the_users_files(tmp_path):
    outputs = ["run.json", "progress.json", "metrics.jsonl", "events.out.tfevents.1.host", "results.json.tmp",
               "ground_truth.csv", "ground_truth.part0of2.csv", "ground_truth.json", "fine_tuned.jsonl",
               "pareto.png", "ranking_naswot.png", "benchmark.json"]
    users = ["notes.txt", "my_plot.png", "ground_truth_2023.csv"]
    for name in outputs + users:
        (tmp_path / name).write_text("x")
    for folder in ("checkpoints/supernet", "winner", "my_data"):
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "variables.npz").write_text("x")
    records.remove_run(str(tmp_path))
    assert sorted(os.listdir(tmp_path)) == sorted(users + ["my_data"])
    assert os.listdir(tmp_path / "my_data") == ["variables.npz"]


def test_a_darts_run_is_refused_in_a_quickstart_workdir(tmp_path):
    run_identity.claim(str(tmp_path), quickstart.get_config("runlocal").to_dict(), "search")
    with pytest.raises(run_identity.RunIdentityError, match="search job; .*job: 'search' there, 'differentiable' here"):
        run_identity.claim(str(tmp_path), differentiable_config.get_config("runlocal").to_dict(), "differentiable")


def test_run_files_without_a_record_are_refused(tmp_path):
    (tmp_path / "supernet.ckpt").write_bytes(b"old")
    with pytest.raises(run_identity.RunIdentityError, match="no run.json"):
        run_identity.claim(str(tmp_path), quickstart.get_config("runlocal").to_dict(), "search")


# -- config checks before any work ---------------------------------------------------------------------

def _check(config):
    config_check.check(config, jobs.get(config.job))


@pytest.mark.parametrize("field, value, message", [
    ("search.ensemble_method", "vot", r"search.ensemble_method='vot' is not valid \(did you mean 'vote'\?\)"),
    ("search.strategy", "evolutoin", r"did you mean 'evolution'"),
    ("search.metric", "los", r"search.metric='los' is not valid \(did you mean 'loss'\?\)"),
    ("search.budget", 0, r"search.budget must be >= 1, got 0"),
    ("supernet.steps", 0, r"supernet.steps must be >= 1"),
    ("dataset.name", "digts", r"did you mean 'digits'"),
    ("space.name", "nas_bench_20", r"did you mean 'nas_bench_201'"),
    ("num_devices", 64, r"num_devices=64 but only"),
])
def test_bad_configs_are_one_line_before_any_work(field, value, message):
    config = quickstart.get_config("runlocal")
    section, _, key = field.rpartition(".")
    (config[section] if section else config)[key] = value
    with pytest.raises(config_check.ConfigError, match=message) as err:
        _check(config)
    assert "\n" not in str(err.value)


def test_batch_sizes_must_divide_the_devices(monkeypatch):
    config = quickstart.get_config("runlocal")
    monkeypatch.setattr(config_check, "device_count", lambda config: 8)
    config.search.eval_batch_size = 250
    with pytest.raises(config_check.ConfigError, match=r"search.eval_batch_size=250 does not divide by the 8 devices"):
        _check(config)
    config = differentiable_config.get_config("runlocal")
    config.compare.batch_size = 60
    with pytest.raises(config_check.ConfigError, match=r"compare.batch_size=60"):
        _check(config)


def test_option_dicts_take_their_entrys_fields(tmp_path):
    config = quickstart.get_config("runlocal")
    config.dataset.name = "cifar10"
    config.dataset.options.data_dir = str(tmp_path / "missing")  # accepted as a cifar10 option...
    with pytest.raises(config_check.ConfigError, match=r"dataset.options.data_dir=.* does not exist"):
        _check(config)  # ... and its path checked before any work
    config = quickstart.get_config("runlocal")
    config.space.options.chanels = 4
    with pytest.raises(config_check.ConfigError, match=r"no option 'chanels' \(did you mean 'channels'\?\)"):
        _check(config)
    config = quickstart.get_config("runlocal")
    config.search.options.popsize = 4
    with pytest.raises(config_check.ConfigError, match=r"search.options.popsize is not an option of strategy"):
        _check(config)


def test_a_misspelt_override_names_the_closest_key():
    base = quickstart.get_config("runlocal")
    with pytest.raises(config_check.ConfigError, match=r"unknown config key 'supernet.stpes' \(did you mean 'supernet.steps'\?\)"):
        config_check.check_overrides({"supernet.stpes": 3}, base)
    config_check.check_overrides({"dataset.options.data_dir": "/x", "supernet.steps": 3}, base)  # options are open


# -- metrics and results --------------------------------------------------------------------------------

def test_metrics_lines_carry_stage_step_time_and_a_rewind_drops_what_will_be_redone(tmp_path):
    log = records.MetricsLog(str(tmp_path))
    for step in (10, 20, 30):
        log.write("supernet", step, loss=1.0)
        log.write("retrain/0", step, loss=1.0)
    with open(log.file, "a") as f:
        f.write('{"stage": "supernet", "st')  # a kill in the middle of a line
    log = records.MetricsLog(str(tmp_path))
    log.rewind("supernet", 10)
    lines = log.lines()
    assert all({"stage", "step", "time"} <= set(line) for line in lines)
    assert [(l["stage"], l["step"]) for l in lines] == [("supernet", 10), ("retrain/0", 10), ("retrain/0", 20),
                                                         ("retrain/0", 30)]


def test_results_schema_is_the_same_for_every_job():
    searched = records.results_document({"best_arch": "a", "best_accuracy": 0.9, "timings": {"x_s": 1.0}, "extra": 1},
                                        job="search", config={"seed": 0}, fingerprint="f", timings={"wall_time_s": 2.0})
    other = records.results_document({"figures": [1]}, job="benchmark", config={}, fingerprint="g")
    for document in (searched, other):
        assert list(document)[:7] == ["status", "job", "best_arch", "best_accuracy", "best_accuracy_reason",
                                      "config", "fingerprint"]
        assert document["status"] == "complete" and "timings" in document
    assert searched["timings"] == {"x_s": 1.0, "wall_time_s": 2.0} and searched["extra"] == 1
    assert other["best_accuracy"] is None and "does not retrain" in other["best_accuracy_reason"]
