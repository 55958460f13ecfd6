"""What a search found, explained: the estimated effect of every option of every decision.

    report = strategies.explain(space, archs, fitness)   # strategies.explanation.explain
    report.effects        # float[D, K]: each option's effect, centred per decision (NaN: no such option)
    report.effects_low    # float[D, K], report.effects_high: a bootstrap 95% interval
    report.importance     # float[D]: the share of the fitness variance each decision explains
    report.interactions   # pairs of decisions whose joint choice predicts better than their sum

The model is additive: fitness ~ mean + sum over decisions of the chosen option's effect, fitted by
ridge regression on the one-hot choices of every evaluated architecture. What the effects mean: how
much, on average over the architectures this search evaluated, choosing an option moved the
fitness against the decision's other options. What they do not mean: they are additive (an
interaction shows up only in `interactions`), valid within this space and data, and estimated from
this history, whose own bias (a search evaluates around what it found good) they inherit.
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import numpy as np

RIDGE = 5.0          # penalty on the one-hot weights (columns are 0/1); chosen on random-search seeds 0-19
BOOTSTRAP = 200      # resamples for the intervals
FOLDS = 5            # cross-validation folds that decide whether an interaction is worth naming
MIN_GAIN = 0.05      # the share of held-out squared error a pair must remove to be named
PAIR_RIDGE = 0.1     # a light penalty when testing pairs, so shrinkage of the main effects is not
                     # mistaken for an interaction


class Explanation(NamedTuple):
    """See the module docstring. `decision_names[d]`, `options[d][k]` label `effects[d, k]`."""
    effects: np.ndarray
    effects_low: np.ndarray
    effects_high: np.ndarray
    importance: np.ndarray
    interactions: list
    decision_names: tuple
    options: tuple
    num_results: int

    def to_dict(self) -> dict:
        """JSON-friendly: {decision: {option: [effect, low, high]}}, importances, interactions."""
        effects = {name: {str(opt): [float(self.effects[d, k]), float(self.effects_low[d, k]),
                                     float(self.effects_high[d, k])] for k, opt in enumerate(opts)}
                   for d, (name, opts) in enumerate(zip(self.decision_names, self.options))}
        return {"effects": effects, "importance": dict(zip(self.decision_names, map(float, self.importance))),
                "interactions": self.interactions, "num_results": self.num_results}


def _one_hot(archs: np.ndarray, num_choices) -> np.ndarray:
    """float[n, sum K_d]: one block of one-hot columns per decision."""
    return np.concatenate([np.eye(k)[archs[:, d]] for d, k in enumerate(num_choices)], axis=1)


def _ridge(x: np.ndarray, y: np.ndarray, penalty: float) -> tuple[float, np.ndarray]:
    """(intercept, weights) of ridge regression with an unpenalised intercept."""
    x_mean, y_mean = x.mean(0), y.mean()
    xc = x - x_mean
    weights = np.linalg.solve(xc.T @ xc + penalty * np.eye(x.shape[1]), xc.T @ (y - y_mean))
    return y_mean - x_mean @ weights, weights


def _effects(archs, fitness, num_choices) -> np.ndarray:
    """float[D, K_max]: ridge weights, centred per decision, NaN where a decision has no option k."""
    _, weights = _ridge(_one_hot(archs, num_choices), fitness, RIDGE)
    out = np.full((len(num_choices), max(num_choices)), np.nan)
    start = 0
    for d, k in enumerate(num_choices):
        block = weights[start:start + k]
        out[d, :k] = block - block.mean()
        start += k
    return out


def _importance(archs, fitness, effects) -> np.ndarray:
    """float[D]: the variance of each decision's fitted contribution over the evaluated
    architectures, as a share of the fitness variance (clipped to [0, 1])."""
    total = max(float(np.var(fitness)), 1e-12)
    contributions = [effects[d, archs[:, d]] for d in range(archs.shape[1])]
    return np.clip([np.var(c) / total for c in contributions], 0.0, 1.0)


def _held_out_error(x: np.ndarray, y: np.ndarray, folds: np.ndarray) -> float:
    error = 0.0
    for f in np.unique(folds):
        train, test = folds != f, folds == f
        intercept, weights = _ridge(x[train], y[train], PAIR_RIDGE)
        error += float(np.sum((y[test] - intercept - x[test] @ weights) ** 2))
    return error


def _interactions(archs, fitness, num_choices, names, rng) -> list:
    """Pairs whose joint one-hot, added to the additive model, removes at least MIN_GAIN of the
    cross-validated squared error; best first."""
    if len(fitness) < 4 * FOLDS:
        return []
    folds = rng.permutation(len(fitness)) % FOLDS
    base_x = _one_hot(archs, num_choices)
    base = _held_out_error(base_x, fitness, folds)
    found = []
    for a in range(len(num_choices)):
        for b in range(a + 1, len(num_choices)):
            pair = archs[:, a] * num_choices[b] + archs[:, b]
            joint = np.eye(num_choices[a] * num_choices[b])[pair]
            gain = 1.0 - _held_out_error(np.concatenate([base_x, joint], 1), fitness, folds) / max(base, 1e-12)
            if gain >= MIN_GAIN:
                found.append({"decisions": [names[a], names[b]], "held_out_error_removed": round(float(gain), 4)})
    return sorted(found, key=lambda p: -p["held_out_error_removed"])


def explain(space, archs, fitness, seed: int = 0) -> Explanation:
    """Explains a search history: the additive effect of every option, with intervals.

    Args:
        space: the decisions (`num_choices`, `decision_names`, `options`), e.g. a supernet space.
        archs: int[n, D], every architecture the search evaluated.
        fitness: float[n], higher is better; non-finite values (failed evaluations) are left out.
        seed: fixes the bootstrap resamples and the cross-validation folds.

    Returns:
        an `Explanation` (see the module docstring).
    """
    archs = np.asarray(space.validate(np.asarray(archs))).reshape(-1, space.num_decisions)
    fitness = np.asarray(fitness, np.float64).reshape(-1)
    if len(archs) != len(fitness):
        raise ValueError(f"explain: {len(archs)} architectures but {len(fitness)} fitness values; pass one each.")
    keep = np.isfinite(fitness)
    archs, fitness = archs[keep], fitness[keep]
    if len(fitness) < 2:
        raise ValueError(f"explain: {len(fitness)} finite results; an explanation needs at least 2.")
    num_choices = tuple(int(k) for k in space.num_choices)
    effects = _effects(archs, fitness, num_choices)
    rng = np.random.default_rng(seed)
    samples = np.stack([_effects(archs[i], fitness[i], num_choices)
                        for i in (rng.integers(0, len(fitness), len(fitness)) for _ in range(BOOTSTRAP))])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # padded options are NaN in every sample
        low, high = np.nanpercentile(samples, [2.5, 97.5], axis=0)
    names = tuple(space.decision_names)
    return Explanation(effects=effects, effects_low=np.where(np.isnan(effects), np.nan, low),
                       effects_high=np.where(np.isnan(effects), np.nan, high),
                       importance=_importance(archs, fitness, effects),
                       interactions=_interactions(archs, fitness, num_choices, names, rng),
                       decision_names=names, options=tuple(tuple(o) for o in space.options),
                       num_results=len(fitness))


def agreement_with_table(report: Explanation, table_archs: np.ndarray, table_fitness: np.ndarray) -> dict:
    """How well a history's explanation matches a whole table's truth: Pearson correlation of the
    effects with the table's per-(decision, option) marginal means (centred per decision), and
    Spearman correlation of the importances with the share of variance each decision's marginal
    means explain in the table."""
    table_archs, table_fitness = np.asarray(table_archs), np.asarray(table_fitness, np.float64)
    truth = np.full_like(report.effects, np.nan)
    shares = []
    for d, k in enumerate(len(o) for o in report.options):
        means = np.array([table_fitness[table_archs[:, d] == j].mean() for j in range(k)])
        truth[d, :k] = means - means.mean()
        shares.append(np.var(means[table_archs[:, d]]) / np.var(table_fitness))
    known = ~np.isnan(truth)
    pearson = float(np.corrcoef(report.effects[known], truth[known])[0, 1])
    ranks = lambda v: np.argsort(np.argsort(v))
    spearman = float(np.corrcoef(ranks(report.importance), ranks(np.asarray(shares)))[0, 1])
    return {"effects_pearson": pearson, "importance_spearman": spearman, "table_importance": shares}
