"""Path sampling for supernet training: FairNAS strict fairness, uniform over distinct functions."""

import jax
import numpy as np
import pytest

from supernet import spaces, training


def test_fair_paths_train_every_option_once_per_step():
    space = spaces.get("mobilenet")  # decisions with different option counts
    for seed in range(3):
        paths = np.asarray(training.fair_paths(space, jax.random.key(seed)))
        assert paths.shape == (max(space.num_choices), space.num_decisions) and paths.dtype == np.int32
        for d, k in enumerate(space.num_choices):
            assert sorted(paths[:k, d]) == list(range(k))  # a permutation: each option exactly once
            assert np.all((0 <= paths[k:, d]) & (paths[k:, d] < k))  # spare rows stay valid
    a, b = (np.asarray(training.fair_paths(space, jax.random.key(s))) for s in (0, 1))
    assert not np.array_equal(a, b)  # the key decides the permutation
    np.testing.assert_array_equal(a, np.asarray(training.fair_paths(space, jax.random.key(0))))


def test_make_path_sampler_names_every_rule():
    space = spaces.get("nas_bench_201")
    shapes = {s: np.asarray(training.make_path_sampler(space, s)(jax.random.key(0))).shape for s in training.SAMPLINGS}
    assert shapes == {"uniform": (1, 6), "sandwich": (3, 6), "fair": (5, 6), "distinct": (1, 6)}
    with pytest.raises(ValueError, match="valid: uniform, sandwich, fair, distinct"):
        training.make_path_sampler(space, "fiar")


def test_distinct_sampling_draws_each_function_once_whatever_its_encodings():
    space = spaces.get("nas_bench_201")
    table = training.distinct_functions(space)
    assert table.shape == (5155, 6) and table.dtype == np.int32  # NAS-Bench-201's distinct functions
    np.testing.assert_array_equal(np.asarray(space.canonical(table)), table)  # representatives only
    assert len(np.unique(table, axis=0)) == len(table)
    sampler = jax.jit(training.make_path_sampler(space, "distinct"))
    drawn = np.concatenate([np.asarray(sampler(jax.random.key(i))) for i in range(400)])
    rows = {tuple(r) for r in table.tolist()}
    assert all(tuple(d) in rows for d in drawn.tolist())
    assert len({tuple(d) for d in drawn.tolist()}) > 350  # spread over the functions, not stuck on a few
    # Uniform encodings draw a cell with dead edges (a function of many encodings) far more often.
    dead = np.asarray(space.canonical(np.asarray(space.sample(jax.random.key(0), 2000)))) == 0
    assert dead.mean() > (drawn == 0).mean() + 0.05


def test_distinct_sampling_refuses_a_space_too_large_to_enumerate():
    from supernet import few_shot
    space = spaces.get("mobilenet")
    with pytest.raises(ValueError, match="enumerates the space.*use supernet.sampling='uniform'"):
        training.make_path_sampler(space, "distinct")
    with pytest.raises(ValueError, match="enumerates the space"):  # before enumerating anything
        few_shot.Partition((0,)).sampler(space, 0, distinct=True)


def test_a_sub_supernet_samples_the_distinct_functions_of_its_own_architectures():
    from supernet import few_shot
    space = spaces.get("nas_bench_201")
    split = few_shot.Partition((0,))
    sampler = jax.jit(split.sampler(space, 2, distinct=True))
    drawn = np.concatenate([np.asarray(sampler(jax.random.key(i))) for i in range(300)])
    assert np.all(drawn[:, 0] == 2)  # only its own architectures
    functions = np.asarray(space.canonical(drawn)).tolist()
    assert len({tuple(f) for f in functions}) > 250  # one encoding per function: few repeats
