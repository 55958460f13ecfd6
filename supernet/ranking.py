"""How well does a ranker (the supernet, a training-free proxy, parameter count) order architectures
the way training them from scratch does?

`report(predicted, truth)` compares two aligned 1-D arrays: rank correlations over the whole
sample, precision among the top few percent, and what picking the predictor's favourite would cost.
`read_ground_truth` loads a table written by the `ground_truth` job (`supernet.jobs.ground_truth`)
and `noise_ceiling` says how well the table agrees with itself (seed vs seed, validation vs test):
no ranker can be expected to agree with the table much better than the table agrees with itself.

Rank correlations come from `scipy.stats` (Kendall's tau-b and Spearman's rho with average ranks),
which handle ties (imported on first use: scipy.stats takes 0.6 s to import, and most runs that
load this module never rank); the library never reads a config.
"""

from __future__ import annotations

import csv
import re

import numpy as np


def _stats():
    import scipy.stats
    return scipy.stats


def _pair(a, b) -> tuple[np.ndarray, np.ndarray]:
    """Two aligned 1-D float arrays, or a ValueError naming their shapes."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.ndim != 1 or a.shape != b.shape:
        raise ValueError(f"the two sides must be aligned 1-D arrays (one value per architecture), got shapes "
                         f"{a.shape} and {b.shape}.")
    return a, b


def kendall_tau(a, b) -> float:
    """Kendall's tau-b (scipy.stats.kendalltau; tie-corrected). NaN when either side is constant."""
    a, b = _pair(a, b)
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")  # no order to compare; scipy would warn and return NaN too
    return float(_stats().kendalltau(a, b).statistic)


def spearman_rho(a, b) -> float:
    """Spearman's rho (scipy.stats.spearmanr; ties get average ranks). NaN when either side is constant."""
    a, b = _pair(a, b)
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(_stats().spearmanr(a, b).statistic)


def rank_average(*scores) -> np.ndarray:
    """A hybrid ranker's scores: the mean over rankers of each architecture's rank among the
    scored ones (ties averaged), scaled to [0, 1]; higher is better. Cheap estimators err in
    different places (a supernet's sharing bias, a proxy's blind spots), so a combination can
    rank better than any of them (zero-cost proxies complement other predictors: White et al.,
    "How Powerful are Performance Predictors in NAS?", NeurIPS 2021). NaN scores rank lowest."""
    if not scores:
        raise ValueError("rank_average: give the scores of at least one ranker.")
    columns = [np.nan_to_num(np.asarray(x, np.float64), nan=-np.inf) for x in scores]
    if len({c.shape for c in columns}) != 1 or columns[0].ndim != 1:
        raise ValueError(f"rank_average: every ranker must score the same architectures, got shapes "
                         f"{[c.shape for c in columns]}.")
    n = max(len(columns[0]) - 1, 1)
    return np.mean([(_stats().rankdata(c) - 1) / n for c in columns], axis=0)


def quantiles(values, reference) -> np.ndarray:
    """Where each of `values` falls among `reference` (a fixed sample's scores), in [0, 1]: the
    fraction of the sample below it, ties counting half. NaN stays NaN."""
    values = np.asarray(values, np.float64)
    ordered = np.sort(np.asarray(reference, np.float64)[np.isfinite(reference)])
    if ordered.size == 0:
        raise ValueError("quantiles: the reference sample has no finite score.")
    below = np.searchsorted(ordered, values, "left") + np.searchsorted(ordered, values, "right")
    return np.where(np.isnan(values), np.nan, below / (2.0 * ordered.size))


def _top_k_weights(values: np.ndarray, k: int) -> np.ndarray:
    """Probability that each element is among the k largest when ties are broken at random:
    1 above the k-th largest value, 0 below it, and the tied group at that value shares the
    remaining places. Why: parameter and FLOP counts tie often, and an arbitrary tie-break would
    make precision@k depend on the row order of the table."""
    threshold = np.sort(values)[::-1][k - 1]
    above, tied = values > threshold, values == threshold
    return above + tied * (k - above.sum()) / tied.sum()


