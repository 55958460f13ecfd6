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
from strategies.constraints import Feasibility

# Fill candidates are drawn per requested architecture; more make "all of them were already seen"
# less likely late in a search, at a negligible cost.
FILL_PER_ARCH = 8
MIN_FILL = 64
# `fit_linear_surrogate`'s ridge penalties, chosen in a simulation of the local search on the
# NAS-Bench-201 table (600 tuning seeds): the shared label weights nearly free, the per-decision
# corrections shrunk hard (300 and 10^6 did the same, 30 a little worse).
SURROGATE_SHARED_L2 = 0.01
SURROGATE_PER_DECISION_L2 = 100.0


class Strategy(NamedTuple):
    """`init(key)`, `ask(key, state, n)`, `tell(state, archs, fitness)`; see the module docstring."""
    init: Callable[[jax.Array], Any]
    ask: Callable[[jax.Array, Any, int], tuple[jax.Array, Any]]
    tell: Callable[[Any, Any, Any], Any]
    name: str = ""


class History(NamedTuple):
    """The last `capacity` evaluations: a ring buffer, slot `i % capacity` holds the i-th result.

    `fitness` is -inf for a failed (NaN) evaluation. `count` is the total number told so far,
    which may exceed the capacity; `valid_mask` tells which slots hold a result.
    """
    archs: jax.Array    # int32[capacity, D]
    fitness: jax.Array  # float32[capacity]
    count: jax.Array    # int32 scalar


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


# -- history --------------------------------------------------------------------------------------

def empty_history(num_decisions: int, capacity: int) -> History:
    return History(archs=jnp.zeros((capacity, num_decisions), jnp.int32),
                   fitness=jnp.full((capacity,), -jnp.inf, jnp.float32),
                   count=jnp.zeros((), jnp.int32))


def valid_mask(history: History) -> jax.Array:
    capacity = history.fitness.shape[0]
    return jnp.arange(capacity) < jnp.minimum(history.count, capacity)


def append(history: History, archs: jax.Array, fitness: jax.Array) -> History:
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


def option_counts_matrix(space) -> np.ndarray:
    """float32[sum(num_choices), L]: maps each (decision, option) one-hot slot to its option label
    among the space's L distinct labels, so `one_hot(archs) @ it` counts how many decisions chose
    each label (e.g. how many NAS-Bench-201 edges are a 3x3 convolution)."""
    labels = sorted({label for options in space.options for label in options})
    slots = [label for options in space.options for label in options]
    return np.asarray([[float(slot == label) for label in labels] for slot in slots], np.float32)


def spd_solve(a: jax.Array, b: jax.Array) -> jax.Array:
    """a^-1 b for a small symmetric positive definite `a`: a Cholesky factorisation column by
    column, then two substitutions, in plain jnp ops. Not LAPACK's: the bayesian strategy, which
    also factorises its GP, hung in jaxlib 0.10's CPU runtime when vmapped over 200 seeds with a
    LAPACK solve here (all threads idle; 50 seeds ran)."""
    index = jnp.arange(a.shape[0])

    def factor_column(lower, j):
        v = a[:, j] - lower @ lower[j]  # columns before j are done, the rest still zero
        return lower.at[:, j].set(jnp.where(index >= j, v / jnp.sqrt(v[j]), 0.0)), None

    lower, _ = jax.lax.scan(factor_column, jnp.zeros_like(a), index)

    def forward(z, i):  # lower @ z = b
        return z.at[i].set((b[i] - lower[i] @ z) / lower[i, i]), None

    def backward(x, i):  # lower.T @ x = z
        return x.at[i].set((z[i] - lower[:, i] @ x) / lower[i, i]), None

    z, _ = jax.lax.scan(forward, jnp.zeros_like(b), index)
    x, _ = jax.lax.scan(backward, jnp.zeros_like(b), index[::-1])
    return x


def fit_linear_surrogate(history: History, space, shared_l2: float = SURROGATE_SHARED_L2,
                         per_decision_l2: float = SURROGATE_PER_DECISION_L2) -> tuple[jax.Array, jax.Array]:
    """A ridge regression of fitness on how often each option label occurs in an architecture
    (its weights shared by all decisions offering that label, so every result informs them) plus
    each decision's own one-hot choice (penalised far more: a per-decision correction). On
    NAS-Bench-201 the labels are the operations, and ordering a climb's neighbours by this model
    beats random order (README, "Comparison on NAS-Bench-201"); with no label shared between
    decisions it is an additive ridge model. Returns (slot weights float32[sum(num_choices)],
    offset): the prediction is `linear_prediction(archs, ...)`. Jittable."""
    counts = jnp.asarray(option_counts_matrix(space))
    valid = valid_mask(history).astype(jnp.float32)
    fitness = filled_fitness(history)
    offset = jnp.sum(valid * fitness) / jnp.maximum(jnp.sum(valid), 1.0)
    codes = one_hot(history.archs, space.num_choices)
    x = jnp.concatenate([codes @ counts, codes], axis=-1) * valid[:, None]
    penalty = jnp.concatenate([jnp.full((counts.shape[1],), shared_l2), jnp.full((counts.shape[0],), per_decision_l2)])
    weights = spd_solve(x.T @ x + jnp.diag(penalty), x.T @ (valid * (fitness - offset)))
    # Both feature blocks are linear in the one-hot code: fold them into one weight per slot.
    return counts @ weights[:counts.shape[1]] + weights[counts.shape[1]:], offset


def linear_prediction(archs: jax.Array, slot_weights: jax.Array, offset, num_choices) -> jax.Array:
    """The linear surrogate's fitness for each architecture: float32[n]."""
    return one_hot(archs, num_choices) @ slot_weights + offset


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
        return lambda children: linear_prediction(children, slot_weights, offset, space.num_choices)
    return None if climb_order == "random" else own


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


# -- encodings (kept here for the algorithms' convenience) ---------------------------------------

one_hot = archs_lib.one_hot
mutate = archs_lib.mutate
neighbours = archs_lib.neighbours
uniform = archs_lib.uniform


def init_params(module, key, *example_inputs):
    """Flax variables for `module` from one normal draw: weight matrices scaled by 1/sqrt(fan-in)
    (fan-in = all but the last axis), vectors (biases) zero.

    Flax's own initialisers draw once per parameter, and on CPU every random op costs about half
    a second of compile time; this keeps `init` cheap to compile.
    """
    shapes = jax.eval_shape(module.init, jax.random.key(0), *example_inputs)
    leaves, treedef = jax.tree.flatten(shapes)
    sizes = [int(np.prod(leaf.shape)) for leaf in leaves]
    draw = jax.random.normal(key, (sum(sizes),), jnp.float32)
    values, start = [], 0
    for leaf, size in zip(leaves, sizes):
        if len(leaf.shape) >= 2:
            fan_in = int(np.prod(leaf.shape[:-1]))
            values.append((draw[start:start + size] / np.sqrt(fan_in)).reshape(leaf.shape).astype(leaf.dtype))
        else:
            values.append(jnp.zeros(leaf.shape, leaf.dtype))
        start += size
    return jax.tree.unflatten(treedef, values)


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
