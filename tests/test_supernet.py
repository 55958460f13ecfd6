"""The supernet core on a tiny NAS-Bench-201 network: compile once, exact extraction, population
evaluation, checkpoint resume, retraining from scratch."""

import json
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from supernet import checkpoint, data, evaluation, profiling, records, retrain, sharding, spaces, training
from supernet.runtime import Runtime


@pytest.fixture(scope="module")
def setup():
    ds = data.get("digits")
    space = spaces.get("nas_bench_201", input_shape=ds.input_shape, channels=4, cells_per_stage=1, stages=1)
    model = space.supernet()
    mesh = sharding.make_mesh(1)
    optimizer = training.make_optimizer(0.05, steps=200)
    return ds, space, model, mesh, optimizer


@pytest.fixture(scope="module")
def trained(setup):
    ds, space, model, mesh, optimizer = setup
    return training.train_supernet(space, model, ds.train, steps=30, batch_size=32, optimizer=optimizer,
                                   key=jax.random.key(0), runtime=Runtime(mesh, progress=False))


def test_one_compilation_for_fifty_architectures(setup):
    ds, space, model, mesh, optimizer = setup
    archs = np.asarray(space.sample(jax.random.key(3), 50))
    assert len({tuple(a) for a in archs}) == 50
    state = sharding.replicate(mesh, training.create_state(space, model, optimizer, jax.random.key(0), ds.input_shape))
    x, y = sharding.shard_batch(mesh, ds.train.x[:32], ds.train.y[:32])
    step = training.make_train_step(space, model, optimizer)
    losses = []
    with profiling.count_compilations() as compiles:
        for arch in archs:
            state, metrics = step(state, x, y, arch[None])
            losses.append(float(metrics["loss"]))
    assert compiles.count == 1
    assert int(state.step) == 50 and np.all(np.isfinite(losses))
    assert len(set(np.round(losses, 6))) > 40  # different architectures really ran


def test_a_compilation_loaded_from_the_persistent_cache_counts_once():
    # conftest gives the test session a persistent compilation cache; clearing the in-memory caches
    # makes the second call load the executable from it (jax records a cache hit and a compile
    # event for that one load: the count must not depend on whether an earlier test compiled it).
    assert jax.config.jax_compilation_cache_dir
    scale = jax.jit(lambda v: v * 2.75 + jnp.sin(v))
    x = jnp.arange(11.0)
    with profiling.count_compilations() as first:
        scale(x).block_until_ready()
    jax.clear_caches()
    with profiling.count_compilations() as loaded:
        scale(x).block_until_ready()
    assert first.count == 1 and loaded.count == 1


def test_training_learns(setup, trained):
    ds, space, model, mesh, _ = setup
    archs = np.asarray(space.sample(jax.random.key(9), 8))
    fresh = training.init_params(space, model, jax.random.key(0), ds.input_shape)
    calib = ds.train.x[:64]
    before = evaluation.evaluate_population(space, model, fresh, archs, calib, ds.train.x, ds.train.y, mesh=mesh)
    after = evaluation.evaluate_population(space, model, trained.params, archs, calib, ds.train.x, ds.train.y, mesh=mesh)
    assert after["loss"].mean() < before["loss"].mean()


