"""What a search found, explained: the estimated effect of every option of every decision.

    report = strategies.explain(space, archs, fitness)   # strategies.explanation.explain
    report.effects        # float[D, K]: each option's effect, centred per decision (NaN: no such option)
    report.effects_low    # float[D, K], report.effects_high: a bootstrap 95% interval
    report.importance     # float[D]: the share of the fitness variance each decision explains
    report.interactions   # pairs of decisions whose joint choice predicts better than their sum
    report.to_dict()      # the same, JSON-able (what a search's results.json holds under `explain`)

The model: fitness ~ mean + a term per decision + a term per pair of decisions + a quadratic
function of how often each option is used, fitted by ridge regression. The decision and pair terms
are on the one-hot choices (a pair's on the one-hot of its joint choice). The count terms apply to
decisions that offer the same list of options (the edges of a cell): the count of each option over
those decisions and the products of two counts, so that evidence about an option on one edge
informs the others (how many convolutions or `none`s a cell holds). An option's effect is the
model's mean prediction with that option chosen and the other decisions chosen uniformly at random,
centred over the decision's options: the main effect of a functional ANOVA of the fitted model.
The pair terms let the effects adjust for how unevenly a history combined the options; they are
not reported as such (`interactions` names the pairs that predict held-out results). A decision's
importance is the variance of its effects over its options (each equally likely), as a share of
the history's fitness variance.

What the effects mean: how much, on average over the rest of the space, choosing an option moves
the fitness against the decision's other options, as far as this history shows it. What they do not
mean: the effects add up (a pair's joint effect shows up only in `interactions`), they hold within
this space and data, at the budget the fitness was measured at, and they inherit the bias of the
history they were fitted on (a search evaluates around what it found good).

Computed in the dual (kernel) form: two architectures' kernel depends only on how many decisions they
agree on and on their option counts, so a fit costs O(n^3) in the number of results n, whatever the
number of decisions, and the main effects of the fitted model are exact sums over the results.
"""

from __future__ import annotations

import contextlib
import warnings
from typing import NamedTuple

import numpy as np



class Penalties(NamedTuple):
    """Ridge penalties of the model's terms (inf leaves a term out): `main` on the one-hot weights,
    `pair` on the pairs' joint one-hots, `count` on the option counts and `count_pair` on the
    products of two counts (a group's counts scaled by 1/sqrt(its size), see `_kernel`)."""
    main: float = 10.0
    pair: float = 10.0
    count: float = 0.3
    count_pair: float = 1.0


# Chosen on random-search histories of the CIFAR-100 and ImageNet16-120 columns of the 12-epoch
# NAS-Bench-201 table, never its CIFAR-10 column (experiments/measured/explain/tune_importance.py).
PENALTIES = Penalties()
BOOTSTRAP = 200      # resamples for the intervals
FOLDS = 5            # cross-validation folds that decide whether an interaction is worth naming
MIN_GAIN = 0.05      # the share of held-out squared error a pair must remove to be named
CV_RIDGE = 0.1       # a light penalty when testing pairs, so shrinkage of the main effects is not
                     # mistaken for an interaction
MEANING = ("effect: how much choosing the option moves the fitness against the decision's other options, "
           "averaged over the other decisions (main effect of a ridge model with decision, pair and "
           "option-count terms, fitted on this history); low, high: its bootstrap 95% interval; count: results with this option; "
           "importance: the variance of the decision's effects as a share of the history's fitness variance")


