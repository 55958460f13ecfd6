"""Resource limits on architectures, and the feasibility test every strategy applies in `ask`.

A `Limit` is a named batched cost function with an upper bound: `cost(archs int32[n, D]) -> [n]`,
feasible when `cost <= limit`. `flops_limit` / `params_limit` wrap the space's analytic counts; any
other cost (a latency table, a memory model) is a user function, e.g.

    latency = tabular.nas_bench_201_latency()
    limit = Limit("pixel3 latency (ms)", lambda a: latency.metric(a, "pixel3"), 10.0)

How feasibility is decided (`Feasibility`):

* Spaces of at most `enumerate_limit` architectures (NAS-Bench-201 has 15,625) are tabulated once:
  every cost is computed for every architecture, giving a boolean table indexed by the
  architecture's mixed-radix number. Testing and uniform sampling of feasible architectures are
  then exact, jittable lookups, and a constraint nothing satisfies is reported up front.
* Larger spaces are filtered on the host: candidates are tested by calling the cost functions, and
  uniform feasible architectures come from rejection sampling with a bounded number of draws
  (`max_tries`), after which a ValueError names the cheapest cost seen and the limit.
"""

from __future__ import annotations

import weakref
from typing import Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from strategies import archs as archs_lib

DEFAULT_ENUMERATE_LIMIT = 100_000
DEFAULT_MAX_TRIES = 100_000
_REJECTION_BATCH = 1024


class Limit(NamedTuple):
    """Feasible when `cost(archs) <= limit`; `cost` maps int32[n, D] to n numbers (host numpy)."""
    name: str
    cost: Callable[[np.ndarray], np.ndarray]
    limit: float


def per_architecture(fn: Callable[[np.ndarray], float]) -> Callable[[np.ndarray], np.ndarray]:
    """Turns a function of one architecture (int32[D]) into the batched form a `Limit` takes."""
    def batched(archs):
        return np.asarray([fn(a) for a in np.asarray(archs)], np.float64)
    return batched


# The analytic counts cost ~0.2 ms per architecture; tabulate each space once per process.
_ANALYTIC_TABLES: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def analytic_cost(space, what: str,
                  enumerate_limit: int = DEFAULT_ENUMERATE_LIMIT) -> Callable[[np.ndarray], np.ndarray]:
    """The space's analytic count `what` ("params" or "flops") as `cost(archs int32[n, D]) -> [n]`;
    tabulated once per space (and cached) when it holds at most `enumerate_limit` architectures."""
    per_arch = per_architecture(getattr(space, what))
    if space.size > enumerate_limit:
        return per_arch
    tables = _ANALYTIC_TABLES.setdefault(space, {})
    if what not in tables:
        tables[what] = per_arch(all_architectures(space))
    table, strides = tables[what], radix_strides(space.num_choices)
    return lambda archs: table[np.asarray(archs, np.int64) @ strides]


def flops_limit(space, max_flops: float, enumerate_limit: int = DEFAULT_ENUMERATE_LIMIT) -> Limit:
    """A `Limit` of `max_flops` on `space.flops` (tabulated over the space up to `enumerate_limit` architectures)."""
    return Limit("FLOPs", analytic_cost(space, "flops", enumerate_limit), float(max_flops))


def params_limit(space, max_params: float, enumerate_limit: int = DEFAULT_ENUMERATE_LIMIT) -> Limit:
    """A `Limit` of `max_params` on `space.params` (tabulated over the space up to `enumerate_limit` architectures)."""
    return Limit("parameters", analytic_cost(space, "params", enumerate_limit), float(max_params))


def make_limits(space, max_flops=None, max_params=None, constraints: Sequence = (),
                enumerate_limit: int = DEFAULT_ENUMERATE_LIMIT) -> list[Limit]:
    """The `Limit`s for a strategy's keyword options; `constraints` holds `Limit`s or
    (cost, limit) / (name, cost, limit) tuples."""
    for what, limit in (("flops", max_flops), ("params", max_params)):
        if limit is not None and not callable(getattr(space, what, None)):
            raise ValueError(f"max_{what}: {space.name} has no {what}(arch) to count; drop max_{what}, or pass "
                             f"constraints=[(cost, {limit})] with your own cost(archs int32[n, D]) -> [n].")
    limits = []
    if max_flops is not None:
        limits.append(flops_limit(space, max_flops, enumerate_limit))
    if max_params is not None:
        limits.append(params_limit(space, max_params, enumerate_limit))
    for i, item in enumerate(constraints):
        if isinstance(item, Limit):
            limits.append(item)
        elif isinstance(item, tuple) and len(item) == 2 and callable(item[0]):
            limits.append(Limit(f"constraint {i}", item[0], float(item[1])))
        elif isinstance(item, tuple) and len(item) == 3 and callable(item[1]):
            limits.append(Limit(str(item[0]), item[1], float(item[2])))
        else:
            raise TypeError(f"constraint {i}: expected a Limit, (cost_fn, limit) or (name, cost_fn, limit), "
                            f"got {item!r}.")
    return limits


# -- architecture numbering (re-exported for callers of this module) -----------------------------

radix_strides = archs_lib.radix_strides


def all_architectures(space) -> np.ndarray:
    """int32[space.size, D], row i is architecture number i."""
    return archs_lib.enumerate_all(space.num_choices)


