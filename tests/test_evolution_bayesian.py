"""Tests for the mechanisms of the evolution and bayesian strategies: aging evolution's population
and tournaments, the trust region's Hamming ball and radius, and a pool that reaches beyond one
incumbent's neighbourhood."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import strategies
from strategies import archs as archs_lib, bayesian
from strategies.space import Decisions

SPACE = Decisions([("a", ["a0", "a1", "a2"]), ("b", ["b0", "b1", "b2", "b3"]), ("c", ["c0", "c1", "c2"]),
                   ("d", ["d0", "d1"]), ("e", ["e0", "e1", "e2"]), ("f", ["f0"])])  # f: one option
# One set of small options for every bayesian test, so each jitted function compiles once.
SMALL_BO = {"capacity": 32, "gp_size": 16, "num_initial": 2, "init_radius": 1, "success_tolerance": 1,
            "failure_tolerance": 2, "trust_region_samples": 16, "num_random": 8, "mutations_per_incumbent": 2,
            "num_incumbents": 2}


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


@functools.lru_cache(maxsize=None)
def small_bayesian():
    return strategies.get("bayesian", SPACE, **SMALL_BO)


@functools.lru_cache(maxsize=None)
def bayesian_propose(acquisition="ei", **extra):
    """The core's jitted `propose` (the pool and its priorities), with the test options."""
    options = {k: v for k, v in {**SMALL_BO, **extra}.items() if k != "capacity"}
    core = bayesian.make_core(SPACE, SMALL_BO["capacity"], acquisition=acquisition, **options)
    return jax.jit(core.propose, static_argnums=2)


def told(strategy, archs, fitness):
    state = strategy.init(jax.random.key(0))
    return strategy.tell(state, np.asarray(archs, np.int32), np.asarray(fitness, np.float32))


