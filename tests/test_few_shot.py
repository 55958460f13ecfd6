"""Few-shot supernets: each sub-supernet trains and scores only its own architectures."""

import jax
import numpy as np

from supernet import data, evaluation, few_shot, profiling, sharding, spaces, training
from supernet.runtime import Runtime


def tiny():
    ds = data.get("digits")
    space = spaces.get("nas_bench_201", num_classes=10, input_shape=(8, 8, 1), channels=4, cells_per_stage=1,
                       stages=1)
    return ds, space


def test_split_indexes_and_samples_only_its_own_architectures():
    _, space = tiny()
    split = few_shot.Partition(decisions=(0, 5))
    assert split.count(space) == 25
    archs = np.asarray(space.sample(jax.random.key(0), 200))
    owner = split.index(space, archs)
    np.testing.assert_array_equal(owner, archs[:, 0] * 5 + archs[:, 5])
    for sub in (0, 7, 24):
        sampler = split.sampler(space, sub)
        drawn = np.concatenate([np.asarray(sampler(jax.random.key(k))) for k in range(30)])
        assert (split.index(space, drawn) == sub).all()
        assert len(np.unique(drawn[:, 1:5], axis=0)) > 1  # the other decisions still vary


def test_sub_supernets_warm_start_and_route_every_architecture():
    ds, space = tiny()
    model, mesh = space.supernet(), sharding.make_mesh(1)
    optimizer = training.make_optimizer(0.05, steps=3)
    one_shot = training.train_supernet(space, model, ds.train, steps=3, batch_size=32, optimizer=optimizer,
                                       key=jax.random.key(0), runtime=Runtime(mesh, progress=False))
    split = few_shot.Partition(decisions=(5,))
    subs = few_shot.train_sub_supernets(space, model, one_shot.params, ds.train, split, steps=2, batch_size=32,
                                        optimizer=optimizer, key=jax.random.key(1), runtime=Runtime(mesh, progress=False))
    assert len(subs) == 5
    # Warm-started: the one-shot weights are the starting point, so a sub differs from them only
    # by its own few steps, and the subs differ from each other.
    leaf = lambda p: np.asarray(jax.tree.leaves(p)[0])
    assert not np.allclose(leaf(subs[0]), leaf(subs[1]))
    archs = np.asarray(space.sample(jax.random.key(2), 7))
    calib = ds.train.x[:64]
    routed = few_shot.evaluate_routed(space, model, subs, split, archs, calib, ds.val.x, ds.val.y,
                                          mesh=mesh, batch_size=64)
    # Other architectures, one per sub-supernet: every group pads to size 1, compiled once for all.
    others = np.array(space.sample(jax.random.key(3), 5))
    others[:, 5] = np.arange(5)
    few_shot.evaluate_routed(space, model, subs, split, others[:1], calib, ds.val.x, ds.val.y, mesh=mesh,
                                 batch_size=64)
    with profiling.count_compilations() as compiles:
        few_shot.evaluate_routed(space, model, subs, split, others, calib, ds.val.x, ds.val.y, mesh=mesh,
                                     batch_size=64)
    assert compiles.count == 0  # the compiled evaluation serves every sub-supernet
    for i, arch in enumerate(archs):  # each architecture scored by its own sub-supernet
        own = evaluation.evaluate_population(space, model, subs[arch[5]], arch[None], calib, ds.val.x, ds.val.y,
                                             mesh=mesh, batch_size=64)
        np.testing.assert_allclose(routed["accuracy"][i], own["accuracy"][0], atol=1e-6)


def test_the_pipeline_searches_with_few_shot_sub_supernets(tmp_path):
    """run_one_shot_nas with a FewShotRecipe: the search scores every architecture with its own
    sub-supernet, the winner's inherited weights come from its sub-supernet, and a rerun in the
    same workdir resumes every stage to the same results."""
    from supernet import one_shot, retrain
    import strategies
    ds, space = tiny()
    mesh = sharding.make_mesh(1)

    def run():
        return one_shot.run_one_shot_nas(
            space, ds, strategies.get("random", space), key=jax.random.key(0),
            supernet=one_shot.SupernetRecipe(steps=4, batch_size=32, checkpoint_every=2),
            few_shot_recipe=one_shot.FewShotRecipe(decisions=(5,), budget_share=2.5),
            search_recipe=one_shot.SearchRecipe(budget=6, population=3, calib_size=64, eval_batch_size=64,
                                                ensemble_size=1),
            retrain_recipe=one_shot.RetrainRecipe(steps=2, batch_size=32),
            runtime=Runtime(mesh, str(tmp_path), progress=False))

    results = run()
    models = results["_models"]
    subs = models["params"]
    assert isinstance(subs, few_shot.SubSupernets) and len(subs.params) == 5 and subs.partition.decisions == (5,)
    assert "few_shot_training_s" in results["timings"]
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir() if p.name.startswith("few_shot")) == [
        f"few_shot_{i}" for i in range(5)]  # 4 x 2.5 / 5 = 2 steps each, checkpointed
    history, calib = models["history"], models["calib_x"]
    routed = few_shot.evaluate_routed(space, models["supernet"], subs.params, subs.partition, history["archs"],
                                          calib, ds.val.x, ds.val.y, mesh=mesh, batch_size=64)
    np.testing.assert_allclose(history["val_accuracy"], routed["accuracy"], atol=1e-6)
    best = np.asarray(results["best_arch_int"])
    network, inherited = evaluation.extract(space, subs.params[best[5]], best, calib, model=models["supernet"])
    assert results["inherited_weights_test_accuracy"] == retrain.accuracy(network, inherited, ds.test)
    again = run()
    assert again["best_arch"] == results["best_arch"] and again["best_accuracy"] == results["best_accuracy"]
    np.testing.assert_array_equal(again["_models"]["history"]["val_accuracy"], history["val_accuracy"])
