"""Tests for strategies: the shared interface (over the whole registry), constraints, bad input,
jit, checkpoints, and each algorithm's behaviour on a toy objective with a known optimum."""

import functools

import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import strategies
from strategies import archs as archs_lib
from strategies import autoencoder, bayesian, buffer, pareto, reinforce, surrogate
from supernet import ensemble, spaces
from supernet.jobs import strategies_nb201 as comparison
from strategies.constraints import Limit
from strategies.space import Decisions

# Small settings so the slow learners stay quick in tests; behaviour, not speed, is under test.
FAST = {
    "random": {},
    "evolution": {"population_size": 10, "tournament_size": 5},  # a small space: a small population
    "bayesian": {"capacity": 160, "gp_size": 128, "num_random": 100},
    "reinforce": {},
    "autoencoder": {"train_steps": 10},
    "local": {},
}
SEARCH = strategies.SEARCH_STRATEGIES
N = 2  # architectures per ask everywhere, so each strategy compiles its ask once


@pytest.fixture(scope="module", autouse=True)
def _single_threaded_blas():
    with comparison.single_threaded_blas():
        yield


class ToySpace(Decisions):
    """Unequal option counts on purpose: nothing may assume D x K. Made-up costs for limits."""
    name = "toy"

    def __init__(self):
        super().__init__([("a", ["a0", "a1", "a2"]), ("b", ["b0", "b1", "b2", "b3"]),
                          ("c", ["c0", "c1", "c2", "c3", "c4"]), ("d", ["d0", "d1", "d2", "d3"])])

    def params(self, arch):
        return int(np.sum(self.validate(arch)) * 100)

    def flops(self, arch):
        return int(self.validate(arch)[2] * 1000)


TOY = ToySpace()
TOY_OPTIMUM = np.array([2, 1, 3, 0], np.int32)
TOY_WEIGHTS = np.array([1.0, 2.0, 1.5, 0.5])


@functools.lru_cache(maxsize=None)
def toy_strategy(name):
    """One instance per strategy for all toy tests: its jitted functions compile once."""
    return strategies.get(name, TOY, **FAST[name])


def toy_objective(archs):
    """Weighted count of decisions matching the optimum, plus a bonus for matching a and b
    together (an interaction); unique maximum at TOY_OPTIMUM."""
    archs = np.asarray(archs)
    match = archs == TOY_OPTIMUM
    return (match @ TOY_WEIGHTS + 1.0 * (match[:, 0] & match[:, 1])).astype(np.float32)


def queries_to_optimum(queried):
    """Per seed: 1-based index of the first query equal to the optimum (budget + 1 if never)."""
    hits = np.all(queried == TOY_OPTIMUM, axis=-1)
    return np.where(hits.any(1), hits.argmax(1) + 1, queried.shape[1] + 1)