def tabulate_score(space, score: Callable[[np.ndarray], np.ndarray], enumerate_limit: int, what: str) -> np.ndarray:
    """float32[space.size]: `score` of every architecture, by architecture number (`radix_strides`)."""
    if space.size > enumerate_limit:
        raise ValueError(f"{what}: {space.name} holds {space.size} architectures, more than enumerate_limit "
                         f"({enumerate_limit}) allows to tabulate; raise enumerate_limit or drop the {what}.")
    archs = all_architectures(space)
    table = np.asarray(score(archs), np.float32).reshape(-1)
    if table.shape[0] != archs.shape[0] or not np.all(np.isfinite(table)):
        raise ValueError(f"{what}: the score function must return one finite number per architecture; got "
                         f"{table.shape[0]} values for {archs.shape[0]} architectures"
                         f"{'' if np.all(np.isfinite(table)) else ', some not finite'}.")
    return table


def _cost_array(limit: Limit, archs: np.ndarray) -> np.ndarray:
    cost = np.asarray(limit.cost(archs), np.float64).reshape(-1)
    if cost.shape[0] != archs.shape[0]:
        raise ValueError(f"constraint {limit.name!r}: its cost function returned {cost.shape[0]} values "
                         f"for {archs.shape[0]} architectures.")
    return cost


def _describe_infeasible(limits, costs_by_limit) -> str:
    cheapest = [float(np.nanmin(c)) for c in costs_by_limit]
    text = "; ".join(f"the cheapest {lim.name} is {c:.6g}, the limit is {lim.limit:.6g}"
                     for lim, c in zip(limits, cheapest))
    if all(c <= lim.limit for lim, c in zip(limits, cheapest)):
        text += " (each limit alone can be met, but no architecture meets all of them at once)"
    return text


class Feasibility:
    """Decides which architectures satisfy all `limits`; see the module docstring."""

    def __init__(self, space, limits: Sequence[Limit] = (), enumerate_limit: int = DEFAULT_ENUMERATE_LIMIT,
                 max_tries: int = DEFAULT_MAX_TRIES):
        self.space = space
        self.limits = list(limits)
        self.max_tries = int(max_tries)
        self.num_feasible = None
        self._strides = jnp.asarray(radix_strides(space.num_choices), jnp.int32) if space.size < 2**31 else None
        self.jittable = not self.limits or space.size <= enumerate_limit
        if self.limits and self.jittable:
            self._tabulate()

    def _tabulate(self):
        archs = all_architectures(self.space)
        costs = [_cost_array(lim, archs) for lim in self.limits]
        ok = np.ones(len(archs), bool)
        for lim, c in zip(self.limits, costs):
            ok &= c <= lim.limit
        self.num_feasible = int(ok.sum())
        if self.num_feasible == 0:
            raise ValueError(f"no architecture of {self.space.name} ({self.space.size} in all) satisfies the "
                             f"constraints: {_describe_infeasible(self.limits, costs)}.")
        self._table = jnp.asarray(ok)
        self._feasible_numbers = jnp.asarray(np.flatnonzero(ok), jnp.int32)

    # -- testing ----------------------------------------------------------------------------------
    def check(self, archs):
        """bool[n]: jnp (jittable) when tabulated or unconstrained, numpy on the host otherwise."""
        if not self.limits:
            return jnp.ones((archs.shape[0],), bool)
        if self.jittable:
            return self._table[jnp.asarray(archs, jnp.int32) @ self._strides]
        archs = np.asarray(archs)
        ok = np.ones(len(archs), bool)
        for lim in self.limits:
            ok &= _cost_array(lim, archs) <= lim.limit
        return ok

    def costs(self, archs) -> dict[str, np.ndarray]:
        """Every limit's cost of each architecture (host numpy), by limit name."""
        archs = np.asarray(archs)
        return {lim.name: _cost_array(lim, archs) for lim in self.limits}

    # -- uniform feasible sampling ------------------------------------------------------------------
    def sample(self, key, n: int):
        """`n` architectures uniform over the feasible ones: jittable unless filtered on the host."""
        if not self.limits:
            return archs_lib.uniform(key, n, self.space.num_choices)
        if self.jittable:
            count = self._feasible_numbers.shape[0]
            index = jnp.floor(jax.random.uniform(key, (n,)) * count).astype(jnp.int32)
            return self._unnumber(self._feasible_numbers[jnp.minimum(index, count - 1)])
        return self._rejection_sample(key, n)

    def _unnumber(self, numbers):
        sizes = jnp.asarray(self.space.num_choices, jnp.int32)
        return ((numbers[:, None] // self._strides[None, :]) % sizes[None, :]).astype(jnp.int32)

    def _rejection_sample(self, key, n):
        found, tried, cheapest = [], 0, [np.inf] * len(self.limits)
        while sum(len(f) for f in found) < n:
            if tried >= self.max_tries:
                names = "; ".join(f"the cheapest {lim.name} seen costs {c:.6g}, the limit is {lim.limit:.6g}"
                                  for lim, c in zip(self.limits, cheapest))
                raise ValueError(f"no feasible architecture of {self.space.name} found in {tried} tries "
                                 f"(needed {n}): {names}.")
            key, sub = jax.random.split(key)
            archs = np.asarray(archs_lib.uniform(sub, _REJECTION_BATCH, self.space.num_choices))
            tried += len(archs)
            ok = np.ones(len(archs), bool)
            for i, lim in enumerate(self.limits):
                c = _cost_array(lim, archs)
                cheapest[i] = min(cheapest[i], float(np.nanmin(c)))
                ok &= c <= lim.limit
            found.append(archs[ok])
        return jnp.asarray(np.concatenate(found)[:n])