def precision_at(predicted, truth, fraction: float) -> float:
    """Fraction of the predictor's top `fraction` that is also in the true top `fraction`, with
    k = max(1, round(n * fraction)); ties on either side count in expectation over random tie-breaks."""
    predicted, truth = _pair(predicted, truth)
    if not 0 < fraction <= 1:
        raise ValueError(f"precision_at: fraction must lie in (0, 1], got {fraction}.")
    k = max(1, int(round(len(truth) * fraction)))
    return float((_top_k_weights(predicted, k) * _top_k_weights(truth, k)).sum() / k)


def _checked(predicted, truth):
    predicted, truth = np.asarray(predicted, np.float64), np.asarray(truth, np.float64)
    if predicted.ndim != 1 or predicted.shape != truth.shape:
        raise ValueError(f"predicted and truth must be aligned 1-D arrays, got shapes {predicted.shape} "
                         f"and {truth.shape}.")
    if len(truth) < 2:
        raise ValueError(f"a ranking needs at least 2 architectures, got {len(truth)}.")
    for name, values in (("predicted", predicted), ("truth", truth)):
        if not np.all(np.isfinite(values)):
            raise ValueError(f"{name} has {int((~np.isfinite(values)).sum())} non-finite values "
                             f"(first at index {int(np.argmin(np.isfinite(values)))}); a ranker must score every "
                             f"architecture.")
    return predicted, truth


def report(predicted, truth, *, names=None, higher_is_better: bool = True) -> dict:
    """How well `predicted` ranks the architectures whose true quality is `truth` (higher is better,
    e.g. test accuracy); `higher_is_better=False` for a predictor where lower means better (a loss).

    Returns n, kendall_tau (tau-b), spearman_rho, precision_top5pct / precision_top10pct (see
    `precision_at`), and for the predictor's top-1 pick: top1_index (row), top1_true_rank (1 = the
    truly best; averaged over the picks when several tie for the top prediction, top1_ties of them),
    top1_regret (best true value minus the pick's, averaged likewise) and, with `names`, top1_name.
    """
    predicted, truth = _checked(predicted, truth)
    if not higher_is_better:
        predicted = -predicted
    true_rank = _stats().rankdata(-truth, method="min")  # 1 = best; tied rows share the better rank
    picks = np.flatnonzero(predicted == predicted.max())
    out = {
        "n": int(len(truth)),
        "kendall_tau": kendall_tau(predicted, truth),
        "spearman_rho": spearman_rho(predicted, truth),
        "precision_top5pct": precision_at(predicted, truth, 0.05),
        "precision_top10pct": precision_at(predicted, truth, 0.10),
        "top1_index": int(picks[0]),
        "top1_true_rank": float(true_rank[picks].mean()),
        "top1_ties": int(len(picks)),
        "top1_regret": float(truth.max() - truth[picks].mean()),
    }
    if names is not None:
        if len(names) != len(truth):
            raise ValueError(f"names has {len(names)} entries for {len(truth)} architectures.")
        out["top1_name"] = str(names[picks[0]])
    return out


def bootstrap_margin(a, b, truth, *, samples: int = 2000, level: float = 0.95, seed: int = 0) -> dict:
    """How much better ranker `a` orders the architectures than ranker `b`: the difference of their
    Kendall taus against `truth` (aligned 1-D arrays, higher is better), with a percentile bootstrap
    interval from `samples` resamples of the architectures (with replacement; both rankers see the
    same resample, so their shared errors cancel). Returns margin, low, high, level, samples and
    the fraction of resamples where `a` ranks better (`fraction_above`)."""
    a, truth = _checked(a, truth)
    b, _ = _checked(b, truth)
    if not 0 < level < 1 or samples < 1:
        raise ValueError(f"bootstrap_margin: level must lie in (0, 1) and samples be >= 1, got {level} and {samples}.")
    picks = np.random.default_rng(seed).integers(0, len(truth), (samples, len(truth)))
    margins = np.asarray([kendall_tau(a[i], truth[i]) - kendall_tau(b[i], truth[i]) for i in picks])
    low, high = np.nanpercentile(margins, [50 * (1 - level), 50 * (1 + level)])
    return {"margin": kendall_tau(a, truth) - kendall_tau(b, truth), "low": float(low), "high": float(high),
            "level": level, "samples": samples, "fraction_above": float(np.nanmean(margins > 0))}


# -- ground-truth tables ---------------------------------------------------------------------------

