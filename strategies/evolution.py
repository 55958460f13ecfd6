"""Regularized (aging) evolution, Real et al., "Regularized Evolution for Image Classifier
Architecture Search" (AAAI 2019).

The population is the last `population_size` evaluated architectures (the history's ring buffer
already holds them in age order), so aging comes for free: each new result pushes the oldest one
out. Until the population is full, candidates are uniform random. Then each child comes from a
tournament: `tournament_size` members drawn without replacement, the fittest is the parent, and
exactly one of its decisions is changed to a different option. With probability `crossover_rate`
the child first takes each decision from one of two tournament winners (uniform crossover).

The mutation draws without replacement among the children not evaluated yet: each tournament
proposes the parent's whole one-decision neighbourhood in random order, and `ask`'s novelty filter
keeps the first fresh one. Drawing with replacement wastes the budget late in a search, when most
children of a good parent were seen: the draws repeat and `ask` falls back to a uniform random
architecture. `ask` runs `tournaments_per_arch` tournaments per requested architecture, the
children of the first before those of the next, so that a parent whose neighbourhood was fully
evaluated (or is over a limit) hands over to the next winner.

The defaults (population 10, tournament over the whole population: every child comes from the
best of the ten most recent results) were chosen on the NAS-Bench-201 table by validation accuracy, on seeds other
than the ones reported; a larger population explores longer and pays for it within 300 queries.

Ensembling: `strategies.base.top_k(state, k)` gives the best k evaluated architectures, and
`supernet.ensemble.combine` averages their logits or lets them vote.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from strategies import base

DEFAULT_CAPACITY = 1000


class EvolutionState(NamedTuple):
    history: base.History


def _tournament_winners(key, fitness, present, shape, tournament_size):
    """Population slots int32[shape] that win tournaments among present members."""
    population_size = fitness.shape[0]
    # Random keys, absent members last: the first `tournament_size` are a draw without replacement.
    noise = jax.random.uniform(key, shape + (population_size,)) + (~present)
    contestants = jnp.argsort(noise, axis=-1)[..., :tournament_size]
    contestant_fitness = jnp.where(present[contestants], fitness[contestants], -jnp.inf)
    best = jnp.argmax(contestant_fitness, axis=-1)
    return jnp.take_along_axis(contestants, best[..., None], axis=-1)[..., 0]


def make_core(space, capacity: int, population_size: int = 10, tournament_size: int | None = None,
              crossover_rate: float = 0.0, tournaments_per_arch: int = 4) -> base.Core:
    """`tournament_size` None: the whole population."""
    tournament_size = population_size if tournament_size is None else tournament_size
    if not 1 <= population_size <= capacity:
        raise ValueError(f"evolution: population_size must be in 1..capacity ({capacity}), got {population_size}.")
    if not 1 <= tournament_size <= population_size:
        raise ValueError(f"evolution: tournament_size must be in 1..population_size ({population_size}), "
                         f"got {tournament_size}.")
    if not 0.0 <= crossover_rate <= 1.0:
        raise ValueError(f"evolution: crossover_rate must be in [0, 1], got {crossover_rate}.")
    if tournaments_per_arch < 1:
        raise ValueError(f"evolution: tournaments_per_arch must be at least 1, got {tournaments_per_arch}.")
    num_choices = space.num_choices

    def init(key):
        del key
        return EvolutionState(base.empty_history(space.num_decisions, capacity))

    def propose(key, state, n):
        history = state.history
        m = n * tournaments_per_arch
        k_tournament, k_crossover, k_order = jax.random.split(key, 3)
        slots, present = base.recent(history, population_size)
        fitness = history.fitness[slots]
        parents_per_child = 2 if crossover_rate > 0 else 1
        winners = _tournament_winners(k_tournament, fitness, present, (parents_per_child, m), tournament_size)
        parents = history.archs[slots[winners]]  # [parents_per_child, m, D]
        parent = parents[0]
        if crossover_rate > 0:
            u = jax.random.uniform(k_crossover, (m, space.num_decisions + 1))
            from_second = (u[:, :1] < crossover_rate) & (u[:, 1:] < 0.5)  # uniform crossover
            parent = jnp.where(from_second, parents[1], parents[0])
        children = base.neighbours(parent, num_choices)
        # Tournament t's children, in random order, rank above tournament t + 1's.
        tournament = jnp.arange(children.shape[0]) // (children.shape[0] // m)
        priority = -tournament + jax.random.uniform(k_order, tournament.shape)
        # Until the population is full the proposals are uniform: ask's fill supplies them.
        warming_up = history.count < population_size
        return children, jnp.where(warming_up, -jnp.inf, priority.astype(jnp.float32))

    def learn(state, archs, fitness):
        del archs, fitness
        return state

    return base.Core(init, propose, learn)
