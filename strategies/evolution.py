"""Regularized (aging) evolution, Real et al., "Regularized Evolution for Image Classifier
Architecture Search" (AAAI 2019), with restarts; by default in its local-search limit.

Each child comes from a tournament: `tournament_size` members of the population drawn without
replacement, the fittest is the parent, and exactly one of its decisions is changed to a different
option. With probability `crossover_rate` the child first takes each decision from one of two
tournament winners (uniform crossover). A search (and each restart) begins with `num_initial`
uniform random architectures (by default as many as the population holds; 10 for local search).

The population: with `population_size` = k, the last k results (the history's ring buffer holds
them in age order, so aging comes for free: each new result pushes the oldest one out). With
`population_size=None` (the default), every result since the last restart: a tournament over all
of it always picks the best one, so the search is a first-improvement local search (White et al.,
"Local Search is State of the Art for NAS Benchmarks", 2020): the best architecture's
neighbours are evaluated in random order, and the first one that beats it becomes the parent.

Restarts (`restart=True`): a local search ends on a local optimum, and aging lets the population
drift away from it only slowly. When every neighbour of the best result since the last restart
was evaluated (or as many results as it has neighbours came in without improving on it), the
search restarts from a new uniform sample of `num_initial`. The search still returns its best
overall (`buffer.best`).

The mutation draws without replacement among the children not evaluated yet: each tournament
proposes the parent's whole one-decision neighbourhood in random order, and `ask`'s novelty filter
keeps the first fresh one. `ask` runs `tournaments_per_arch` tournaments per requested
architecture, the children of the first before those of the next, so that a parent whose
neighbourhood was fully evaluated (or is over a limit) hands over to the next winner.

The defaults (local search, restarts, `num_initial` 10) were chosen on the NAS-Bench-201 table by
validation accuracy, on seeds other than the ones reported: against aging evolution with
population 10 (the previous default) the best-by-validation cell is found within 300 queries on
every seed instead of about three quarters of them (README, "Comparison on NAS-Bench-201").

Ensembling: `strategies.buffer.top_k(state, k)` gives the best k evaluated architectures, and
`supernet.ensemble.combine` averages their logits or lets them vote.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from strategies import archs as archs_lib
from strategies import buffer, hill_climb, interface

DEFAULT_CAPACITY = 1000
DEFAULT_NUM_INITIAL = 10


class EvolutionState(NamedTuple):
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


def make_core(space, capacity: int, population_size: int | None = None, tournament_size: int | None = None,
              crossover_rate: float = 0.0, tournaments_per_arch: int = 4, num_initial: int | None = None,
              restart: bool = True) -> interface.Core:
    """`population_size` None: every result since the last restart (local search); `tournament_size`
    None: the whole population; `num_initial` None: the population size, 10 for local search."""
    population = capacity if population_size is None else population_size
    if num_initial is None:
        num_initial = DEFAULT_NUM_INITIAL if population_size is None else population_size
    tournament_size = population if tournament_size is None else tournament_size
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
        # Tournament t's children, in random order, rank above tournament t + 1's.
        tournament = jnp.arange(children.shape[0]) // (children.shape[0] // m)
        priority = -tournament + jax.random.uniform(k_order, tournament.shape)
        # During the initial sample the proposals are uniform: ask's fill supplies them.
        warming_up = history.count - state.restart_at < num_initial
        return children, jnp.where(warming_up, -jnp.inf, priority.astype(jnp.float32))

    def learn(state, archs, fitness):
        del archs, fitness
        if not restart:
            return state
        return state._replace(restart_at=hill_climb.restart_when_over(state.history, state.restart_at, space))

    return interface.Core(init, propose, learn)