def run(strategy, objective, key, queries, n=N):
    state = strategy.init(key)
    seen = []
    for step in range(queries // n):
        archs, state = strategy.ask(jax.random.fold_in(key, step), state, n)
        state = strategy.tell(state, archs, objective(archs))
        seen.append(np.asarray(archs))
    return np.concatenate(seen), state


# -- registry ------------------------------------------------------------------------------------

def test_registry_names_and_unknown_name(nb201):
    assert SEARCH == ("random", "evolution", "bayesian", "reinforce", "autoencoder", "local")
    assert set(SEARCH) <= set(strategies.names())
    with pytest.raises(ValueError, match="unknown strategy 'hill_climbing'.*valid: autoencoder, bayesian, differentiable, evolution, local, random, reinforce"):
        strategies.get("hill_climbing", nb201)


def test_unknown_option_lists_the_valid_ones(nb201):
    with pytest.raises(TypeError, match="population_size"):
        strategies.get("evolution", nb201, popsize=10)


@pytest.mark.parametrize("name, options, message", [
    ("evolution", dict(population_size=-3), r"population_size must be in 1..capacity \(1000\), got -3"),
    ("evolution", dict(mutation_order="randm"),
     r"mutation_order must be one of \('linear', 'random'\), got 'randm' \(did you mean 'random'\?\)"),
    ("bayesian", dict(gp_size="big"), r"strategy 'bayesian': gp_size takes int \(default 300\), got 'big' \(str\)"),
    ("differentiable", dict(weights=np.ones((3, 5))), r"weights must be float\[6, 5\] .* got shape \(3, 5\)"),
])
def test_a_bad_option_value_is_one_line_naming_the_option(nb201, name, options, message):
    with pytest.raises(ValueError, match=message):
        strategies.get(name, nb201, **options)


def test_a_limit_on_a_count_the_space_lacks_names_the_fix():
    with pytest.raises(ValueError, match=r"max_params: space has no params\(arch\) to count; drop max_params, or "
                                         r"pass constraints="):
        strategies.get("random", Decisions([("op", ["conv", "pool"])]), max_params=10)


# -- the interface, for every strategy ------------------------------------------------------------

@pytest.mark.parametrize("name", SEARCH)
def test_ask_gives_valid_fresh_deterministic_batches(name):
    strategy = toy_strategy(name)
    queried, state = run(strategy, toy_objective, jax.random.key(0), 30)
    assert queried.dtype == np.int32 and queried.shape == (30, 4)
    TOY.validate(queried)
    assert len(np.unique(queried, axis=0)) == 30, "avoid_repeats: no architecture proposed twice"
    again, _ = run(strategy, toy_objective, jax.random.key(0), 30)
    np.testing.assert_array_equal(queried, again)
    assert int(state.history.count) == 30
    _, best_fitness = strategies.best(state)
    assert best_fitness == toy_objective(queried).max()


@pytest.mark.parametrize("name", SEARCH)
def test_ask_and_tell_run_under_jit(name):
    strategy = toy_strategy(name)
    key = jax.random.key(3)
    _, state = run(strategy, toy_objective, key, 12)
    archs_jit, _ = jax.jit(strategy.ask, static_argnums=2)(key, state, N)
    archs, _ = strategy.ask(key, state, N)
    np.testing.assert_array_equal(archs_jit, archs)
    fitness = toy_objective(archs)
    told_jit, told = jax.jit(strategy.tell)(state, archs, fitness), strategy.tell(state, archs, fitness)
    for a, b in zip(jax.tree.leaves(told_jit), jax.tree.leaves(told)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", SEARCH)
def test_checkpoint_round_trip(name):
    strategy = toy_strategy(name)
    _, state = run(strategy, toy_objective, jax.random.key(1), 14)
    restored = flax.serialization.from_bytes(strategy.init(jax.random.key(9)), flax.serialization.to_bytes(state))
    key = jax.random.key(7)
    archs, _ = strategy.ask(key, state, N)
    np.testing.assert_array_equal(strategy.ask(key, restored, N)[0], archs)
    after_restored = strategy.tell(restored, archs, toy_objective(archs))
    after = strategy.tell(state, archs, toy_objective(archs))
    np.testing.assert_array_equal(strategy.ask(key, after_restored, N)[0], strategy.ask(key, after, N)[0])


@pytest.mark.parametrize("name", SEARCH)
def test_only_feasible_architectures_under_flops_params_and_user_limits(name):
    latency = Limit("fake latency", lambda a: np.asarray(a)[:, 1].astype(float), 2.0)
    strategy = strategies.get(name, TOY, max_params=600, max_flops=3000, constraints=[latency], **FAST[name])
    queried, _ = run(strategy, toy_objective, jax.random.key(0), 30)
    assert all(TOY.params(a) <= 600 and TOY.flops(a) <= 3000 for a in queried)
    assert queried[:, 1].max() <= 2


def test_limits_from_the_space_s_own_counts(nb201):
    strategy = strategies.get("random", nb201, max_params=600_000, max_flops=2.5e8)
    archs, _ = strategy.ask(jax.random.key(0), strategy.init(jax.random.key(0)), 200)
    assert all(nb201.params(a) <= 600_000 and nb201.flops(a) <= 2.5e8 for a in np.asarray(archs))


@pytest.mark.parametrize("name", SEARCH)
def test_bad_tell_inputs_get_clear_errors(name):
    strategy = toy_strategy(name)
    state = strategy.init(jax.random.key(0))
    good = np.array([[0, 1, 2, 3], [2, 3, 4, 0]], np.int32)
    with pytest.raises(ValueError, match=r"decision 2 \('c'\) has choice 5"):
        strategy.tell(state, np.array([[0, 1, 5, 0]]), np.array([1.0]))
    with pytest.raises(ValueError, match="got 2 architectures but fitness of shape"):
        strategy.tell(state, good, np.array([1.0, 2.0, 3.0]))
    with pytest.raises(ValueError, match=r"architectures must be int\[n, 4\]"):
        strategy.tell(state, good[:, :3], np.array([1.0, 2.0]))
    with pytest.raises(ValueError, match="fitness must be finite"):
        strategy.tell(state, good, np.array([1.0, np.inf]))


@pytest.mark.parametrize("name", SEARCH)
def test_nan_fitness_is_the_worst_with_a_warning(name):
    strategy = toy_strategy(name)
    state = strategy.init(jax.random.key(0))
    archs = np.array([[0, 1, 2, 3], [2, 3, 4, 0]], np.int32)
    state = strategy.tell(state, archs, np.array([1.0, -5.0]))
    with pytest.warns(RuntimeWarning, match="NaN fitness value"):
        state = strategy.tell(state, np.array([[1, 1, 1, 1], [2, 2, 2, 2]], np.int32), np.array([np.nan, 0.0]))
    top, fitness = strategies.top_k(state, 4)
    np.testing.assert_array_equal(top[-1], [1, 1, 1, 1])
    assert fitness[-1] == -np.inf
    for leaf in jax.tree.leaves(state):  # no NaN leaked into learned parameters
        assert not np.any(np.isnan(np.asarray(leaf, np.float64)))
    strategy.ask(jax.random.key(1), state, N)  # and the strategy carries on


# -- constraints -----------------------------------------------------------------------------------

def test_unsatisfiable_constraint_is_reported_up_front():
    with pytest.raises(ValueError, match=r"no architecture of toy .* cheapest parameters is 0, the limit is -1"):
        strategies.get("random", TOY, max_params=-1)
    both = [Limit("x", lambda a: np.asarray(a)[:, 0], 0.0), Limit("y", lambda a: -np.asarray(a)[:, 0], -1.0)]
    with pytest.raises(ValueError, match="no architecture meets all of them at once"):
        strategies.get("evolution", TOY, constraints=both)


def test_host_side_constraints_on_untabulated_spaces():
    """Above `enumerate_limit` constraints are checked on the host, bounded, and not jittable."""
    limit = [(lambda a: np.asarray(a).sum(1), 4)]
    strategy = strategies.get("evolution", TOY, constraints=limit, enumerate_limit=0, population_size=5)
    queried, _ = run(strategy, toy_objective, jax.random.key(0), 12)
    assert queried.sum(1).max() <= 4
    with pytest.raises(TypeError, match="cannot run under jit"):
        jax.jit(strategy.ask, static_argnums=2)(jax.random.key(0), strategy.init(jax.random.key(0)), N)
    impossible = strategies.get("random", TOY, constraints=[(lambda a: np.asarray(a).sum(1) + 3, 2)],
                                enumerate_limit=0)
    with pytest.raises(ValueError, match=r"no feasible architecture .* found in \d+ tries.*cheapest .* costs 3"):
        impossible.ask(jax.random.key(0), impossible.init(jax.random.key(0)), 1)


def test_random_is_uniform_over_the_feasible_part():
    strategy = strategies.get("random", TOY, constraints=[(lambda a: np.asarray(a)[:, 2], 1)], avoid_repeats=False)
    archs, _ = strategy.ask(jax.random.key(0), strategy.init(jax.random.key(0)), 4000)
    archs = np.asarray(archs)
    for d, k in enumerate(TOY.num_choices):
        counts = np.bincount(archs[:, d], minlength=k)
        expected = np.full(k, 4000 / k) if d != 2 else np.array([2000, 2000, 0, 0, 0])  # c <= 1 only
        np.testing.assert_allclose(counts, expected, atol=200)


def test_when_every_feasible_architecture_was_seen_it_repeats_instead_of_looping():
    strategy = strategies.get("evolution", TOY, constraints=[(lambda a: np.asarray(a)[:, :3].sum(1), 0)],
                              population_size=2, tournament_size=1)  # 4 feasible architectures
    queried, _ = run(strategy, toy_objective, jax.random.key(0), 8)
    assert len(np.unique(queried, axis=0)) == 4 and (queried[:, :3] == 0).all()


# -- algorithms on the toy objective ----------------------------------------------------------------

SEEDS = list(range(8))
TOY_BUDGET = 120
# Uniform sampling without replacement puts the optimum at a uniform position 1..240, so random
# search needs E[min(position, budget + 1)] queries (budget + 1 standing for "not found").
RANDOM_EXPECTED = np.mean(np.minimum(np.arange(1, TOY.size + 1), TOY_BUDGET + 1))


def found_everywhere(queried):
    return bool(np.all(np.any(np.all(queried == TOY_OPTIMUM, axis=-1), axis=1)))


@pytest.mark.parametrize("name", ["random", "evolution"])
def test_prior_orders_the_uniform_samples(name):
    # Scored by the first decision: the uniform samples (all of random search, evolution's initial
    # sample) come with the best-scored option nearly always, never without a prior.
    first_choice = lambda archs: np.asarray(archs)[:, 0].astype(np.float32)
    with_prior = strategies.get(name, TOY, prior=first_choice)
    asked, _ = with_prior.ask(jax.random.key(0), with_prior.init(jax.random.key(0)), 4)
    assert np.all(np.asarray(asked)[:, 0] == TOY.num_choices[0] - 1)
    plain = strategies.get(name, TOY)
    asked, _ = plain.ask(jax.random.key(0), plain.init(jax.random.key(0)), 16)
    assert len(set(np.asarray(asked)[:, 0].tolist())) > 1


def test_prior_must_score_every_architecture_of_a_small_space():
    with pytest.raises(ValueError, match="one finite number per architecture"):
        strategies.get("random", TOY, prior=lambda archs: np.zeros(3))
    with pytest.raises(ValueError, match="enumerate_limit"):
        strategies.get("random", TOY, prior=lambda archs: np.zeros(len(archs)), enumerate_limit=10)


def test_random_search_needs_what_uniform_sampling_predicts():
    strategy = strategies.get("random", TOY)
    found = queries_to_optimum(comparison.run_search(strategy, toy_objective, range(48), TOY_BUDGET))
    assert abs(np.mean(found) - RANDOM_EXPECTED) < 8, (np.mean(found), RANDOM_EXPECTED)


@pytest.mark.parametrize("name", ["evolution", "bayesian", "reinforce", "autoencoder"])
def test_finds_the_optimum_in_clearly_fewer_queries_than_random(name):
    queried = comparison.run_search(toy_strategy(name), toy_objective, SEEDS, TOY_BUDGET,
                                    stop_when=found_everywhere)
    found = queries_to_optimum(queried)  # a search stops early only once every seed found it
    assert np.mean(found) < 0.5 * RANDOM_EXPECTED, (name, found, RANDOM_EXPECTED)


def test_reinforce_policy_concentrates_on_the_optimum():
    # The default learning rate suits 100-300 query budgets on NAS-Bench-201 and moves slowly here;
    # a faster one needs the stronger entropy bonus, or seeds collapse onto a near-optimum.
    # The policy gradient alone (no elite term): at this rate the elite term pulls the policy onto
    # the best found early, before the optimum was seen. Without the local search, whose proposals
    # are not the policy's samples.
    strategy = strategies.get("reinforce", TOY, avoid_repeats=False, learning_rate=0.03, entropy_weight=0.01,
                              elite_weight=0.0, policy="sequence", local_search=False)
    _, state = run(strategy, toy_objective, jax.random.key(0), 200)
    before = reinforce.log_prob(TOY, strategy.init(jax.random.key(0)), TOY_OPTIMUM[None])[0]
    after = reinforce.log_prob(TOY, state, TOY_OPTIMUM[None])[0]
    assert np.exp(before) < 0.01 and np.exp(after) > 0.5
    samples = reinforce.controller_for(TOY, state).apply(state.params, jax.random.key(5), 50,
                                                         method=reinforce.Controller.sample)
    assert np.mean(np.all(np.asarray(samples) == TOY_OPTIMUM, axis=1)) > 0.5


def test_autoencoder_reconstructs_what_it_was_trained_on():
    strategy = toy_strategy("autoencoder")
    queried, state = run(strategy, toy_objective, jax.random.key(0), 40)
    np.testing.assert_array_equal(autoencoder.reconstruct(TOY, state, queried), queried)
    predicted = autoencoder.predicted_fitness(TOY, state, queried)
    assert np.corrcoef(predicted, toy_objective(queried))[0, 1] > 0.8  # the fitness head learned too


def test_evolution_mutates_one_decision_of_a_tournament_winner():
    strategy = strategies.get("evolution", TOY, population_size=4, tournament_size=4, num_initial=4)
    queried, state = run(strategy, toy_objective, jax.random.key(2), 4)
    winner = queried[np.argmax(toy_objective(queried))]
    children, _ = strategy.ask(jax.random.key(3), state, 5)
    # A tournament over the whole population always picks its best, so every child is one step from it.
    assert np.all(np.sum(np.asarray(children) != winner, axis=1) == 1)


def test_evolution_population_ages_out_old_members():
    strategy = strategies.get("evolution", TOY, population_size=3, tournament_size=3, num_initial=1)
    state = strategy.init(jax.random.key(0))
    state = strategy.tell(state, TOY_OPTIMUM[None], np.array([100.0]))
    others = np.array([[0, 0, 0, 1], [1, 0, 0, 1], [0, 2, 0, 1]], np.int32)  # 4 steps from the star
    state = strategy.tell(state, others, np.zeros(3))
    children = np.asarray(strategy.ask(jax.random.key(1), state, 5)[0])
    # The star aged out (3 younger members): children are one step from those, never from it.
    steps_from_others = np.sum(children[:, None, :] != others[None], axis=-1)
    assert np.all(steps_from_others.min(axis=1) == 1)
    assert np.all(np.sum(children != TOY_OPTIMUM, axis=1) >= 3)


def test_neighbours_are_every_single_decision_change():
    arch = jnp.asarray([[2, 1, 3, 0]], jnp.int32)
    found = np.asarray(archs_lib.neighbours(arch, TOY.num_choices))
    assert len(found) == sum(k - 1 for k in TOY.num_choices)
    assert np.all(np.sum(found != arch, axis=1) == 1)
    assert len(np.unique(found, axis=0)) == len(found) and np.all(found < np.asarray(TOY.num_choices))


def test_evolution_finds_the_last_unseen_child_of_its_parent():
    # The parent wins every tournament and 11 of its 12 children were evaluated: the one left is
    # the child, where drawing 16 mutations with replacement misses it (then asks a random one)
    # one time in four.
    parent = jnp.asarray([[2, 1, 3, 0]], jnp.int32)
    children = np.asarray(archs_lib.neighbours(parent, TOY.num_choices))
    strategy = strategies.get("evolution", TOY, population_size=12, tournament_size=12)
    state = strategy.tell(strategy.init(jax.random.key(0)), np.concatenate([parent, children[:-1]]),
                          np.concatenate([[10.0], np.zeros(11)]))
    for seed in range(8):
        asked, _ = strategy.ask(jax.random.key(seed), state, 1)
        np.testing.assert_array_equal(asked[0], children[-1])


def test_evolution_restarts_when_its_local_search_is_over():
    parent = jnp.asarray([[2, 1, 3, 0]], jnp.int32)
    children = np.asarray(archs_lib.neighbours(parent, TOY.num_choices))
    strategy = strategies.get("evolution", TOY, num_initial=2, population_size=None)  # the local-search limit
    state = strategy.tell(strategy.init(jax.random.key(0)), np.concatenate([parent, children[:-1]]),
                          np.concatenate([[10.0], np.zeros(11)]))
    assert int(state.restart_at) == 0  # one neighbour of the best is left
    state = strategy.tell(state, children[-1:], np.zeros(1))
    assert int(state.restart_at) == 13  # all evaluated, none better: a restart
    asked, state = strategy.ask(jax.random.key(1), state, 2)
    state = strategy.tell(state, asked, np.asarray([1.0, 2.0]))
    # After the new initial sample the parent is the best since the restart, not the old optimum.
    children_now, _ = strategy.ask(jax.random.key(2), state, 4)
    assert np.all(np.sum(np.asarray(children_now) != np.asarray(asked[1]), axis=1) == 1)


@pytest.mark.parametrize("name, climbing", [("evolution", {}), ("reinforce", {}),
                                           ("reinforce", {"policy": "sequence"}),
                                           ("autoencoder", {"local_search": True})])
def test_learning_strategies_climb_from_their_best_after_the_initial_sample(name, climbing):
    # After `num_initial` results, the neighbours of the best come first: evolution's restarts,
    # reinforce's edits (its default policy) and the local search of the sequence controller and
    # the autoencoder, which `local_search=False` turns off.
    options = {"num_initial": 4} if name == "evolution" else {**FAST[name], "num_initial": 4}
    strategy = strategies.get(name, TOY, **options, **climbing)
    others = np.array([[0, 0, 0, 1], [1, 0, 0, 1], [0, 3, 0, 2]], np.int32)  # 3-4 steps from the star
    state = strategy.tell(strategy.init(jax.random.key(0)), np.concatenate([TOY_OPTIMUM[None], others]),
                          np.asarray([10.0, 0.0, 0.0, 0.0]))
    asked, _ = strategy.ask(jax.random.key(1), state, 3)
    assert np.all(np.sum(np.asarray(asked) != TOY_OPTIMUM, axis=1) == 1)
    if "local_search" in climbing or "policy" in climbing:
        # The autoencoder's latent proposals ranked by its predictor alone, with no episodes.
        latent = {"proposal_order": "predicted", "restarts": False} if name == "autoencoder" else {}
        plain = strategies.get(name, TOY, **options, **{**climbing, "local_search": False}, **latent)
        state = plain.tell(plain.init(jax.random.key(0)), np.concatenate([TOY_OPTIMUM[None], others]),
                           np.asarray([10.0, 0.0, 0.0, 0.0]))
        asked, _ = plain.ask(jax.random.key(1), state, 12)
        assert not np.all(np.sum(np.asarray(asked) != TOY_OPTIMUM, axis=1) == 1)


class SharedLabelSpace(Decisions):
    """Four decisions offering the same three operations, like NAS-Bench-201's edges."""
    name = "shared"

    def __init__(self):
        super().__init__([(f"edge{i}", ["conv", "pool", "none"]) for i in range(4)])


SHARED = SharedLabelSpace()


def by_operation_counts(archs):
    """Fitness additive in how often each operation occurs, whichever edge it is on."""
    archs = np.asarray(archs)
    return (3.0 * np.sum(archs == 0, axis=1) + 1.0 * np.sum(archs == 1, axis=1)).astype(np.float32)


def test_option_counts_matrix_counts_each_label_over_the_decisions():
    counts = surrogate.option_counts_matrix(SHARED)
    assert counts.shape == (12, 3) and np.all(counts.sum(1) == 1)
    arch = jnp.asarray([[0, 0, 2, 1]])
    # Labels in sorted order: conv, none, pool.
    np.testing.assert_array_equal(archs_lib.one_hot(arch, SHARED.num_choices) @ counts, [[2, 1, 1]])
    assert surrogate.option_counts_matrix(TOY).shape == (16, 16)  # no label shared: one column per slot


def test_spd_solve_matches_a_lapack_solve():
    rng = np.random.default_rng(0)
    m = rng.normal(size=(35, 35))
    a, b = m @ m.T + 0.1 * np.eye(35), rng.normal(size=35)
    x = surrogate.spd_solve(jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32))
    np.testing.assert_allclose(x, np.linalg.solve(a, b), rtol=1e-3, atol=1e-3 * np.abs(np.linalg.solve(a, b)).max())


def test_linear_surrogate_generalises_an_operation_effect_across_decisions():
    # Five results, none with "conv" on edge 3: the shared weight still predicts every cell.
    told = np.asarray([[0, 1, 2, 2], [2, 0, 1, 2], [1, 2, 0, 2], [2, 2, 2, 1], [1, 1, 1, 2]], np.int32)
    history = buffer.append(buffer.empty_history(4, 16), jnp.asarray(told), jnp.asarray(by_operation_counts(told)))
    slot_weights, offset = surrogate.fit_linear_surrogate(history, SHARED)
    every = archs_lib.enumerate_all(SHARED.num_choices)
    predicted = surrogate.linear_prediction(jnp.asarray(every), slot_weights, offset, SHARED)
    np.testing.assert_allclose(predicted, by_operation_counts(every), atol=0.1)


def test_bayesian_gp_and_autoencoder_read_the_canonical_form():
    # Told NAS-Bench-201 cells or their representatives (the same functions): the GP predicts the
    # same everywhere, and the autoencoder's model learns the same parameters.
    space = spaces.get("nas_bench_201")
    cells = np.asarray(space.sample(jax.random.key(1), 30))
    representatives = np.asarray(space.canonical(cells))
    fitness = np.random.default_rng(1).normal(size=30).astype(np.float32)
    every = jnp.asarray(space.sample(jax.random.key(2), 50))
    predictions, params = [], []
    for told in (cells, representatives):
        history = buffer.append(buffer.empty_history(6, 64), jnp.asarray(told), jnp.asarray(fitness))
        gp = bayesian.fit(history, space, 32, mean=surrogate.fit_linear_surrogate(history, space))
        predictions.append(np.stack(bayesian.predict(gp, every, space)))
        strategy = strategies.get("autoencoder", space, train_steps=5)
        params.append(strategy.tell(strategy.init(jax.random.key(0)), told, fitness).params)
    np.testing.assert_allclose(predictions[0], predictions[1], atol=1e-4)
    np.testing.assert_allclose(bayesian.predict(gp, every, space)[0],
                               bayesian.predict(gp, space.canonical(every), space)[0], atol=1e-4)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-6), *params)


