"""The results buffer every strategy keeps: a fixed-capacity `History` ring buffer and the
queries over it (best results, what a restarted search counts as its current run, novelty)."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from strategies import archs as archs_lib


class History(NamedTuple):
    """The last `capacity` evaluations: a ring buffer, slot `i % capacity` holds the i-th result.

    `fitness` is -inf for a failed (NaN) evaluation. `count` is the total number told so far,
    which may exceed the capacity; `valid_mask` tells which slots hold a result.
    """
    archs: jax.Array    # int32[capacity, D]
    fitness: jax.Array  # float32[capacity]
    count: jax.Array    # int32 scalar


def empty_history(num_decisions: int, capacity: int) -> History:
    """A history with room for `capacity` results of int32[num_decisions] architectures, none told yet."""
    return History(archs=jnp.zeros((capacity, num_decisions), jnp.int32),
                   fitness=jnp.full((capacity,), -jnp.inf, jnp.float32),
                   count=jnp.zeros((), jnp.int32))


def valid_mask(history: History) -> jax.Array:
    """bool[capacity]: which slots hold a told result."""
    capacity = history.fitness.shape[0]
    return jnp.arange(capacity) < jnp.minimum(history.count, capacity)


def append(history: History, archs: jax.Array, fitness: jax.Array) -> History:
    """The history with archs int32[n, D] and fitness float[n] appended; past capacity the oldest
    results are overwritten (a ring buffer, so slots stay in age order)."""
    capacity = history.fitness.shape[0]
    slots = (history.count + jnp.arange(archs.shape[0])) % capacity
    return History(history.archs.at[slots].set(archs.astype(jnp.int32)),
                   history.fitness.at[slots].set(fitness.astype(jnp.float32)),
                   history.count + archs.shape[0])


def filled_fitness(history: History) -> jax.Array:
    """Fitness with failed (-inf) results replaced by the worst finite one and empty slots by 0,
    for the learners that need finite numbers (regression targets, rewards)."""
    valid = valid_mask(history)
    finite = valid & jnp.isfinite(history.fitness)
    worst = jnp.min(jnp.where(finite, history.fitness, jnp.inf))
    worst = jnp.where(jnp.any(finite), worst, 0.0)
    return jnp.where(finite, history.fitness, jnp.where(valid, worst, 0.0))


def recent(history: History, k: int) -> tuple[jax.Array, jax.Array]:
    """The last `k` results (k <= capacity) as (slot indices int32[k], present bool[k]), newest
    last; `present` is False for slots before the first result. Regularized evolution's population."""
    capacity = history.fitness.shape[0]
    order = history.count - k + jnp.arange(k)
    return order % capacity, order >= 0


def result_index(history: History) -> jax.Array:
    """int32[capacity]: which result (0-based, in telling order) each slot holds; negative for an
    empty slot."""
    capacity = history.fitness.shape[0]
    return history.count - 1 - jnp.mod(history.count - 1 - jnp.arange(capacity), capacity)


def queries_since_best(history: History, since) -> jax.Array:
    """How many results were told after the best of those from result number `since` on (0 while
    there are none): how long a search has stagnated since `since`. Jittable."""
    index = result_index(history)
    counted = (index >= since) & valid_mask(history)
    slot = jnp.argmax(jnp.where(counted, history.fitness, -jnp.inf))
    return jnp.where(jnp.any(counted), history.count - 1 - index[slot], 0)


def since(history: History, start) -> History:
    """The history with results told before result number `start` masked out (fitness -inf):
    what a search that restarted at `start` counts as its current run."""
    later = result_index(history) >= start
    return history._replace(fitness=jnp.where(later, history.fitness, -jnp.inf))


def best_since(history: History, start) -> jax.Array:
    """The best architecture told from result number `start` on: int32[D]."""
    current = since(history, start)
    return current.archs[jnp.argmax(current.fitness)]


def same_function(a: jax.Array, b: jax.Array, space) -> jax.Array:
    """bool[len(a), len(b)]: a[i] and b[j] are the same architecture or compute the same function
    (`space.canonical`). Jittable."""
    return archs_lib.matches(space.canonical(a), space.canonical(b), space.num_choices)


def evaluated(candidates: jax.Array, history: History, space) -> jax.Array:
    """bool[n]: the history holds each candidate, or an architecture computing the same function."""
    return jnp.any(same_function(candidates, history.archs, space) & valid_mask(history)[None, :], axis=1)


def top_k(state, k: int) -> tuple[jax.Array, jax.Array]:
    """The `k` best architectures in the state's history, best first: (int32[k, D], float32[k]).

    Works for every strategy's state. With fewer than `k` results, the tail has fitness -inf.
    Jittable (k static). The ensembling helpers in `supernet.ensemble` take these.
    """
    history = state.history
    fitness = jnp.where(valid_mask(history), history.fitness, -jnp.inf)
    best, slots = jax.lax.top_k(fitness, k)
    return history.archs[slots], best


def distinct_top_k(state, k: int, num_choices, search: int = 4) -> tuple[jax.Array, jax.Array]:
    """Like `top_k`, but each architecture once (a history may repeat one, e.g. without the
    novelty filter): the best `k` distinct among the best `search * k` results."""
    archs, fitness = top_k(state, min(search * k, state.history.fitness.shape[0]))
    repeated = jnp.any(jnp.tril(archs_lib.matches(archs, archs, num_choices), k=-1), axis=1)
    best, rows = jax.lax.top_k(jnp.where(repeated, -jnp.inf, fitness), k)
    return archs[rows], best


def best(state) -> tuple[jax.Array, jax.Array]:
    """The best architecture seen so far and its fitness: (int32[D], float32 scalar)."""
    archs, fitness = top_k(state, 1)
    return archs[0], fitness[0]
