"""Tests for the mechanisms of the evolution and bayesian strategies: aging evolution's population
and tournaments, the trust region's Hamming ball and radius, and a pool that reaches beyond one
incumbent's neighbourhood."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import strategies
from strategies import bayesian
from strategies.space import Decisions

SPACE = Decisions([("a", ["a0", "a1", "a2"]), ("b", ["b0", "b1", "b2", "b3"]), ("c", ["c0", "c1", "c2"]),
                   ("d", ["d0", "d1"]), ("e", ["e0", "e1", "e2"]), ("f", ["f0"])])  # f: one option
SMALL_BO = {"capacity": 64, "gp_size": 32, "num_initial": 4, "trust_region_samples": 16, "num_random": 8,
            "mutations_per_incumbent": 2, "num_incumbents": 2}


def test_hamming_ball_samples_stay_within_the_radius_and_reach_it():
    centres = jnp.zeros((400, SPACE.num_decisions), jnp.int32)
    for radius in (1, 3):
        ball = np.asarray(jax.jit(bayesian.hamming_ball_samples, static_argnums=3)(
            jax.random.key(radius), centres, jnp.asarray(radius), SPACE.num_choices))
        distance = np.sum(ball != 0, axis=1)
        assert set(distance.tolist()) == set(range(1, radius + 1))
        assert np.all(ball < np.asarray(SPACE.num_choices)) and np.all(ball[:, -1] == 0)


def test_trust_region_widens_on_success_narrows_on_failure_and_collapses():
    update = lambda r, s, f, improved: bayesian.trust_region_update(
        jnp.asarray(r), jnp.asarray(s), jnp.asarray(f), jnp.asarray(improved), max_radius=4, init_radius=2,
        success_tolerance=2, failure_tolerance=3)
    radius, successes, failures, collapsed = update(2, 1, 0, True)  # the second success in a row
    assert (int(radius), int(successes), bool(collapsed)) == (3, 0, False)
    assert int(update(4, 1, 0, True)[0]) == 4  # never beyond max_radius
    radius, successes, failures, _ = update(3, 1, 1, False)  # a failure resets the successes
    assert (int(radius), int(successes), int(failures)) == (3, 0, 2)
    assert int(update(3, 0, 2, False)[0]) == 2
    radius, _, _, collapsed = update(1, 0, 2, False)  # narrowed below 1: collapsed, back to init
    assert bool(collapsed) and int(radius) == 2


def bayesian_core(**options):
    return bayesian.make_core(SPACE, SMALL_BO["capacity"], **{**{k: v for k, v in SMALL_BO.items() if k != "capacity"},
                                                             **options})


def told(strategy, archs, fitness):
    state = strategy.init(jax.random.key(0))
    return strategy.tell(state, np.asarray(archs, np.int32), np.asarray(fitness, np.float32))


def test_bayesian_pool_reaches_beyond_the_incumbents_neighbourhood():
    strategy = strategies.get("bayesian", SPACE, **SMALL_BO)
    archs = np.array([[i % 2, i // 2 % 2, i // 4 % 2, 0, 0, 0] for i in range(6)], np.int32)
    state = told(strategy, archs, np.arange(6.0))
    pool, priority = jax.jit(bayesian_core().propose, static_argnums=2)(jax.random.key(2), state, 1)
    distance = np.sum(np.asarray(pool) != archs[-1], axis=1)  # from the best, the trust region's centre
    wanted = np.isfinite(np.asarray(priority))
    assert wanted.all()  # past the initial design, every candidate is scored by the acquisition
    assert np.sum(distance == 1) >= sum(k - 1 for k in SPACE.num_choices)  # its whole neighbourhood
    assert np.any(distance == 2) and np.any(distance >= 3)  # the trust region (radius 2) and the global part


def test_bayesian_restarts_when_its_trust_region_collapses():
    strategy = strategies.get("bayesian", SPACE, **{**SMALL_BO, "num_initial": 2, "init_radius": 1,
                                                   "failure_tolerance": 2, "success_tolerance": 1})
    state = told(strategy, [[0, 0, 0, 0, 0, 0], [1, 0, 0, 0, 0, 0]], [1.0, 2.0])  # the initial design
    assert int(state.radius) == 1 and int(state.restart_at) == 0
    state = strategy.tell(state, np.asarray([[1, 1, 0, 0, 0, 0]], np.int32), np.asarray([3.0]))  # a success
    assert int(state.radius) == 2
    for i, fitness in enumerate([0.0, 0.0, 0.0]):  # two failures narrow it to 1, two more collapse it
        state = strategy.tell(state, np.asarray([[1, 1, 1 + i % 2, i // 2, 0, 0]], np.int32), np.asarray([fitness]))
    assert int(state.radius) == 1 and int(state.restart_at) == 0
    state = strategy.tell(state, np.asarray([[2, 2, 0, 0, 0, 0]], np.int32), np.asarray([0.0]))
    assert int(state.restart_at) == 7 and int(state.radius) == 1  # restarted with the initial radius
    _, priority = jax.jit(bayesian_core().propose, static_argnums=2)(jax.random.key(0), state, 1)
    assert np.all(np.asarray(priority) == -np.inf)  # a new initial design: uniform samples first


def test_bayesian_random_ranking_ablation_keeps_the_pool_but_ignores_the_model():
    strategy = strategies.get("bayesian", SPACE, **SMALL_BO)
    archs = np.asarray([[i % 3, i % 4, i % 3, i % 2, (i + 1) % 3, 0] for i in range(8)], np.int32)
    state = told(strategy, archs, np.arange(8.0))
    guided = jax.jit(bayesian_core().propose, static_argnums=2)
    blind = jax.jit(bayesian_core(acquisition="random").propose, static_argnums=2)
    pool, by_model = guided(jax.random.key(3), state, 1)
    pool_blind, at_random = blind(jax.random.key(3), state, 1)
    mean, _ = bayesian.predict(state.gp, pool, SPACE.num_choices)
    top = lambda p: np.argsort(-np.asarray(p))[:10]
    assert np.mean(np.asarray(mean)[top(by_model)]) > np.mean(np.asarray(mean)[top(at_random)])
    assert pool_blind.shape == pool.shape