def test_population_equals_single_evaluations(setup, trained):
    ds, space, model, mesh, _ = setup
    archs = np.asarray(space.sample(jax.random.key(5), 6))
    calib = ds.train.x[:64]
    together = evaluation.evaluate_population(space, model, trained.params, archs, calib, ds.val.x, ds.val.y,
                                              mesh=mesh, batch_size=50)
    alone = [evaluation.evaluate_population(space, model, trained.params, a[None], calib, ds.val.x, ds.val.y,
                                            mesh=mesh, batch_size=50) for a in archs]
    np.testing.assert_allclose(together["accuracy"], [a["accuracy"][0] for a in alone], atol=1e-6)
    np.testing.assert_allclose(together["loss"], [a["loss"][0] for a in alone], rtol=1e-4)
    # every example counts, the last partial batch too: accuracies are multiples of 1/len(val)
    n = len(ds.val)
    assert n % 50
    np.testing.assert_allclose(together["accuracy"] * n, np.round(together["accuracy"] * n), atol=1e-3)
    # all vmapped (the accelerator default) and 4 at a time in lax.map give the same scores
    for vmap_archs in (None, 4):
        other = evaluation.evaluate_population(space, model, trained.params, archs, calib, ds.val.x, ds.val.y,
                                               mesh=mesh, batch_size=50, vmap_archs=vmap_archs)
        np.testing.assert_allclose(other["accuracy"], together["accuracy"], atol=1e-6)
        np.testing.assert_allclose(other["loss"], together["loss"], rtol=1e-4)
    with pytest.raises(ValueError, match="vmap_archs must be a positive int"):
        evaluation.evaluate_population(space, model, trained.params, archs, calib, ds.val.x, ds.val.y,
                                       mesh=mesh, vmap_archs=0)


def test_fine_tuned_evaluation(setup, trained):
    ds, space, model, mesh, _ = setup
    archs = np.asarray(space.sample(jax.random.key(6), 3))
    calib = ds.train.x[:64]
    shared = jax.tree.map(np.asarray, trained.params)

    def fine_tuned(population, steps):
        return evaluation.evaluate_fine_tuned(space, model, trained.params, population, ds.train, calib, ds.val.x,
                                              ds.val.y, runtime=Runtime(mesh), steps=steps, batch_size=32, eval_batch_size=50,
                                              optimizer=training.make_optimizer(0.05, steps=max(steps, 1)))

    plain = evaluation.evaluate_population(space, model, trained.params, archs, calib, ds.val.x, ds.val.y,
                                           mesh=mesh, batch_size=50)
    untouched = fine_tuned(archs, 0)  # no steps: the inherited weights' scores
    np.testing.assert_allclose(untouched["accuracy"], plain["accuracy"], atol=1e-6)
    np.testing.assert_allclose(untouched["loss"], plain["loss"], rtol=1e-4)
    tuned = fine_tuned(archs, 15)
    assert np.all(np.abs(tuned["loss"] - plain["loss"]) > 1e-4)
    # each architecture trains alone: its score does not depend on the rest of the population
    np.testing.assert_allclose(fine_tuned(archs[1:2], 15)["loss"], tuned["loss"][1:2], rtol=1e-4)
    with profiling.count_compilations() as compiles:  # one training step compiled for all three
        fine_tuned(np.asarray(space.sample(jax.random.key(7), 3)), 15)
    assert compiles.count == 1
    jax.tree.map(np.testing.assert_array_equal, shared, jax.tree.map(np.asarray, trained.params))
    with pytest.raises(ValueError, match="fine-tuning steps must be an int >= 0"):
        fine_tuned(archs, -1)



def test_fine_tuned_evaluation_resumes_from_its_record(setup, trained, tmp_path):
    """Each architecture's scores are appended to the record as soon as they are known; a rerun
    (after a kill: a torn last line) takes the recorded ones as they are and trains only the rest."""
    ds, space, model, mesh, _ = setup
    archs = np.asarray(space.sample(jax.random.key(8), 3))
    record = tmp_path / "fine_tuned.jsonl"

    def fine_tuned():
        return evaluation.evaluate_fine_tuned(space, model, trained.params, archs, ds.train, ds.train.x[:64],
                                              ds.val.x, ds.val.y, runtime=Runtime(mesh), steps=5, batch_size=32,
                                              eval_batch_size=50, optimizer=training.make_optimizer(0.05, steps=5),
                                              record=str(record))

    first = fine_tuned()
    lines = record.read_text().splitlines()
    assert [json.loads(line)["arch"] for line in lines] == archs.tolist()
    kept = json.loads(lines[0]) | {"accuracy": 0.125}  # marked: a rerun must take it from the record
    record.write_text(json.dumps(kept) + "\n" + lines[1][:10])  # killed while writing the second line
    again = fine_tuned()
    assert again["accuracy"][0] == 0.125
    np.testing.assert_allclose(again["accuracy"][1:], first["accuracy"][1:], atol=1e-6)
    np.testing.assert_allclose(again["loss"], first["loss"], rtol=1e-5)
    assert len(record.read_text().splitlines()) == 3


