"""Restarted local search (White et al. 2020) as a proposal pool a strategy puts in front of its
own proposals, and the order in which a climb visits the neighbours."""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from strategies.archs import neighbours
from strategies.buffer import History, best_since, evaluated, queries_since_best
from strategies.surrogate import fit_linear_surrogate, linear_prediction


def local_search_over(history: History, start, space) -> jax.Array:
    """Whether a local search that began at result number `start` is over: every one-decision
    neighbour of its best result was evaluated (`evaluated`), or as many results as it has
    neighbours came in without improving on it (its neighbours may be infeasible, or repeats filled
    in for them). Jittable."""
    children = neighbours(best_since(history, start)[None], space.num_choices)
    stalled = queries_since_best(history, start) >= children.shape[0]
    return (history.count > start) & (jnp.all(evaluated(children, history, space)) | stalled)


def restart_when_over(history: History, restart_at, space) -> jax.Array:
    """The new `restart_at`: `history.count` (a restart) when the local search that began at
    result number `restart_at` is over (`local_search_over`), else unchanged. Jittable."""
    return jnp.where(local_search_over(history, restart_at, space), history.count, restart_at)


def local_search_pool(key, history: History, start, num_choices, num_initial: int, order=None):
    """A local search step (White et al. 2020) as a proposal pool, for a strategy to put in front of
    its own proposals: the one-decision neighbours of the best result since result number `start`,
    with priorities in (1, 2) (higher first: random, or by `order(children) -> float[m]`), so above
    proposals at priorities <= 1. During the first `num_initial` results after `start` the
    neighbours are not wanted (priority -inf): the strategy's own proposals choose where a climb
    starts. `ask`'s novelty filter skips evaluated neighbours, so a first-improvement climb
    follows; restart it with `restart_when_over`. Returns (int32[m, D], float32[m]); jittable."""
    children = neighbours(best_since(history, start)[None], num_choices)
    rank = jax.random.uniform(key, (children.shape[0],)) if order is None else order(children)
    priority = 1.0 + (jnp.argsort(jnp.argsort(rank)) + 0.5) / children.shape[0]
    climbing = history.count - start >= num_initial
    return children, jnp.where(climbing, priority, -jnp.inf).astype(jnp.float32)


CLIMB_ORDERS = ("linear", "random")


def check_climb_order(strategy: str, climb_order: str, own: str) -> None:
    """Raises unless `climb_order` is "linear" (`fit_linear_surrogate`), "random" or `own` (the
    strategy's own model)."""
    if climb_order not in CLIMB_ORDERS + (own,):
        raise ValueError(f"{strategy}: climb_order must be one of {CLIMB_ORDERS + (own,)}, got {climb_order!r}.")


def climb_order_function(climb_order: str, history: History, space, own: Callable) -> Callable | None:
    """The `order` for `local_search_pool`: the linear surrogate's prediction
    (`fit_linear_surrogate`), None (random) or the strategy's own score `own`."""
    if climb_order == "linear":
        slot_weights, offset = fit_linear_surrogate(history, space)
        return lambda children: linear_prediction(children, slot_weights, offset, space)
    return None if climb_order == "random" else own
