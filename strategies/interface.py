"""The strategy interface and the machinery every strategy shares.

A strategy is three pure functions over an explicit state pytree, in the optax style:

    state = strategy.init(key)
    archs, state = strategy.ask(key, state, n)        # int32[n, D], all feasible
    state = strategy.tell(state, archs, fitness)      # fitness float32[n], higher is better

Strategies see architecture arrays and fitness numbers only, never a model.

Each algorithm supplies a small `Core`: `propose` turns the state into a pool of candidate
architectures with a priority each (its preference order), and `learn` updates the algorithm's own
fields after new results were recorded. Everything else lives here, once:

* `ask` adds a "fill" of uniform feasible architectures to the pool, drops infeasible candidates
  and, by default, ones already evaluated or repeated within the batch (or computing the same
  function as one: `space.canonical`), and returns the `n` best
  left by priority (pool before fill). Only if no fresh feasible candidate is left does it fall back
  to repeating a feasible one, so it never loops and never proposes an infeasible architecture.
* `tell` checks its inputs, records them in a fixed-capacity `History` ring buffer, then calls
  `learn`.

Fixed shapes (capacity, pool size) keep `ask` (with `n` static) and `tell` jittable: they compile
once per `n` instead of once per query. `ask` stays jittable under constraints when the
constraints could be tabulated over the whole space (see `constraints.Feasibility`); otherwise it
runs a host-side filter and is not jittable.
"""

from __future__ import annotations

import functools
import warnings
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from strategies import archs as archs_lib
from strategies.buffer import History, append, evaluated, same_function
from strategies.constraints import Feasibility

# Fill candidates are drawn per requested architecture; more make "all of them were already seen"
# less likely late in a search, at a negligible cost.
FILL_PER_ARCH = 8
MIN_FILL = 64


class Strategy(NamedTuple):
    """`init(key)`, `ask(key, state, n)`, `tell(state, archs, fitness)`; see the module docstring."""
    init: Callable[[jax.Array], Any]
    ask: Callable[[jax.Array, Any, int], tuple[jax.Array, Any]]
    tell: Callable[[Any, Any, Any], Any]
    name: str = ""


class Core(NamedTuple):
    """What an algorithm supplies (all jittable, `n` static).

    init(key) -> state: a NamedTuple with a `history` field (use `empty_history`).
    propose(key, state, n) -> (pool int32[P, D], priority float32[P]): candidates, higher priority
        preferred; priority -inf marks a candidate as unwanted (it then ranks with the uniform
        fill, e.g. during a warm-up phase). P may depend on n only.
    learn(state, archs, fitness) -> state: called by `tell` after the history was updated;
        fitness has -inf for failed evaluations.
    """
    init: Callable
    propose: Callable
    learn: Callable


# -- choosing among candidates --------------------------------------------------------------------

def select(candidates, priority, from_pool, feasible, history: History, n: int, avoid_repeats: bool, space):
    """The `n` best candidates: feasible first, then fresh (neither it nor an architecture that
    computes the same function is in the history or earlier in the batch) first, then wanted pool
    candidates before the fill, then by priority. A pool candidate with priority -inf is not wanted
    (e.g. during a warm-up phase): it ranks with the fill. Jittable."""
    m = candidates.shape[0]
    priority = jnp.where(jnp.isnan(priority), -jnp.inf, priority)
    wanted = from_pool & (priority > -jnp.inf)
    # First order: among equal architectures the best-ranked copy comes first, so that the
    # in-batch duplicate test below keeps that one.
    first = jnp.lexsort((-priority, ~wanted, ~feasible))
    candidates, feasible = candidates[first], feasible[first]
    if avoid_repeats:
        repeated_in_batch = jnp.any(jnp.tril(same_function(candidates, candidates, space), k=-1), axis=1)
        fresh = ~(repeated_in_batch | evaluated(candidates, history, space))
    else:
        fresh = jnp.ones((m,), bool)
    rank = jnp.arange(m) + m * (~fresh) + 2 * m * (~feasible)
    chosen = jnp.argsort(rank)[:n]
    return candidates[chosen], feasible[chosen]


# -- building a strategy from a core -------------------------------------------------------------