def test_evaluation_needs_calibration(setup, trained):
    ds, space, model, _, _ = setup
    with pytest.raises(ValueError, match="calibrate"):
        evaluation.predict(model, trained.params, {}, training.one_hot(space, jnp.asarray(space.largest())),
                           ds.val.x[:4])


@pytest.mark.parametrize("arch_index", range(3))
def test_extracted_network_reproduces_supernet(setup, trained, arch_index):
    ds, space, model, _, _ = setup
    arch = [space.largest(), space.from_string(
        "|nor_conv_1x1~0|+|avg_pool_3x3~0|none~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"),
        np.asarray(space.sample(jax.random.key(11), 1))[0]][arch_index]
    calib = ds.train.x[:64]
    network, variables = evaluation.extract(space, trained.params, arch, calib, model=model)
    assert "SharedCell" not in str(type(network))
    assert sum(p.size for p in jax.tree.leaves(variables["params"])) == space.params(arch)
    weights = training.one_hot(space, jnp.asarray(arch))
    stats = evaluation.calibrate(model, trained.params, weights, calib)
    expected = evaluation.predict(model, trained.params, stats, weights, ds.val.x)
    np.testing.assert_allclose(network.apply(variables, ds.val.x, train=False), expected, atol=2e-5)


def test_extraction_on_one_dimensional_inputs():
    space = spaces.get("nas_bench_201", input_shape=(12, 2), channels=4, cells_per_stage=1, stages=2)
    model = space.supernet()
    params = training.init_params(space, model, jax.random.key(0), (12, 2))
    x = np.random.default_rng(0).standard_normal((16, 12, 2)).astype(np.float32)
    arch = space.from_string("|nor_conv_3x3~0|+|avg_pool_3x3~0|nor_conv_1x1~1|+|skip_connect~0|nor_conv_3x3~1|none~2|")
    network, variables = evaluation.extract(space, params, arch, x, model=model)
    weights = training.one_hot(space, jnp.asarray(arch))
    expected = evaluation.predict(model, params, evaluation.calibrate(model, params, weights, x), weights, x)
    np.testing.assert_allclose(network.apply(variables, x, train=False), expected, atol=2e-5)


def test_sandwich_paths(setup):
    _, space, _, _, _ = setup
    paths = np.asarray(training.sample_paths(space, jax.random.key(0), sandwich=True))
    assert paths.shape == (3, 6)
    np.testing.assert_array_equal(paths[0], space.largest())
    np.testing.assert_array_equal(paths[1], space.smallest())