def _number(text: str):
    try:
        return float(text)
    except (TypeError, ValueError):
        return text


def read_rows(path: str) -> list[dict]:
    """A ground-truth CSV's rows as dicts, numeric cells as floats (`arch` stays the string)."""
    with open(path, newline="") as f:
        return [{k: (v if k == "arch" else _number(v)) for k, v in row.items()} for row in csv.DictReader(f)]


def read_ground_truth(path: str, space, column: str = "test_accuracy_mean"):
    """A table of the `ground_truth` job -> (archs int32[n, D], values float64[n] of `column`, rows).

    `rows` are the CSV's rows as dicts, numeric cells converted to float (`arch` stays the string).
    """
    rows = read_rows(path)
    if not rows:
        raise ValueError(f"{path}: the table has no rows.")
    _require_columns(path, list(rows[0]), column)
    archs = np.stack([space.from_string(r["arch"]) for r in rows]).astype(np.int32)
    values = np.asarray([r[column] for r in rows], np.float64)
    return archs, values, rows


def check_header(path: str, column: str = "test_accuracy_mean") -> None:
    """ValueError unless the CSV at `path` has the columns `arch` and `column` (a ground_truth job's table)."""
    with open(path, newline="") as f:
        _require_columns(path, next(csv.reader(f), []), column)


def _require_columns(path: str, header: list, column: str) -> None:
    if "arch" not in header or column not in header:
        raise ValueError(f"{path}: expected columns 'arch' and {column!r}; the header has {header} (not a table of "
                         f"the ground_truth job?).")


def table_seeds(rows) -> list[int]:
    """The seeds a table holds, from its `test_accuracy_seed{S}` columns."""
    return sorted(int(m.group(1)) for k in rows[0] if (m := re.fullmatch(r"test_accuracy_seed(\d+)", k)))


def table_noise_ceiling(rows) -> dict | None:
    """`noise_ceiling` over every seed of a table; None for a table of one seed."""
    return noise_ceiling(rows) if len(table_seeds(rows)) >= 2 else None


def noise_ceiling(rows, seeds=None) -> dict:
    """How well the table agrees with itself (Kendall tau-b; `seeds` default: every seed in it).

    test_seed_tau: the test accuracies of the first half of the seeds (their mean) against the
    second half's (2 seeds: seed 0 vs seed 1; an odd count puts the extra seed in the second half).
    It is the agreement of two independent trainings of equal effort, a reference for a ranker
    judged against one of them; against the mean of all seeds, as the rankers are, the ceiling is
    somewhat higher, since that mean is less noisy.
    val_test_tau: mean validation against mean test accuracy (how well selecting on validation
    can rank by test at all).
    """
    seeds = table_seeds(rows) if seeds is None else list(seeds)
    if len(seeds) < 2:
        raise ValueError(f"a noise ceiling needs at least 2 seeds, got {seeds}.")
    column = lambda name: np.asarray([r[name] for r in rows], np.float64)
    half = len(seeds) // 2
    first = np.mean([column(f"test_accuracy_seed{s}") for s in seeds[:half]], axis=0)
    second = np.mean([column(f"test_accuracy_seed{s}") for s in seeds[half:]], axis=0)
    return {"seeds": seeds, "halves": [seeds[:half], seeds[half:]], "n": len(rows),
            "test_seed_tau": kendall_tau(first, second),
            "val_test_tau": kendall_tau(column("val_accuracy_mean"), column("test_accuracy_mean"))}


# -- the ranking check of a one-shot run -------------------------------------------------------------

def rescore(archs, scores: dict, rows, column: str = "test_accuracy_mean") -> dict:
    """Reports of saved scores (`scores[ranker]` aligned with the architecture strings `archs`, as
    the `ranking` job's results.json keeps them) against table `rows` (`read_ground_truth`), on the
    rows whose architecture was scored."""
    where = {a: i for i, a in enumerate(archs)}
    kept = [r for r in rows if r["arch"] in where]
    if not kept:
        raise ValueError(f"none of the {len(archs)} scored architectures is in the table's {len(rows)} rows; was the "
                         f"table made on the space and task the scores come from?")
    at = [where[r["arch"]] for r in kept]
    truth = [r[column] for r in kept]
    return {name: report(np.asarray(values)[at], truth, names=[r["arch"] for r in kept])
            for name, values in scores.items()}


