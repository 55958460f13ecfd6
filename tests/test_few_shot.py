"""Few-shot supernets: each sub-supernet trains and scores only its own architectures."""

import jax
import numpy as np

from supernet import data, evaluation, few_shot, profiling, sharding, spaces, training


def tiny():
    ds = data.get("digits")
    space = spaces.get("nas_bench_201", num_classes=10, input_shape=(8, 8, 1), channels=4, cells_per_stage=1,
                       stages=1)
    return ds, space


def test_split_indexes_and_samples_only_its_own_architectures():
    _, space = tiny()
    split = few_shot.Split(decisions=(0, 5))
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
                                       key=jax.random.key(0), mesh=mesh, progress=False)
    split = few_shot.Split(decisions=(5,))
    subs = few_shot.train_sub_supernets(space, model, one_shot.params, ds.train, split, steps=2, batch_size=32,
                                        optimizer=optimizer, key=jax.random.key(1), mesh=mesh, progress=False)
    assert len(subs) == 5
    # Warm-started: the one-shot weights are the starting point, so a sub differs from them only
    # by its own few steps, and the subs differ from each other.
    leaf = lambda p: np.asarray(jax.tree.leaves(p)[0])
    assert not np.allclose(leaf(subs[0]), leaf(subs[1]))
    archs = np.asarray(space.sample(jax.random.key(2), 7))
    calib = ds.train.x[:64]
    routed = few_shot.evaluate_population(space, model, subs, split, archs, calib, ds.val.x, ds.val.y,
                                          mesh=mesh, batch_size=64)
    # Other architectures, one per sub-supernet: every group pads to size 1, compiled once for all.
    others = np.array(space.sample(jax.random.key(3), 5))
    others[:, 5] = np.arange(5)
    few_shot.evaluate_population(space, model, subs, split, others[:1], calib, ds.val.x, ds.val.y, mesh=mesh,
                                 batch_size=64)
    with profiling.count_compilations() as compiles:
        few_shot.evaluate_population(space, model, subs, split, others, calib, ds.val.x, ds.val.y, mesh=mesh,
                                     batch_size=64)
    assert compiles.count == 0  # the compiled evaluation serves every sub-supernet
    for i, arch in enumerate(archs):  # each architecture scored by its own sub-supernet
        own = evaluation.evaluate_population(space, model, subs[arch[5]], arch[None], calib, ds.val.x, ds.val.y,
                                             mesh=mesh, batch_size=64)
        np.testing.assert_allclose(routed["accuracy"][i], own["accuracy"][0], atol=1e-6)