def test_bayesian_pool_reaches_beyond_the_incumbents_neighbourhood_and_is_ranked_by_the_model():
    archs = np.array([[i % 2, i // 2 % 2, i // 4 % 2, 0, 0, 0] for i in range(6)], np.int32)
    strategy = small_bayesian()
    state = told(strategy, archs[:2], [0.0, 1.0])  # the initial design, then 4 improvements: radius 5
    for i in range(2, 6):
        state = strategy.tell(state, archs[i:i + 1], np.asarray([float(i)]))
    assert int(state.radius) == 5
    pool, priority = bayesian_propose()(jax.random.key(2), state, 1)
    distance = np.sum(np.asarray(pool) != archs[-1], axis=1)  # from the best, the trust region's centre
    assert np.isfinite(np.asarray(priority)).all()  # past the initial design, every candidate is scored
    assert np.sum(distance == 1) >= sum(k - 1 for k in SPACE.num_choices)  # the centre's whole neighbourhood
    assert np.any(distance == 2) and np.any(distance >= 4)  # the trust region and the global part
    # The ablation keeps the pool but ranks it blindly: its favourites are worse by the model's mean.
    pool_blind, at_random = bayesian_propose("random")(jax.random.key(2), state, 1)
    mean = lambda p: np.asarray(bayesian.predict(state.gp, p, SPACE)[0])
    top = lambda p: np.argsort(-np.asarray(p))[:10]
    assert np.mean(mean(pool)[top(priority)]) > np.mean(mean(pool_blind)[top(at_random)])


def test_bayesian_restarts_when_its_trust_region_collapses():
    strategy = small_bayesian()
    state = told(strategy, [[0, 0, 0, 0, 0, 0], [1, 0, 0, 0, 0, 0]], [1.0, 2.0])  # the initial design
    assert int(state.radius) == 1 and int(state.restart_at) == 0
    state = strategy.tell(state, np.asarray([[1, 1, 0, 0, 0, 0]], np.int32), np.asarray([3.0]))  # a success
    assert int(state.radius) == 2
    for i in range(3):  # two failures narrow it to 1 ...
        state = strategy.tell(state, np.asarray([[1, 1, 1 + i % 2, i // 2, 0, 0]], np.int32), np.asarray([0.0]))
    assert int(state.radius) == 1 and int(state.restart_at) == 0
    state = strategy.tell(state, np.asarray([[2, 2, 0, 0, 0, 0]], np.int32), np.asarray([0.0]))  # ... two collapse it
    assert int(state.restart_at) == 7 and int(state.radius) == 1  # restarted with the initial radius
    _, priority = bayesian_propose()(jax.random.key(0), state, 1)
    assert np.all(np.asarray(priority) == -np.inf)  # a new initial design: uniform samples first


def test_bayesian_restart_design_has_its_own_size():
    archs = np.asarray([[0, 0, 0, 0, 0, 0], [1, 0, 0, 0, 0, 0], [2, 0, 0, 0, 0, 0], [2, 1, 0, 0, 0, 0]], np.int32)
    guided_after = {}
    for restart_initial in (2, 1):
        strategy = strategies.get("bayesian", SPACE, restart_initial=restart_initial, **SMALL_BO)
        propose = bayesian_propose(restart_initial=restart_initial)
        state = told(strategy, archs[:2], [1.0, 2.0])  # the initial design (num_initial 2) ...
        state = strategy.tell(state, archs[2:3], np.asarray([0.0]))  # ... two failures collapse the radius
        state = strategy.tell(state, archs[3:4], np.asarray([0.0]))
        assert int(state.restart_at) == 4
        guided = []
        for i in range(2):  # the new run's uniform samples, then the model's proposals
            guided.append(bool(np.isfinite(np.asarray(propose(jax.random.key(i), state, 1)[1])).any()))
            state = strategy.tell(state, np.asarray([[0, 2 + i, 1, 0, 0, 0]], np.int32), np.asarray([0.5]))
        guided_after[restart_initial] = guided
    assert guided_after == {2: [False, False], 1: [False, True]}
    with pytest.raises(ValueError, match="restart_initial >= 1"):
        bayesian.make_core(SPACE, 32, gp_size=16, restart_initial=0)


def test_evolution_is_a_population_whose_best_ages_out():
    strategy = strategies.get("evolution", SPACE, capacity=64, population_size=10)
    star = np.asarray([[2, 3, 2, 1, 2, 0]], np.int32)
    others = np.asarray([[0, i % 4, 0, 0, i // 4, 0] for i in range(10)], np.int32)  # >= 3 steps from it
    state = told(strategy, star, [100.0])
    state = strategy.tell(state, others, np.arange(10.0))
    children = np.asarray(strategy.ask(jax.random.key(1), state, 4)[0])
    # Ten younger results pushed the star out of the population (a local search would keep climbing
    # from it): the children are one step from the best of the ten.
    np.testing.assert_array_equal(np.sum(children != others[-1], axis=1), 1)
    assert int(strategy.tell(state, children, np.zeros(4)).restart_at) == 0  # patience 25 not spent


def test_evolution_mutates_first_where_the_surrogate_predicts_best():
    # Additive fitness, one value per option of each decision: after 40 random results the linear
    # surrogate knows the values, so the first mutation is the parent's best fresh neighbour.
    rng = np.random.default_rng(0)
    values = [rng.normal(size=k) for k in SPACE.num_choices]
    fitness = lambda archs: sum(values[d][archs[:, d]] for d in range(len(values)))
    archs = np.unique(np.stack([rng.integers(0, k, 40) for k in SPACE.num_choices], axis=1), axis=0)
    parent = archs[np.argmax(fitness(archs))]
    neighbours = np.asarray(archs_lib.neighbours(jnp.asarray(parent[None]), SPACE.num_choices))
    fresh = neighbours[~(neighbours[:, None, :] == archs[None]).all(-1).any(1)]
    best_child = fresh[np.argmax(fitness(fresh))]
    firsts = {}
    for order in ("linear", "random"):
        strategy = strategies.get("evolution", SPACE, capacity=64, population_size=64, mutation_order=order)
        state = told(strategy, archs, fitness(archs))
        firsts[order] = [np.asarray(strategy.ask(jax.random.key(seed), state, 1)[0][0]) for seed in range(6)]
    for child in firsts["linear"]:
        np.testing.assert_array_equal(child, best_child)
    assert all(np.sum(child != parent) == 1 for child in firsts["random"])
    assert any(np.any(child != best_child) for child in firsts["random"])  # the order is what did it
    with pytest.raises(ValueError, match="mutation_order must be one of"):
        strategies.get("evolution", SPACE, mutation_order="greedy")


def test_evolution_restarts_after_its_patience_runs_out():
    strategy = strategies.get("evolution", SPACE, capacity=64, num_initial=2, restart_patience=3)
    state = told(strategy, [[0, 0, 0, 0, 0, 0], [1, 0, 0, 0, 0, 0]], [1.0, 5.0])
    state = strategy.tell(state, np.asarray([[1, 1, 0, 0, 0, 0], [1, 2, 0, 0, 0, 0]], np.int32), np.zeros(2))
    assert int(state.restart_at) == 0  # two results since the best
    state = strategy.tell(state, np.asarray([[1, 3, 0, 0, 0, 0]], np.int32), np.zeros(1))
    assert int(state.restart_at) == 5
    with pytest.raises(ValueError, match="restart_patience must be at least 1"):
        strategies.get("evolution", SPACE, restart_patience=0)