def against_table(objective, space, table: str, column: str = "test_accuracy_mean",
                  scatter: str | None = None) -> dict:
    """`objective(archs) -> scores` (e.g. the trained supernet's validation accuracy) judged against
    every row of a ground-truth table of the same space, with the table's noise ceiling next to it.
    `scatter`: a PNG path for the scores against the table (`scatter_png` in the report)."""
    archs, truth, rows = read_ground_truth(table, space, column)
    predicted = np.asarray(objective(archs))
    out = report(predicted, truth, names=[r["arch"] for r in rows])
    ceiling = table_noise_ceiling(rows)
    if scatter:
        out["scatter_png"] = draw_scatter(predicted, truth, out, scatter, ylabel=f"{column} (table)")
    return {**out, "kind": "ground_truth_table", "table": table, "column": column, "noise_ceiling": ceiling,
            "meaning": f"the objective's scores of the table's {len(rows)} architectures against their "
                       f"{column} trained from scratch"}


def retrained_check(predicted, retrained_test, names, num_top: int, scatter: str | None = None,
                    truth: str = "test accuracy") -> dict:
    """The cheap check when no table is given: the objective's `num_top` favourites plus as many
    random architectures, each retrained from scratch; `predicted` and `retrained_test` (higher is
    better: `truth` names it, e.g. "negative test mse") align with `names`, favourites first. Few
    rows and mostly good ones: a coarse, noisy check, labelled so. `scatter`: a PNG path for the
    plot (`scatter_png` in the report)."""
    out = report(predicted, retrained_test, names=names)
    if scatter:
        out["scatter_png"] = draw_scatter(predicted, retrained_test, out, scatter, ylabel=f"{truth} (retrained)")
    key = "retrained_" + truth.replace(" ", "_")
    return {**out, "kind": "retrained_top_k_plus_random", "num_top": int(num_top),
            "num_random": len(names) - int(num_top),
            "architectures": [{"arch": n, "predicted": float(p), key: float(t)}
                              for n, p, t in zip(names, predicted, retrained_test)],
            "meaning": f"{num_top} top architectures by the objective and {len(names) - num_top} random ones, "
                       f"each retrained from scratch once and scored by {truth}; with {len(names)} rows the tau "
                       f"is coarse"}


def draw_scatter(predicted, truth, out: dict, file: str, *, ylabel: str,
                 xlabel: str = "objective (e.g. supernet val accuracy)", name: str = "") -> str:
    """A report's scatter PNG (`out`: `report`'s dict, for the title); returns `file`."""
    from supernet import plots  # matplotlib only when a plot is asked for
    title = f"Kendall tau {out['kendall_tau']:.3f}, Spearman {out['spearman_rho']:.3f} (n={out['n']})"
    title = f"{name}: {title}" if name else title
    return plots.ranking_scatter(predicted, truth, file, xlabel, ylabel, title)


def main(argv=None) -> None:
    """`python -m supernet.ranking RESULTS.json [...] --table TABLE.csv`: re-scores the rankers saved in
    `ranking` job results against a (larger) ground-truth table, one line per ranker."""
    import argparse
    import json
    parser = argparse.ArgumentParser(prog="python -m supernet.ranking", description=main.__doc__)
    parser.add_argument("results", nargs="+", help="results.json files of the ranking job")
    parser.add_argument("--table", required=True, help="ground-truth CSV (the ground_truth job's)")
    parser.add_argument("--column", default="test_accuracy_mean")
    args = parser.parse_args(argv)
    rows = read_rows(args.table)
    for path in args.results:
        with open(path) as f:
            saved = json.load(f)
        scores = {name: r["scores"] for name, r in saved["rankers"].items()}
        width = max(map(len, scores))
        for name, r in rescore(saved["archs"], scores, rows, args.column).items():
            print(f"{path}  {name:>{width}}: n {r['n']}  tau {r['kendall_tau']:+.3f}  rho {r['spearman_rho']:+.3f}  "
                  f"P@5% {r['precision_top5pct']:.2f}  P@10% {r['precision_top10pct']:.2f}  "
                  f"top-1 true rank {r['top1_true_rank']:g}  regret {r['top1_regret']:.4f}")


if __name__ == "__main__":
    main()
