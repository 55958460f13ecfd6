"""Regularized (aging) evolution, Real et al., "Regularized Evolution for Image Classifier
Architecture Search" (AAAI 2019), with mutations ordered by a surrogate and with restarts.

The population is the last `population_size` results: the history's ring buffer holds them in age
order, so aging comes for free (each new result pushes the oldest out of the population, however
fit it is). Each child comes from a tournament: `tournament_size` members of the population drawn
without replacement, the fittest is the parent, and exactly one of its decisions is changed to a
different option. With probability `crossover_rate` the child first takes each decision from one
of two tournament winners (uniform crossover), then mutates. A search, and each restart, begins
with `num_initial` uniform random architectures (10 by default).

Which mutation: each tournament proposes the parent's whole one-decision neighbourhood, and `ask`'s
novelty filter keeps the first child not evaluated yet, so the mutation never re-queries an
architecture (or one computing the same function). `mutation_order="linear"` (the default) puts
the children in the order `surrogate.fit_linear_surrogate` predicts them, best first: a ridge
regression on all results so far of how often each option label occurs, which learns from the
whole history which option changes pay. "random" draws the mutation uniformly among the fresh
children. `ask` runs `tournaments_per_arch` tournaments per requested architecture, the children
of the first before those of the next, so that a parent whose neighbourhood was fully evaluated
(or is over a limit) hands over to the next winner.

What the population contributes: the parent is a tournament winner among the recent results, not
the best result so far. By default the tournament is the whole population of 15, so the parent is
the best of the last 15 results: after 15 results without improving on it the best ages out and
the search moves on from the best of its recent children (distance two and more from the old
best) instead of staying in one neighbourhood as a local search does, until the restart.
`tournament_size=1` (a random parent) and `population_size=None` (no aging: the local-search limit
below) switch this off, and `crossover_rate` recombines the decisions of two tournament winners
(which needs `tournament_size` below the population size). The record
experiments/measured/evolution_bayesian/ has the figures with the population's selection, its
aging and the surrogate's order each switched off.

Restarts (`restart=True`): after `restart_patience` results in a row without improving on the best
since the last restart (25 by default), the population starts again from `num_initial` uniform
samples (results before a restart leave the population). The search still returns its best
overall (`buffer.best`).

The local-search limit: `population_size=None` makes the population every result since the last
restart, and every tournament is over all of it (whatever `tournament_size`), so it picks the best
one: a first-improvement local search (White et al., "Local Search is State of the Art for NAS
Benchmarks", 2020), which restarts when every neighbour of the best was evaluated
(`hill_climb.local_search_over`; also with `restart_patience=None` in a population). With
`mutation_order="linear"` this limit is the `local` strategy's search; with "random", the same
with random neighbour order.

The defaults were chosen on the NAS-Bench-201 table on seeds 100-499, never on the reported 0-19
(experiments/measured/strategies_nb201/, `evolution_tuning/`): ordering the mutations by the
surrogate, and restarting after 20 to 30 results without improvement instead of 60, each lifted
the returned cell's test accuracy at 100 queries; populations of 10 to 40, smaller or larger
initial samples and tournaments of 5 or 10 (crossover helps those, but not up to a tournament
over the whole population) did not do better than a tournament over a population of 15, so
crossover is off by default.

Ensembling: `strategies.buffer.top_k(state, k)` gives the best k evaluated architectures, and
`supernet.ensemble.combine` averages their logits or lets them vote.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from strategies import archs as archs_lib
from strategies import buffer, hill_climb, interface
from strategies.registry import closest

DEFAULT_CAPACITY = 1000
DEFAULT_NUM_INITIAL = 10


class EvolutionState(NamedTuple):
    """The strategy state: the results told so far and where the current search began."""
    history: buffer.History
    restart_at: jax.Array  # int32: the number of results told when the current search began


def _tournament_winners(key, fitness, present, shape, tournament_size):
    """Population slots int32[shape] that win tournaments among present members."""
    population_size = fitness.shape[0]
    # Random keys, absent members last: the first `tournament_size` are a draw without replacement.
    noise = jax.random.uniform(key, shape + (population_size,)) + (~present)
    contestants = jnp.argsort(noise, axis=-1)[..., :tournament_size]
    contestant_fitness = jnp.where(present[contestants], fitness[contestants], -jnp.inf)
    best = jnp.argmax(contestant_fitness, axis=-1)
    return jnp.take_along_axis(contestants, best[..., None], axis=-1)[..., 0]


def make_core(space, capacity: int, population_size: int | None = 15, tournament_size: int | None = None,
              crossover_rate: float = 0.0, tournaments_per_arch: int = 4, num_initial: int = DEFAULT_NUM_INITIAL,
              restart: bool = True, restart_patience: int | None = 25,
              mutation_order: str = "linear") -> interface.Core:
    """The evolution core for `interface.build`.

    Args:
      space, capacity: the search space and the history's capacity.
      population_size: the last k results form the population; None: every result since the last
        restart (the local-search limit, see the module docstring).
      tournament_size: members per tournament (1: a random parent); None (the default), or in the
        local-search limit: the whole population.
      crossover_rate: the probability that a child recombines two tournament winners.
      tournaments_per_arch: tournaments run per requested architecture.
      num_initial: uniform samples before evolving, and after each restart.
      restart: whether to restart; restart_patience: after that many results in a row without
        improving on the best since the last restart (None: when the best's neighbourhood is
        exhausted, as the local-search limit always does).
      mutation_order: which of a parent's fresh mutations comes first: "linear" (the one the
        linear surrogate predicts best) or "random".
    Returns:
      an `interface.Core`.
    """
    population = capacity if population_size is None else population_size
    if population_size is None or tournament_size is None:  # the local-search limit: always the best
        tournament_size = population
    if not 1 <= population <= capacity:
        raise ValueError(f"evolution: population_size must be in 1..capacity ({capacity}), got {population_size}.")
    if not 1 <= tournament_size <= population:
        raise ValueError(f"evolution: tournament_size must be in 1..population_size ({population}), "
                         f"got {tournament_size}.")
    if not 0.0 <= crossover_rate <= 1.0:
        raise ValueError(f"evolution: crossover_rate must be in [0, 1], got {crossover_rate}.")
    if tournaments_per_arch < 1:
        raise ValueError(f"evolution: tournaments_per_arch must be at least 1, got {tournaments_per_arch}.")
    if num_initial < 1:
        raise ValueError(f"evolution: num_initial must be at least 1, got {num_initial}.")
    if mutation_order not in hill_climb.CLIMB_ORDERS:
        raise ValueError(f"evolution: mutation_order must be one of {hill_climb.CLIMB_ORDERS}, got {mutation_order!r}"
                         f"{closest(mutation_order, hill_climb.CLIMB_ORDERS)}.")
    if restart_patience is not None and restart_patience < 1:
        raise ValueError(f"evolution: restart_patience must be at least 1 (or None), got {restart_patience}.")
    patience = None if population_size is None else restart_patience
    num_choices = space.num_choices

    def init(key):
        del key
        return EvolutionState(buffer.empty_history(space.num_decisions, capacity), jnp.zeros((), jnp.int32))

    def propose(key, state, n):
        history = buffer.since(state.history, state.restart_at)
        m = n * tournaments_per_arch
        k_tournament, k_crossover, k_order = jax.random.split(key, 3)
        slots, present = buffer.recent(history, population)
        fitness = history.fitness[slots]
        present = present & (fitness > -jnp.inf)  # results before the restart left the population
        parents_per_child = 2 if crossover_rate > 0 else 1
        winners = _tournament_winners(k_tournament, fitness, present, (parents_per_child, m), tournament_size)
        parents = history.archs[slots[winners]]  # [parents_per_child, m, D]
        parent = parents[0]
        if crossover_rate > 0:
            u = jax.random.uniform(k_crossover, (m, space.num_decisions + 1))
            from_second = (u[:, :1] < crossover_rate) & (u[:, 1:] < 0.5)  # uniform crossover
            parent = jnp.where(from_second, parents[1], parents[0])
        children = archs_lib.neighbours(parent, num_choices)
        # Tournament t's children rank above tournament t + 1's; within one, in mutation order.
        priority = -jnp.arange(m)[:, None] + mutation_rank(k_order, children, m, state.history)
        # During the initial sample the proposals are uniform: ask's fill supplies them.
        warming_up = history.count - state.restart_at < num_initial
        return children, jnp.where(warming_up, -jnp.inf, priority.reshape(-1).astype(jnp.float32))

    def mutation_rank(key, children, m, all_results):
        """float[m, children per tournament] in (0, 1): a tournament's preferred child highest."""
        order = hill_climb.climb_order_function(mutation_order, all_results, space, None)
        preference = jax.random.uniform(key, children.shape[:1]) if order is None else order(children)
        within = jnp.argsort(jnp.argsort(preference.reshape(m, -1), axis=1), axis=1)
        return (within + 0.5) / within.shape[1]

    def learn(state, archs, fitness):
        del archs, fitness
        if not restart:
            return state
        if patience is None:
            return state._replace(restart_at=hill_climb.restart_when_over(state.history, state.restart_at, space))
        stagnated = buffer.queries_since_best(state.history, state.restart_at) >= patience
        return state._replace(restart_at=jnp.where(stagnated, state.history.count, state.restart_at))

    return interface.Core(init, propose, learn)