def check_tell_inputs(space, archs, fitness, capacity: int):
    """Shapes always; values when they are concrete (not traced by an outer jit/vmap: then
    `tell` records an out-of-range architecture as a failed evaluation instead)."""
    a_shape, f_shape = np.shape(archs), np.shape(fitness)
    if len(a_shape) != 2 or a_shape[1] != space.num_decisions:
        raise ValueError(f"tell: architectures must be int[n, {space.num_decisions}] for {space.name}, "
                         f"got shape {a_shape}.")
    if f_shape != (a_shape[0],):
        raise ValueError(f"tell: got {a_shape[0]} architectures but fitness of shape {f_shape}; "
                         f"give one fitness value per architecture.")
    if a_shape[0] > capacity:
        raise ValueError(f"tell: {a_shape[0]} results at once exceed the history capacity {capacity}; "
                         f"tell them in smaller batches or raise `capacity`.")
    if isinstance(archs, jax.core.Tracer) or isinstance(fitness, jax.core.Tracer):
        return jnp.asarray(archs, jnp.int32), jnp.asarray(fitness, jnp.float32)
    archs = space.validate(np.asarray(archs))
    fitness = np.asarray(fitness, np.float64)
    if np.any(np.isinf(fitness)):
        raise ValueError(f"tell: fitness must be finite, got {fitness[np.isinf(fitness)][:5]} at positions "
                         f"{np.flatnonzero(np.isinf(fitness))[:5].tolist()}. Report a failed evaluation as NaN.")
    if np.any(np.isnan(fitness)):
        warnings.warn(f"tell: {int(np.isnan(fitness).sum())} NaN fitness value(s) treated as the worst "
                      f"result (a failed evaluation).", RuntimeWarning, stacklevel=3)
    return archs, fitness.astype(np.float32)


def build(space, core: Core, feasibility: Feasibility, *, capacity: int, avoid_repeats: bool,
          name: str, prior_table=None) -> Strategy:
    """Wraps a `Core` into a `Strategy` with input checks, constraints and the novelty filter.
    `prior_table` (float[space.size], by architecture number): the fill's order, best first."""
    if capacity < 1:
        raise ValueError(f"{name}: capacity must be at least 1, got {capacity}.")
    num_choices = tuple(space.num_choices)
    strides = jnp.asarray(archs_lib.radix_strides(num_choices), jnp.int32) if prior_table is not None else None
    prior_table = None if prior_table is None else jnp.asarray(prior_table, jnp.float32)

    # Jitted as a whole: run eagerly, every small op of an initialiser compiles on its own.
    init = jax.jit(core.init)

    def propose_with_fill(key, state, n):
        k_pool, k_fill = jax.random.split(key)
        pool, priority = core.propose(k_pool, state, n)
        fill = feasibility.sample(k_fill, max(FILL_PER_ARCH * n, MIN_FILL)) if feasibility.jittable else None
        return pool, priority.astype(jnp.float32), fill

    def combine(pool, priority, fill):
        candidates = jnp.concatenate([pool.astype(jnp.int32), fill.astype(jnp.int32)])
        fill_priority = (jnp.zeros((fill.shape[0],), jnp.float32) if prior_table is None
                         else prior_table[fill.astype(jnp.int32) @ strides])
        priority = jnp.concatenate([priority, fill_priority])
        from_pool = jnp.arange(candidates.shape[0]) < pool.shape[0]
        return candidates, priority, from_pool

    @functools.partial(jax.jit, static_argnums=2)
    def ask_jittable(key, state, n):
        pool, priority, fill = propose_with_fill(key, state, n)
        candidates, priority, from_pool = combine(pool, priority, fill)
        chosen, _ = select(candidates, priority, from_pool, feasibility.check(candidates),
                           state.history, n, avoid_repeats, space)
        return chosen, state

    propose_jit = jax.jit(propose_with_fill, static_argnums=2)
    select_jit = jax.jit(select, static_argnums=(5, 6, 7))

    def ask_on_host(key, state, n):
        if isinstance(key, jax.core.Tracer):
            raise TypeError(f"{name}: `ask` cannot run under jit with constraints that are Python "
                            f"functions over a space too large to tabulate; call it without jit.")
        pool, priority, _ = propose_jit(key, state, n)
        fill = feasibility.sample(jax.random.fold_in(key, 1), n)  # host rejection sampling, bounded
        candidates, priority, from_pool = combine(pool, priority, fill)
        feasible = jnp.asarray(feasibility.check(np.asarray(candidates)))
        chosen, _ = select_jit(candidates, priority, from_pool, feasible, state.history, n, avoid_repeats, space)
        return chosen, state

    def ask(key, state, n):
        n = int(n)
        if n < 1:
            raise ValueError(f"{name}: ask for at least one architecture, got n={n}.")
        return ask_jittable(key, state, n) if feasibility.jittable else ask_on_host(key, state, n)

    upper = jnp.asarray(num_choices, jnp.int32)

    @jax.jit
    def tell_jit(state, archs, fitness):
        # Concrete inputs were validated already; traced ones (tell under an outer jit) cannot raise,
        # so an architecture outside the space counts as a failed evaluation, its choices clipped
        # into range: `best` / `top_k` never return it.
        in_range = jnp.all((archs >= 0) & (archs < upper), axis=-1)
        archs = jnp.clip(archs, 0, upper - 1)
        fitness = jnp.where(jnp.isnan(fitness) | ~in_range, -jnp.inf, fitness)
        state = state._replace(history=append(state.history, archs, fitness))
        return core.learn(state, archs, fitness)

    def tell(state, archs, fitness):
        archs, fitness = check_tell_inputs(space, archs, fitness, capacity)
        return tell_jit(state, archs, fitness)

    return Strategy(init=init, ask=ask, tell=tell, name=name)