class Explanation(NamedTuple):
    """See the module docstring. `decision_names[d]`, `options[d][k]` label `effects[d, k]`;
    `counts[d, k]` is how many results chose option k of decision d."""
    effects: np.ndarray
    effects_low: np.ndarray
    effects_high: np.ndarray
    importance: np.ndarray
    interactions: list
    decision_names: tuple
    options: tuple
    num_results: int
    counts: np.ndarray | None = None

    def ranking(self) -> list:
        """The decision names, most important first."""
        return [self.decision_names[d] for d in np.argsort(-self.importance, kind="stable")]

    def to_dict(self, fitness: str = "fitness") -> dict:
        """JSON-able: {"effects": {decision: {option: {effect, low, high, count}}}, "importance":
        {decision: share}, "ranking", "interactions", "num_results", "fitness" (what was
        explained, e.g. "supernet validation accuracy"), "meaning"}. `from_dict` reads it back."""
        counts = self.counts if self.counts is not None else np.full(self.effects.shape, -1)
        effects = {name: {opt: {"effect": float(self.effects[d, k]), "low": float(self.effects_low[d, k]),
                                "high": float(self.effects_high[d, k]), "count": int(counts[d, k])}
                          for k, opt in enumerate(opts)}
                   for d, (name, opts) in enumerate(zip(self.decision_names, self.options))}
        return {"fitness": fitness, "num_results": self.num_results,
                "importance": dict(zip(self.decision_names, map(float, self.importance))),
                "ranking": self.ranking(), "effects": effects, "interactions": self.interactions,
                "meaning": MEANING}

    @classmethod
    def from_dict(cls, section: dict) -> "Explanation":
        """The `Explanation` a `to_dict` section (e.g. results.json's `explain`) was written from."""
        names = tuple(section["effects"])
        options = tuple(tuple(section["effects"][n]) for n in names)
        shape = (len(names), max(len(o) for o in options))
        arrays = {key: np.full(shape, np.nan) for key in ("effect", "low", "high")}
        counts = np.zeros(shape, np.int64)
        for d, name in enumerate(names):
            for k, entry in enumerate(section["effects"][name].values()):
                for key in arrays:
                    arrays[key][d, k] = entry[key]
                counts[d, k] = entry["count"]
        return cls(effects=arrays["effect"], effects_low=arrays["low"], effects_high=arrays["high"],
                   importance=np.array([section["importance"][n] for n in names]),
                   interactions=list(section["interactions"]), decision_names=names, options=options,
                   num_results=int(section["num_results"]), counts=counts)


def _one_hot(archs: np.ndarray, num_choices) -> np.ndarray:
    """float[n, sum K_d]: one block of one-hot columns per decision."""
    return np.concatenate([np.eye(k)[archs[:, d]] for d, k in enumerate(num_choices)], axis=1)


def _ridge(x: np.ndarray, y: np.ndarray, penalty: float) -> tuple[float, np.ndarray]:
    """(intercept, weights) of ridge regression with an unpenalised intercept."""
    x_mean, y_mean = x.mean(0), y.mean()
    xc = x - x_mean
    weights = np.linalg.solve(xc.T @ xc + penalty * np.eye(x.shape[1]), xc.T @ (y - y_mean))
    return y_mean - x_mean @ weights, weights


def option_groups(options) -> tuple:
    """The groups of decisions (indices, two or more) that offer the same list of options, e.g. the
    edges of a cell; the model's count terms are shared within each group."""
    members = {}
    for d, opts in enumerate(options):
        members.setdefault(tuple(opts), []).append(d)
    return tuple(tuple(group) for group in members.values() if len(group) > 1)


def _counts(archs: np.ndarray, group, num_options: int) -> np.ndarray:
    """float[n, K]: how many of the group's decisions chose each option."""
    return np.eye(num_options)[archs[:, list(group)]].sum(1)


def _kernel(archs: np.ndarray, num_choices, groups, penalties: Penalties = PENALTIES) -> np.ndarray:
    """float[n, n]: the inner product of two results' penalty-scaled features. Two architectures
    agreeing on m decisions share m main and m(m-1)/2 pair columns; within a group of G decisions,
    with option counts c and c', the count features give s = c.c'/G and the count products s^2."""
    matches = np.zeros((len(archs), len(archs)))
    for d in range(archs.shape[1]):
        matches += archs[:, d, None] == archs[None, :, d]
    kernel = matches / penalties.main + matches * (matches - 1) / 2 / penalties.pair
    for group in groups:
        counts = _counts(archs, group, num_choices[group[0]])
        shared = counts @ counts.T / len(group)
        kernel += shared / penalties.count + shared ** 2 / penalties.count_pair
    return kernel


