"""Restarted local search (White et al. 2020) with the neighbours ordered by the linear surrogate.

The first `num_initial` results, and those after each restart, are uniform samples (`ask`'s
fill). Then the one-decision neighbours of the best result since the restart are proposed, in the
order `climb_order` gives them: "linear" (the default) by `surrogate.fit_linear_surrogate`, a ridge
regression of the results on how often each option label occurs, or "random". The novelty filter
skips evaluated neighbours, so a first-improvement climb follows; when the best result's
neighbours are exhausted (`hill_climb.local_search_over`) the search restarts.

It is also what reinforce's sequence controller (`policy="sequence"`) does with that policy's
defaults: on NAS-Bench-201 the two make the same queries (tested), since the controller's
proposals are never the ones chosen while a climb is open.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from strategies import buffer, hill_climb, interface

DEFAULT_CAPACITY = 1000


class LocalState(NamedTuple):
    """The strategy state: the results told so far and where the current climb began."""
    history: buffer.History
    restart_at: jax.Array  # int32: the number of results told when the current climb began


def make_core(space, capacity: int, num_initial: int = 10, climb_order: str = "linear") -> interface.Core:
    """The local search's core for `interface.build`.

    Args:
      space: the search space.
      capacity: the history's capacity.
      num_initial: uniform samples before each climb (at least 1).
      climb_order: "linear" or "random", the order a climb visits the neighbours.
    Returns:
      an `interface.Core`.
    """
    if climb_order not in hill_climb.CLIMB_ORDERS:
        raise ValueError(f"local: climb_order must be one of {hill_climb.CLIMB_ORDERS}, got {climb_order!r}.")
    if num_initial < 1:
        raise ValueError(f"local: num_initial must be at least 1, got {num_initial}.")

    def init(key):
        del key  # nothing random to set up
        return LocalState(buffer.empty_history(space.num_decisions, capacity), jnp.zeros((), jnp.int32))

    def propose(key, state, n):
        del n  # the neighbours of one architecture; `ask`'s fill covers the rest
        order = hill_climb.climb_order_function(climb_order, state.history, space, None)
        return hill_climb.local_search_pool(key, state.history, state.restart_at, space.num_choices,
                                            num_initial, order)

    def learn(state, archs, fitness):
        del archs, fitness
        return state._replace(restart_at=hill_climb.restart_when_over(state.history, state.restart_at, space))

    return interface.Core(init, propose, learn)
