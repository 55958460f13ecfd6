"""Search strategies over architecture arrays: `strategies.get(name, space, **options)`.

    import jax
    import strategies
    from strategies.space import Decisions

    # Any object with the decisions contract; a supernet space (e.g. NAS-Bench-201) is passed in
    # the same way by the library above.
    space = Decisions([("op1", ["conv", "pool"]), ("op2", ["conv", "skip", "none"])])
    strategy = strategies.get("evolution", space)
    state = strategy.init(jax.random.key(0))
    archs, state = strategy.ask(jax.random.key(1), state, 4)     # int32[4, 2]
    state = strategy.tell(state, archs, fitness)                   # float32[4], higher is better
    best_arch, best_fitness = strategies.best(state)

See `strategies.interface` for the strategy interface and how a core becomes a strategy,
`strategies.buffer` (results), `strategies.hill_climb` (local search), `strategies.surrogate`
(the linear model) and `strategies.nets` for the shared machinery, and each module for its algorithm.
"""

from __future__ import annotations

import inspect

from strategies import constraints as _constraints
from strategies.buffer import best, top_k
from strategies.interface import Strategy
from strategies.constraints import Feasibility, Limit
from strategies.explanation import explain
from strategies.registry import Registry, check_options, check_types

# name -> module path; each module has `make_core(space, capacity, **options)` and `DEFAULT_CAPACITY`.
STRATEGIES = Registry("strategy")
STRATEGIES.register("random", "strategies.random_search")
STRATEGIES.register("evolution", "strategies.evolution")
STRATEGIES.register("bayesian", "strategies.bayesian")
STRATEGIES.register("reinforce", "strategies.reinforce")
STRATEGIES.register("autoencoder", "strategies.autoencoder")
# Restarted local search ordered by the linear surrogate (what reinforce's sequence controller does by default).
STRATEGIES.register("local", "strategies.local")
# Replays a finished DARTS/GDAS search's learned distribution (see that module).
STRATEGIES.register("differentiable", "strategies.distribution")
# The six that search from fitness alone (what `experiments/strategies_nb201.py` compares).
SEARCH_STRATEGIES = ("random", "evolution", "bayesian", "reinforce", "autoencoder", "local")


def names() -> tuple[str, ...]:
    """The registered strategy names, sorted."""
    return STRATEGIES.names()


def _module(name: str):
    return STRATEGIES.module(name, ("make_core", "DEFAULT_CAPACITY"))


def algorithm_options(name: str) -> dict:
    """The named strategy's own options and their defaults."""
    params = inspect.signature(_module(name).make_core).parameters
    return {k: p.default for k, p in params.items() if k not in ("space", "capacity")}


def get(name: str, space, *, max_flops=None, max_params=None, constraints=(), capacity=None,
        avoid_repeats: bool = True, enumerate_limit: int = _constraints.DEFAULT_ENUMERATE_LIMIT,
        prior=None, **options) -> Strategy:
    """Builds the named strategy for `space`.

    Common options:
      max_flops, max_params: upper limits from the space's analytic counts.
      constraints: more limits, each a `Limit(name, cost, limit)` or `(cost, limit)` with
        `cost(archs int32[n, D]) -> [n]` (e.g. a latency table lookup).
      capacity: how many evaluations the state remembers (fixed, for jit); per-strategy default.
      avoid_repeats: never re-propose an evaluated architecture, or one that computes the same
        function (`space.canonical`), while fresh feasible ones remain.
      enumerate_limit: spaces up to this size get constraints tabulated (jittable `ask`).
      prior: `score(archs int32[n, D]) -> [n]`, higher = more promising, free to compute (a
        training-free proxy, the parameter count): the uniform candidates a strategy draws when its
        own proposals are not wanted or run out (initial designs, restarts) come best-scored first,
        the zero-cost warm-up of Abdelfattah et al. (ICLR 2021). Tabulated over the whole space
        once, so the space may hold at most `enumerate_limit` architectures.
    Anything else is the algorithm's own option (see `algorithm_options(name)`); an unknown one
    raises a TypeError listing the valid ones, and a value of another type than the option's
    annotation a ValueError. A constraint that no architecture meets raises a
    ValueError here (tabulated spaces) or in `ask` after a bounded search (others).
    """
    module = _module(name)
    check_options(module.make_core, options, f"strategy {name!r}", positional=2)
    check_types(module.make_core, options, f"strategy {name!r}")
    capacity = int(module.DEFAULT_CAPACITY if capacity is None else capacity)
    limits = _constraints.make_limits(space, max_flops, max_params, constraints, enumerate_limit)
    feasibility = Feasibility(space, limits, enumerate_limit=enumerate_limit)
    core = module.make_core(space, capacity, **options)
    from strategies import interface  # local: keeps the package namespace small
    prior_table = None if prior is None else _constraints.tabulate_score(space, prior, enumerate_limit, "prior")
    return interface.build(space, core, feasibility, capacity=capacity, avoid_repeats=avoid_repeats, name=name,
                      prior_table=prior_table)


__all__ = ["SEARCH_STRATEGIES", "STRATEGIES", "Strategy", "Limit", "Feasibility", "get", "names", "algorithm_options", "best", "top_k",
           "explain"]