def _effects(archs, fitness, kernel, num_choices, groups, penalties: Penalties = PENALTIES) -> np.ndarray:
    """float[D, K_max]: each option's centred main effect (see the module docstring), NaN where a
    decision has no option k.

    With an unpenalised intercept the ridge fit is alpha = (Kc + I)^-1 (y - mean y), Kc the doubly
    centred kernel, and alpha sums to 0, so the model's mean prediction with decision d at option k
    and the others uniform is, up to a constant, sum_i alpha_i E[kernel(x, x_i)]. Its part that
    depends on k: [a_id = k] (1/main + sum_{e != d} (1/K_e) / pair) from the one-hot terms; for d in
    a group of G decisions with K options, c_ik / (G count) from the counts and
    (c_ik^2 + 2 c_ik (G - 1) mean(c_i)) / (G^2 count_pair) from their products, as each other
    member's option is uniform."""
    centred = kernel - kernel.mean(0) - kernel.mean(1)[:, None] + kernel.mean()
    alpha = np.linalg.solve(centred + np.eye(len(fitness)), fitness - fitness.mean())
    chance = 1.0 / np.asarray(num_choices)   # how often a uniform choice agrees with a given option
    out = np.full((len(num_choices), max(num_choices)), np.nan)
    for d, k in enumerate(num_choices):
        scale = 1.0 / penalties.main + (chance.sum() - chance[d]) / penalties.pair
        out[d, :k] = scale * np.bincount(archs[:, d], weights=alpha, minlength=k)
    for group in groups:
        size, k = len(group), num_choices[group[0]]
        counts = _counts(archs, group, k)
        others = (size - 1) * counts.mean(1, keepdims=True)   # expected count the other members add
        shared = (counts.T @ alpha / (size * penalties.count)
                  + (counts ** 2 + 2 * counts * others).T @ alpha / (size ** 2 * penalties.count_pair))
        out[list(group), :k] += shared
    return out - np.nanmean(out, axis=1, keepdims=True)


def _importance(fitness, effects) -> np.ndarray:
    """float[D]: the variance of each decision's effects over its options (each equally likely),
    as a share of the fitness variance (clipped to [0, 1])."""
    total = max(float(np.var(fitness)), 1e-12)
    return np.clip(np.nanmean(effects ** 2, axis=1) / total, 0.0, 1.0)


def _held_out_error(x: np.ndarray, y: np.ndarray, folds: np.ndarray) -> float:
    error = 0.0
    for f in np.unique(folds):
        train, test = folds != f, folds == f
        intercept, weights = _ridge(x[train], y[train], CV_RIDGE)
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


@contextlib.contextmanager
def _one_blas_thread():
    """Pins numpy's BLAS to one thread: measured on a shared 2-core machine, the bootstrap's many
    small solves ran about 30x slower threaded. A no-op without threadpoolctl."""
    try:
        import threadpoolctl
    except ImportError:
        yield
        return
    with threadpoolctl.threadpool_limits(limits=1, user_api="blas"):
        yield


def explain(space, archs, fitness, seed: int = 0) -> Explanation:
    """Explains a search history: the main effect of every option, with intervals.

    Args:
        space: the decisions (`num_choices`, `decision_names`, `options`), e.g. a supernet space.
        archs: int[n, D], every architecture the search evaluated.
        fitness: float[n], higher is better; non-finite values (failed evaluations) are left out.
        seed: fixes the bootstrap resamples and the cross-validation folds.

    Returns:
        an `Explanation` (see the module docstring). Costs O(BOOTSTRAP n^3): about a second at n=100.
    """
    archs = np.asarray(space.validate(np.asarray(archs))).reshape(-1, space.num_decisions)
    fitness = np.asarray(fitness, np.float64).reshape(-1)
    if len(archs) != len(fitness):
        raise ValueError(f"explain: {len(archs)} architectures but {len(fitness)} fitness values; pass one each.")
    keep = np.isfinite(fitness)
    archs, fitness = archs[keep], fitness[keep]
    if len(fitness) < 2:
        raise ValueError(f"explain: {len(fitness)} finite results; an explanation needs at least 2.")
    with _one_blas_thread():
        return _explain(space, archs, fitness, seed)