def test_linear_surrogate_reads_the_canonical_form():
    # NAS-Bench-201 cells that compute the same function (an edge feeding nothing, isomorphic
    # cells) get one prediction, and a fit on them equals the fit on their representatives.
    space = spaces.get("nas_bench_201")
    cells = np.asarray(space.sample(jax.random.key(0), 40))
    representatives = np.asarray(space.canonical(cells))
    assert (cells != representatives).any(axis=1).sum() > 20
    fitness = jnp.asarray(np.random.default_rng(0).normal(size=40), jnp.float32)
    fits = [surrogate.fit_linear_surrogate(buffer.append(buffer.empty_history(6, 64), jnp.asarray(a), fitness), space)
            for a in (cells, representatives)]
    np.testing.assert_allclose(fits[0][0], fits[1][0], atol=1e-5)
    predictions = [surrogate.linear_prediction(jnp.asarray(a), *fits[0], space) for a in (cells, representatives)]
    np.testing.assert_allclose(predictions[0], predictions[1], atol=1e-5)


@pytest.mark.parametrize("name", ["reinforce", "autoencoder"])
def test_climb_takes_the_neighbour_the_linear_surrogate_ranks_first(name):
    climbing = {"policy": "sequence"} if name == "reinforce" else {"local_search": True}
    strategy = strategies.get(name, SHARED, **FAST[name], **climbing, num_initial=3)
    told = np.asarray([[0, 1, 1, 1], [0, 2, 2, 2], [2, 2, 2, 2]], np.int32)
    state = strategy.tell(strategy.init(jax.random.key(0)), told, by_operation_counts(told))
    # The best told has "conv" on edge 0 and "pool" elsewhere. "conv" was only ever seen on edge 0,
    # but the shared weight ranks a "conv" on edges 1-3 first. Checked to fail with every other
    # climb_order: random order takes one in 2 of these 5 draws, the policy and the predictor in none.
    for seed in range(5):
        asked, _ = strategy.ask(jax.random.key(seed), state, 1)
        changed = np.flatnonzero(np.asarray(asked[0]) != told[0])
        assert len(changed) == 1 and changed[0] > 0 and asked[0][changed[0]] == 0, asked


