"""The reinforce edit agent and the autoencoder's latent proposals: what their own models do,
on a tiny space (small budgets: these must stay fast)."""

import functools

import jax
import numpy as np
import pytest

import strategies
from strategies import autoencoder, reinforce
from strategies.space import Decisions

SPACE = Decisions([("a", ["conv", "pool", "skip"]), ("b", ["conv", "pool", "skip"]),
                   ("c", ["conv", "pool", "skip", "none"])])


def additive(archs):
    """Each "conv" is worth 2, each "pool" 1: the optimum is all-conv."""
    archs = np.asarray(archs)
    return (2.0 * np.sum(archs == 0, axis=1) + np.sum(archs == 1, axis=1)).astype(np.float32)


@functools.lru_cache(maxsize=None)
def agent(learning_rate=None):
    """One instance per setting: its jitted functions compile once for all tests."""
    return strategies.get("reinforce", SPACE, num_initial=2, learning_rate=learning_rate)


def test_edit_policy_learns_from_the_improvement_an_edit_brings():
    start = np.array([[1, 1, 1], [2, 2, 2]], np.int32)  # the episode's current architecture: [1, 1, 1]
    # Two edits of it: a -> conv improves by 1, b -> skip loses 1.
    edits = np.array([[0, 1, 1], [1, 2, 1]], np.int32)
    probabilities = {}
    for rate in (None, 0.0):  # the default rate, and none: the ablation's uniform policy
        strategy = agent(rate)
        state = strategy.tell(strategy.init(jax.random.key(0)), start, additive(start))
        before = np.asarray(reinforce.edit_probabilities(SPACE, state, start[:1]))[0]
        np.testing.assert_allclose(before[before > 0], 1.0 / 7)  # uniform over the 7 edits at first
        assert np.all(before[[1, 4, 7]] == 0)  # the current choices are not edits
        state = strategy.tell(state, edits, additive(edits))
        probabilities[rate] = np.asarray(reinforce.edit_probabilities(SPACE, state, start[:1]))[0]
    after = probabilities[None]
    assert after[0] > before[0] and after[5] < before[5]
    # The shared "conv" term generalises to the decisions whose conv edit was never tried.
    assert after[3] > before[3] and after[6] > before[6]
    np.testing.assert_allclose(probabilities[0.0], before)


def test_edit_agent_edits_the_best_of_its_episode():
    strategy = agent()
    state = strategy.init(jax.random.key(0))
    for step in range(10):
        archs, state = strategy.ask(jax.random.key(step), state, 1)
        if state.history.count - state.restart_at >= 2:  # past the episode's initial design
            current = reinforce._best_before(state.history, state.restart_at, state.history.count)[0]
            assert np.sum(np.asarray(archs[0]) != np.asarray(current)) == 1
        state = strategy.tell(state, archs, additive(archs))
    assert int(state.updates) > 0  # the policy learned from the edits


def test_autoencoder_proposes_fresh_edits_its_latent_model_ranks():
    # Gradient moves from the incumbents' own codes: the pool depends on the state, not the key.
    options = dict(num_initial=4, train_steps=5, num_incumbents=3, ascent_steps=4)
    strategy = strategies.get("autoencoder", SPACE, **options)
    propose = jax.jit(autoencoder.make_core(SPACE, autoencoder.DEFAULT_CAPACITY, **options).propose,
                      static_argnums=2)
    state, from_latent = strategy.init(jax.random.key(0)), 0
    for step in range(8):
        archs, state = strategy.ask(jax.random.key(step), state, 1)
        told = np.asarray(state.history.archs[:step])
        assert not np.any(np.all(told == np.asarray(archs[0]), axis=1))  # fresh
        if step >= 4:
            pool, priority = propose(jax.random.key(step), state, 1)
            wanted = np.asarray(pool)[np.asarray(priority) > -np.inf]
            assert len(wanted) == 3 * 7  # incumbents x their one-decision edits
            fresh = [a for a in wanted if not np.any(np.all(told == a, axis=1))]
            # The decoder's pick whenever one is fresh (ask fills in with uniform ones after).
            assert np.any(np.all(wanted == np.asarray(archs[0]), axis=1)) == bool(fresh)
            from_latent += bool(fresh)
        state = strategy.tell(state, archs, additive(archs))
    assert from_latent >= 1


def test_bad_options_name_the_valid_ones():
    with pytest.raises(ValueError, match="policy must be 'edit' or 'sequence'"):
        strategies.get("reinforce", SPACE, policy="lstm")
    with pytest.raises(ValueError, match="learning_rate >= 0"):
        strategies.get("reinforce", SPACE, learning_rate=-1.0)
    with pytest.raises(ValueError, match="proposal_order must be 'path', 'edits' or 'predicted'"):
        strategies.get("autoencoder", SPACE, proposal_order="best")
    with pytest.raises(ValueError, match="moves must be 'gradient' or 'random'"):
        strategies.get("autoencoder", SPACE, moves="walk")
