"""Random search: uniform over the space, or over its feasible part under constraints.

The pool it proposes is empty: `ask`'s fill of uniform feasible architectures is the whole
algorithm. With `avoid_repeats` (the default) it samples without replacement from what was already
evaluated, which is still uniform over the architectures not yet seen.
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp

from strategies import buffer, interface

DEFAULT_CAPACITY = 1000


class RandomState(NamedTuple):
    """The strategy state: the results told so far."""
    history: buffer.History


def make_core(space, capacity: int) -> interface.Core:
    """Random search's core for `interface.build`: uniform proposals (`ask`'s fill), nothing learned.

    Args:
      space: the search space.
      capacity: the history's capacity.
    Returns:
      an `interface.Core`.
    """
    num_decisions = space.num_decisions

    def init(key):
        del key  # nothing random to set up
        return RandomState(buffer.empty_history(num_decisions, capacity))

    def propose(key, state, n):
        del key, state, n
        return jnp.zeros((0, num_decisions), jnp.int32), jnp.zeros((0,), jnp.float32)

    def learn(state, archs, fitness):
        del archs, fitness
        return state

    return interface.Core(init, propose, learn)
