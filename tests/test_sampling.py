"""Path sampling for supernet training: FairNAS strict fairness."""

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
    assert shapes == {"uniform": (1, 6), "sandwich": (3, 6), "fair": (5, 6)}
    with pytest.raises(ValueError, match="valid: uniform, sandwich, fair"):
        training.make_path_sampler(space, "fiar")