def _explain(space, archs, fitness, seed) -> Explanation:
    num_choices = tuple(int(k) for k in space.num_choices)
    groups = option_groups(space.options)
    kernel = _kernel(archs, num_choices, groups)
    effects = _effects(archs, fitness, kernel, num_choices, groups)
    rng = np.random.default_rng(seed)
    samples = np.stack([_effects(archs[i], fitness[i], kernel[np.ix_(i, i)], num_choices, groups)
                        for i in (rng.integers(0, len(fitness), len(fitness)) for _ in range(BOOTSTRAP))])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # padded options are NaN in every sample
        low, high = np.nanpercentile(samples, [2.5, 97.5], axis=0)
    counts = np.stack([np.bincount(archs[:, d], minlength=max(num_choices)) for d in range(len(num_choices))])
    names = tuple(space.decision_names)
    # With few results the resamples can all fall on one side of the (shrunk) estimate: the
    # interval is widened to reach it, so an interval always contains its estimate.
    return Explanation(effects=effects, effects_low=np.where(np.isnan(effects), np.nan, np.fmin(low, effects)),
                       effects_high=np.where(np.isnan(effects), np.nan, np.fmax(high, effects)),
                       importance=_importance(fitness, effects),
                       interactions=_interactions(archs, fitness, num_choices, names, rng),
                       decision_names=names, options=tuple(tuple(o) for o in space.options),
                       num_results=len(fitness), counts=counts)


def summary(space, archs, fitness, seed: int = 0, fitness_name: str = "fitness") -> dict | None:
    """`explain(space, archs, fitness, seed).to_dict(fitness_name)`: the JSON-able section a
    search's results.json holds under `explain`; None when fewer than 2 results are finite (a
    search that short has nothing to explain, and its results should still be written)."""
    if np.isfinite(np.asarray(fitness, np.float64)).sum() < 2:
        return None
    return explain(space, archs, fitness, seed).to_dict(fitness_name)


def table_truth(options, table_archs: np.ndarray, table_fitness: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A whole table's (effects float[D, K], importance float[D]): each option's mean fitness over
    the table, centred per decision, and the share of the variance those means explain."""
    table_archs, table_fitness = np.asarray(table_archs), np.asarray(table_fitness, np.float64)
    truth = np.full((len(options), max(len(o) for o in options)), np.nan)
    shares = []
    for d, k in enumerate(len(o) for o in options):
        means = np.array([table_fitness[table_archs[:, d] == j].mean() for j in range(k)])
        truth[d, :k] = means - means.mean()
        shares.append(np.var(means[table_archs[:, d]]) / np.var(table_fitness))
    return truth, np.asarray(shares)


def agreement_with_table(report: Explanation, table_archs: np.ndarray, table_fitness: np.ndarray) -> dict:
    """How well a history's explanation matches a whole table's truth (`table_truth`): Pearson
    correlation of the effects with the table's centred per-(decision, option) means, and Spearman
    correlation of the importances with the table's shares."""
    truth, shares = table_truth(report.options, table_archs, table_fitness)
    known = ~np.isnan(truth)
    pearson = float(np.corrcoef(report.effects[known], truth[known])[0, 1])
    ranks = lambda v: np.argsort(np.argsort(v))
    spearman = float(np.corrcoef(ranks(report.importance), ranks(shares))[0, 1])
    return {"effects_pearson": pearson, "importance_spearman": spearman, "table_importance": shares.tolist()}