def test_bad_climb_options_name_the_valid_ones():
    with pytest.raises(ValueError, match=r"climb_order must be one of \('linear', 'random', 'policy'\)"):
        strategies.get("reinforce", TOY, policy="sequence", climb_order="best")
    with pytest.raises(ValueError, match="climb_order must be one of.*'predictor'"):
        strategies.get("autoencoder", TOY, climb_order="policy")
    with pytest.raises(ValueError, match="climb_starts must be 'uniform' or 'policy'"):
        strategies.get("reinforce", TOY, policy="sequence", climb_starts="best")


def test_reinforce_starts_climbs_from_uniform_samples_unless_told_to_use_the_policy():
    for climb_starts, wanted in (("uniform", False), ("policy", True)):
        core = reinforce.make_core(TOY, 100, policy="sequence", climb_starts=climb_starts, num_initial=4)
        state = core.init(jax.random.key(0))
        _, priority = jax.jit(core.propose, static_argnums=2)(jax.random.key(1), state, 1)
        samples = np.asarray(priority)[-16:]  # the policy's samples follow the climb's neighbours
        assert np.all(samples > -np.inf) == wanted, climb_starts


def test_bayesian_linear_mean_predicts_unseen_cells_better():
    told = np.asarray([[0, 1, 2, 2], [2, 0, 1, 2], [1, 2, 0, 2], [2, 2, 2, 1], [1, 1, 1, 2], [0, 0, 2, 1]], np.int32)
    history = buffer.append(buffer.empty_history(4, 16), jnp.asarray(told), jnp.asarray(by_operation_counts(told)))
    every = jnp.asarray(archs_lib.enumerate_all(SHARED.num_choices))
    errors = []
    for mean in (surrogate.fit_linear_surrogate(history, SHARED), None):
        gp = bayesian.fit(history, SHARED, 16, mean=mean)
        predicted, _ = bayesian.predict(gp, every, SHARED)
        errors.append(np.mean(np.abs(np.asarray(predicted) - by_operation_counts(every))))
    assert errors[0] < 0.2 < errors[1], errors


