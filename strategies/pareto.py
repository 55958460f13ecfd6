"""Pareto fronts of (fitness, cost): higher fitness and lower costs are better."""

from __future__ import annotations

import numpy as np

from strategies import buffer


def pareto_front(fitness, costs) -> np.ndarray:
    """Indices of the non-dominated points, ordered by the first cost (cheapest first).

    fitness: [n], maximised. costs: [n] or [n, m], each minimised. A point is dominated when
    another is at least as good in every objective and better in one; of identical points only
    the first is kept. Failed evaluations (NaN or -inf fitness) are never on the front.
    """
    fitness = np.asarray(fitness, np.float64).reshape(-1)
    costs = np.asarray(costs, np.float64)
    costs = costs[:, None] if costs.ndim == 1 else costs
    if costs.shape[0] != fitness.shape[0]:
        raise ValueError(f"pareto_front: {fitness.shape[0]} fitness values but {costs.shape[0]} costs.")
    ok = np.flatnonzero(~np.isnan(fitness) & (fitness > -np.inf))
    if costs.shape[1] == 1:
        front = _front_one_cost(fitness[ok], costs[ok, 0])
    else:
        front = _front_many_costs(fitness[ok], costs[ok])
    return ok[front]


def _front_one_cost(fitness, cost):
    # Cheapest first, fittest first among equal costs; a point is on the front when it is
    # strictly fitter than every cheaper-or-equal point before it.
    order = np.lexsort((np.arange(len(cost)), -fitness, cost))
    front, best = [], -np.inf
    for i in order:
        if fitness[i] > best:
            front.append(i)
            best = fitness[i]
    return np.asarray(front, np.int64)


def _front_many_costs(fitness, costs):
    objectives = np.concatenate([-fitness[:, None], costs], axis=1)  # all minimised
    keep = []
    for i in range(len(objectives)):
        no_worse = np.all(objectives <= objectives[i], axis=1)
        better = np.any(objectives < objectives[i], axis=1)
        identical_earlier = np.all(objectives[:i] == objectives[i], axis=1).any()
        if not np.any(no_worse & better) and not identical_earlier:
            keep.append(i)
    keep = np.asarray(keep, np.int64)
    return keep[np.argsort(costs[keep, 0], kind="stable")]


def history_front(state, cost_fn):
    """The Pareto front over a strategy state's history: (archs int32[k, D], fitness [k], cost [k]).

    cost_fn: a batched cost, int32[n, D] -> [n] (e.g. a latency table's `metric`).
    """
    history = state.history
    valid = np.asarray(buffer.valid_mask(history))
    archs = np.asarray(history.archs)[valid]
    fitness = np.asarray(history.fitness)[valid]
    cost = np.asarray(cost_fn(archs), np.float64)
    front = pareto_front(fitness, cost)
    return archs[front], fitness[front], cost[front]