def test_resumed_training_continues_exactly(setup, tmp_path):
    ds, space, model, mesh, optimizer = setup
    kwargs = dict(batch_size=32, optimizer=optimizer, key=jax.random.key(1))
    in_workdir = lambda: Runtime(mesh, str(tmp_path), progress=False)
    straight = training.train_supernet(space, model, ds.train, steps=12, runtime=Runtime(mesh, progress=False),
                                       **kwargs)
    training.train_supernet(space, model, ds.train, steps=12, runtime=in_workdir(), checkpoint_every=4, **kwargs)
    saved = checkpoint.Checkpoints(checkpoint.stage_dir(str(tmp_path), "supernet"))
    assert saved.steps() == [6, 9, 12]  # every min(4, 12 / 4) steps, the latest 3 kept
    for step in (9, 12):  # as if killed just after step 6 was saved
        shutil.rmtree(os.path.join(saved.directory, str(step)))
    resumed = training.train_supernet(space, model, ds.train, steps=12, runtime=in_workdir(), **kwargs)
    assert int(resumed.step) == 12
    for a, b in zip(jax.tree.leaves(straight.params), jax.tree.leaves(resumed.params)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    steps = [line["step"] for line in records.MetricsLog(str(tmp_path)).lines()]
    assert steps == sorted(set(steps)) and steps[-1] == 12  # the rerun's lines replace, never repeat


def test_checkpoint_mismatch_is_a_clear_error(setup, tmp_path):
    _, space, model, _, optimizer = setup
    checkpoint.Checkpoints(str(tmp_path)).save(1, {"a": np.zeros(3)}, stage="x")
    target = training.create_state(space, model, optimizer, jax.random.key(0), (8, 8, 1))
    with pytest.raises(checkpoint.CheckpointMismatchError, match="does not match"):
        checkpoint.Checkpoints(str(tmp_path)).restore_latest(target)


def test_standalone_retrains_from_scratch(setup):
    ds, space, _, mesh, optimizer = setup
    network = space.standalone(space.largest())
    variables = retrain.train_standalone(network, ds.train, steps=200, batch_size=32, optimizer=optimizer,
                                         key=jax.random.key(0), runtime=Runtime(mesh, progress=False))
    fresh = retrain.init_variables(network, jax.random.key(0), ds.input_shape)
    assert retrain.accuracy(network, variables, ds.test) > retrain.accuracy(network, fresh, ds.test) + 0.3


def test_batch_size_must_divide_devices(setup):
    _, _, _, mesh, _ = setup
    sharding.check_batch_size(7, mesh)  # one device: anything divides
    with pytest.raises(ValueError, match="use 1..1"):
        sharding.make_mesh(2)


def test_recipes_refuse_bad_values_with_neutral_messages():
    from supernet import one_shot, runtime
    cases = [(one_shot.SupernetRecipe, {"steps": 0}, "steps must be a positive int, got 0"),
             (one_shot.RetrainRecipe, {"momentum": 1.0}, r"momentum must be a number in \[0, 1\), got 1.0"),
             (one_shot.SupernetRecipe, {"sampling": "uniformm"}, "did you mean 'uniform'"),
             (one_shot.SearchRecipe, {"ensemble_size": -1}, "ensemble_size must be an int >= 0"),
             (one_shot.FewShotRecipe, {"budget_share": 0.0}, "budget_share must be a number in"),
             (one_shot.HybridRecipe, {"training_free": ("naswott",)}, "did you mean 'naswot'")]
    for recipe_type, fields, message in cases:
        with pytest.raises(runtime.InvalidSetting, match=message) as caught:
            recipe_type(**fields)
        assert caught.value.field in fields
        assert "--" not in str(caught.value) and "." not in caught.value.field  # no config keys, no flags


def test_a_section_maps_onto_its_recipe_strictly():
    from supernet import one_shot, runtime
    recipe = runtime.recipe_from_section(one_shot.RetrainRecipe, {"steps": 3, "with_val": True})
    assert (recipe.steps, recipe.with_val, recipe.batch_size) == (3, True, one_shot.RetrainRecipe().batch_size)
    with pytest.raises(runtime.InvalidSetting, match="step is not a setting of RetrainRecipe .did you mean 'steps'"):
        runtime.recipe_from_section(one_shot.RetrainRecipe, {"step": 3})
    searched = runtime.recipe_from_section(one_shot.SearchRecipe, {"budget": 4, "strategy": "random"},
                                           read_elsewhere=("strategy",))
    assert searched.budget == 4


def test_the_search_job_names_the_config_key_of_a_bad_value():
    import importlib
    from supernet import config_check
    from supernet.jobs import search
    config = importlib.import_module("experiments.quickstart").get_config()
    config.retrain.steps = 0
    with pytest.raises(config_check.ConfigError, match="retrain.steps: steps must be a positive int, got 0"):
        search.recipe(config, "retrain")
    config.retrain.steps = 10
    config.supernet.stepz = 5
    with pytest.raises(config_check.ConfigError, match="supernet.stepz: .*did you mean 'steps'"):
        search.check(config)