class DeadDecisionToy(ToySpace):
    """TOY where decision d does not matter while decision a is a0, like an edge into a node that
    cannot reach a cell's output: such architectures compute the same function."""

    def canonical(self, archs):
        archs = jnp.asarray(archs, jnp.int32)
        return archs.at[..., 3].set(jnp.where(archs[..., 0] == 0, 0, archs[..., 3]))


DEAD_TOY = DeadDecisionToy()


@pytest.mark.parametrize("name", SEARCH)
def test_no_two_queries_compute_the_same_function(name):
    strategy = strategies.get(name, DEAD_TOY, **FAST[name])
    queried, _ = run(strategy, toy_objective, jax.random.key(3), 60)
    functions = {tuple(a) for a in np.asarray(DEAD_TOY.canonical(queried))}
    assert len(functions) == len(queried)  # 60 of the 180 distinct functions, none twice


def test_local_search_counts_a_neighbour_as_evaluated_when_an_equivalent_one_was():
    parent = jnp.asarray([[0, 1, 3, 2]], jnp.int32)  # a = a0: its d is dead
    children = np.asarray(archs_lib.neighbours(parent, DEAD_TOY.num_choices))
    alive = children[np.asarray(jnp.any(DEAD_TOY.canonical(children) != DEAD_TOY.canonical(parent), axis=1))]
    assert len(alive) == len(children) - 3  # changing d gives the parent's own function
    strategy = strategies.get("evolution", DEAD_TOY, num_initial=2, population_size=None)  # local search
    state = strategy.tell(strategy.init(jax.random.key(0)), np.concatenate([parent, alive[:-1]]),
                          np.concatenate([[10.0], np.zeros(len(alive) - 1)]))
    assert int(state.restart_at) == 0
    state = strategy.tell(state, alive[-1:], np.zeros(1))
    assert int(state.restart_at) == len(alive) + 1  # the 3 dead-d children were never needed


def test_kriging_believer_does_not_pick_the_same_point_twice():
    # Candidates 0 and 1 are the same point (perfectly correlated), the best by expected
    # improvement; candidate 2 is a little worse and independent.
    mean = jnp.asarray([1.0, 1.0, 0.8])
    covariance = jnp.asarray([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    nothing = jnp.zeros(3, bool)
    picks = bayesian.kriging_believer(bayesian.expected_improvement, mean, covariance, jnp.asarray(0.0), 2, nothing)
    assert list(np.asarray(picks)) == [0, 2]
    ei = bayesian.expected_improvement(mean, jnp.sqrt(jnp.diag(covariance)), 0.0)
    assert list(np.argsort(-np.asarray(ei))[:2]) == [0, 1]  # what plain top-n acquisition would take
    excluded = jnp.asarray([True, False, False])
    picks = bayesian.kriging_believer(bayesian.expected_improvement, mean, covariance, jnp.asarray(0.0), 2, excluded)
    assert list(np.asarray(picks)) == [1, 2]


def test_bayesian_batch_is_distinct_and_its_joint_covariance_matches_the_marginals():
    queried, state = run(toy_strategy("bayesian"), toy_objective, jax.random.key(0), 20)
    batch, _ = toy_strategy("bayesian").ask(jax.random.key(1), state, 4)
    batch = np.asarray(batch)
    assert len(np.unique(batch, axis=0)) == 4
    # The believer's covariance agrees with the marginal posterior it conditions.
    gp = state.gp
    covariance = bayesian.joint_covariance(gp, jnp.asarray(batch), TOY)
    _, std = bayesian.predict(gp, jnp.asarray(batch), TOY)
    np.testing.assert_allclose(np.sqrt(np.diag(covariance)), std, rtol=1e-3, atol=1e-4)


def test_queries_since_best_counts_across_the_ring_buffer():
    history = buffer.empty_history(1, 4)
    history = buffer.append(history, jnp.zeros((6, 1), jnp.int32), jnp.asarray([1.0, 9.0, 2.0, 5.0, 3.0, 4.0]))
    # Slots hold results 4, 5, 2, 3: result 3 (fitness 5) is the best remembered, 2 results ago.
    assert int(buffer.queries_since_best(history, 0)) == 2
    assert int(buffer.queries_since_best(history, 4)) == 0  # from result 4 on, the newest is the best
    assert int(buffer.queries_since_best(history, 6)) == 0  # nothing told since


def test_bayesian_restarts_after_stagnation():
    strategy = strategies.get("bayesian", TOY, restart_patience=5, **FAST["bayesian"])
    state = strategy.init(jax.random.key(0))
    archs = np.asarray(archs_lib.neighbours(jnp.asarray([TOY_OPTIMUM]), TOY.num_choices))[:9]
    state = strategy.tell(state, archs[:4], np.asarray([5.0, 1.0, 1.0, 1.0]))
    assert int(state.restart_at) == 0  # 3 results without improvement: patience not yet spent
    state = strategy.tell(state, archs[4:6], np.asarray([1.0, 1.0]))
    assert int(state.restart_at) == 6  # the 5th in a row without improvement: a restart
    state = strategy.tell(state, archs[6:9], np.asarray([2.0, 6.0, 1.0]))
    assert int(state.restart_at) == 6  # stagnation counts from the restart on
    # The new search starts with a uniform initial design: the strategy's own pool is not wanted.
    propose = jax.jit(bayesian_core(restart_patience=5).propose, static_argnums=2)
    _, priority = propose(jax.random.key(1), state, 2)
    assert np.all(np.asarray(priority) == -np.inf)


def bayesian_core(**options):
    """The bayesian algorithm's own core with the test settings, to inspect its priorities."""
    options = {k: v for k, v in {**FAST["bayesian"], **options}.items() if k != "capacity"}
    return bayesian.make_core(TOY, FAST["bayesian"]["capacity"], **options)


def test_distinct_top_k_skips_repeats():
    strategy = toy_strategy("random")
    archs = np.asarray([[0, 0, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0], [2, 0, 0, 0]], np.int32)
    state = strategy.tell(strategy.init(jax.random.key(0)), archs, np.asarray([5.0, 3.0, 5.0, 1.0]))
    best, fitness = buffer.distinct_top_k(state, 3, TOY.num_choices)
    np.testing.assert_array_equal(best, archs[[0, 1, 3]])
    np.testing.assert_array_equal(fitness, [5.0, 3.0, 1.0])


def test_reinforce_entropy_bonus_decays_to_zero():
    weights = [float(reinforce.entropy_weight_at(t, 0.02, 100)) for t in (0, 50, 100, 300)]
    assert weights == pytest.approx([0.02, 0.01, 0.0, 0.0])
    assert float(reinforce.entropy_weight_at(300, 0.02, 0)) == pytest.approx(0.02)  # 0: constant


def test_reinforce_elite_term_pulls_the_policy_to_the_best_found():
    def log_prob_of_best(elite_weight):
        strategy = strategies.get("reinforce", TOY, elite_size=4, elite_weight=elite_weight, policy="sequence",
                                  local_search=False)
        queried, state = run(strategy, toy_objective, jax.random.key(0), 20)
        best = queried[np.argmax(toy_objective(queried))]
        return float(reinforce.log_prob(TOY, state, best[None])[0])
    assert log_prob_of_best(1.0) > log_prob_of_best(0.0) + 0.25


def test_bayesian_surrogate_interpolates_and_is_uncertain_away_from_data():
    queried, state = run(toy_strategy("bayesian"), toy_objective, jax.random.key(0), 30)
    mean, std = bayesian.predict(state.gp, jnp.asarray(queried), TOY)
    np.testing.assert_allclose(mean, toy_objective(queried), atol=0.5)
    unseen = np.array([a for a in np.ndindex(*TOY.num_choices) if not (np.all(queried == a, 1)).any()], np.int32)
    _, std_unseen = bayesian.predict(state.gp, jnp.asarray(unseen), TOY)
    assert np.mean(std_unseen) > 2 * np.mean(std)


# -- top-k, ensembling, Pareto --------------------------------------------------------------------

def test_top_k_is_sorted_best_first():
    queried, state = run(toy_strategy("evolution"), toy_objective, jax.random.key(0), 20)
    archs, fitness = strategies.top_k(state, 5)
    np.testing.assert_array_equal(fitness, np.sort(toy_objective(queried))[::-1][:5])
    np.testing.assert_array_equal(toy_objective(archs), fitness)


def test_ensemble_average_and_vote():
    logits = jnp.array([[[2.0, 0.0, 0.0]], [[0.0, 1.0, 0.0]], [[0.0, 1.2, 0.0]]])  # 3 members, 1 example
    assert ensemble.predict(logits, method="average")[0] == 1  # mean logits: [0.67, 0.73, 0]
    assert ensemble.predict(logits, method="vote")[0] == 1     # two votes for class 1
    assert ensemble.predict(logits, weights=[5.0, 1.0, 1.0], method="vote")[0] == 0
    assert ensemble.predict(logits, weights=[5.0, 1.0, 1.0], method="average")[0] == 0
    tie = jnp.array([[[1.0, 0.0]], [[0.0, 3.0]]])
    assert ensemble.predict(tie, method="vote")[0] == 1  # one vote each: the logits decide
    with pytest.raises(ValueError, match="valid methods: average, vote"):
        ensemble.combine(logits, method="median")
    np.testing.assert_allclose(ensemble.weights_from_fitness([1.0, 1.0]), [0.5, 0.5])


def test_pareto_front():
    fitness = np.array([1.0, 2.0, 2.0, 3.0, 0.5, 3.0, np.nan])
    cost = np.array([1.0, 1.0, 2.0, 5.0, 0.5, 5.0, 0.1])
    # (2,1) dominates (1,1) and (2,2); (3,5) twice -> the first kept; a failed (NaN) evaluation
    # is never on the front, cheap as it is.
    np.testing.assert_array_equal(pareto.pareto_front(fitness, cost), [4, 1, 3])
    # Two costs: (fitness 1, costs 1,1) is now on the front, being cheapest in the second cost.
    costs = np.array([[1.0, 1.0], [1.0, 2.0], [2.0, 3.0], [0.5, 9.0]])
    np.testing.assert_array_equal(pareto.pareto_front([1.0, 2.0, 2.0, 0.5], costs), [3, 0, 1])
    with pytest.raises(ValueError, match="3 fitness values but 2 costs"):
        pareto.pareto_front([1.0, 2.0, 3.0], [1.0, 2.0])


def test_history_front():
    queried, state = run(toy_strategy("random"), toy_objective, jax.random.key(0), 30)
    archs, fitness, cost = pareto.history_front(state, lambda a: np.asarray(a).sum(1))
    assert np.all(np.diff(cost) > 0) and np.all(np.diff(fitness) > 0)
    all_fitness, all_cost = toy_objective(queried), queried.sum(1)
    for f, c in zip(fitness, cost):  # nothing queried dominates a front member
        assert not np.any((all_fitness >= f) & (all_cost <= c) & ((all_fitness > f) | (all_cost < c)))
    for f, c in zip(all_fitness, all_cost):  # every queried point is matched or beaten by the front
        assert np.any((fitness >= f) & (cost <= c))


def test_differentiable_strategy_replays_the_learned_distribution(nb201):
    """The registry's `differentiable`: the derived architecture first, then samples from the
    search's weights, never the `none` option that derivation excludes."""
    from strategies import distribution
    weights = np.full((6, 5), 0.05)
    weights[:, 3] = 0.6   # nor_conv_3x3 dominates ...
    weights[0, 0] = 0.9   # ... except edge 0, where `none` is heaviest but excluded
    weights /= weights.sum(1, keepdims=True)
    strategy = strategies.get("differentiable", nb201, weights=weights)
    state = strategy.init(jax.random.key(0))
    first, state = strategy.ask(jax.random.key(1), state, 1)
    np.testing.assert_array_equal(first[0], distribution.derive(nb201, weights))
    assert first[0, 0] == 3
    state = strategy.tell(state, first, np.array([1.0]))
    later, _ = strategy.ask(jax.random.key(2), state, 40)
    later = np.asarray(later)
    assert (later != 0).all() and len(np.unique(later, axis=0)) == 40
    assert np.mean(later[:, 1:] == 3) > 0.5  # the heavy option dominates the samples


def test_local_is_the_sequence_controllers_climb_and_not_reinforces_default(nb201, nb201_table):
    # `local` is the sequence controller's climb without the policy, whose samples are never
    # chosen; reinforce's default, the edit agent, orders the edits by its own policy instead.
    objective = comparison.table_objective(nb201_table, "cifar10-val")
    local = comparison.run_search(strategies.get("local", nb201), objective, [0, 1], 40)
    sequence = comparison.run_search(strategies.get("reinforce", nb201, policy="sequence"), objective, [0, 1], 40)
    edit = comparison.run_search(strategies.get("reinforce", nb201), objective, [0, 1], 40)
    assert local.shape == (2, 40, nb201.num_decisions)
    np.testing.assert_array_equal(local, sequence)
    assert not np.any(np.all(edit == local, axis=(1, 2)))
    assert len({tuple(a) for a in local[0]}) == 40  # a climb past the initial design, not repeats


def test_local_refuses_an_unknown_climb_order():
    with pytest.raises(ValueError, match="climb_order"):
        strategies.get("local", TOY, climb_order="policy")


def test_a_registered_module_that_cannot_serve_names_the_problem():
    from strategies.registry import Registry
    registry = Registry("strategy")
    registry.register("typo", "strategies.no_such_module")
    registry.register("bare", "strategies.buffer")
    with pytest.raises(ValueError, match=r"strategy 'typo' is registered as module 'strategies.no_such_module', "
                                         r"which cannot be imported"):
        registry.module("typo")
    with pytest.raises(ValueError, match=r"strategy 'bare': module 'strategies.buffer' lacks make_core"):
        registry.module("bare", ("make_core",))
