"""How the explanation's model was chosen, without looking at the column it is judged on.

Candidates: the ridge penalties of `strategies.explanation.Penalties` (decision, pair, option-count
and count-product terms; inf leaves a term out), fitted on the first n queries of a random search
(a seeded permutation of the table, what a random search without repeats queries) and compared with
the whole table's per-(decision, option) means (`table_truth`): effects Pearson, importance Spearman.

Chosen on the CIFAR-100 and ImageNet16-120 validation columns of the 12-epoch NAS-Bench-201 table
(seeds 100-259, n = 100): the candidate with the highest mean importance Spearman. Only then are
the chosen model and the previous one (decision and pair terms, 10 / 10) measured on the CIFAR-10
validation column, the one the explanation is judged on (seeds 0-19). Point estimates only (the
bootstrap intervals do not change the estimates).

    python experiments/measured/explain/tune_importance.py --out experiments/measured/explain/tuning.json
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))

from strategies import explanation  # noqa: E402
from strategies.benchmarks import tabular  # noqa: E402
from supernet import records, spaces  # noqa: E402

TUNING_COLUMNS = ("cifar100-val", "imagenet-val")
JUDGED_COLUMN = "cifar10-val"
TUNING_SEEDS = range(100, 260)
REPORTED_SEEDS = range(20)
PREVIOUS = explanation.Penalties(main=10.0, pair=10.0, count=np.inf, count_pair=np.inf)
INF = np.inf


def candidates() -> list:
    """Every `Penalties` tried: a grid over the four terms' penalties."""
    grid = itertools.product((5.0, 10.0, 20.0), (5.0, 10.0, 20.0, INF), (0.3, 1.0, 3.0, INF), (0.3, 1.0, 3.0, 10.0, INF))
    return [explanation.Penalties(*penalties) for penalties in grid]


def label(penalties) -> str:
    """A candidate's penalties, e.g. 'main 10, pair 10, count 1, count_pair 1' (inf: left out)."""
    return ", ".join(f"{name} {value:g}" for name, value in penalties._asdict().items())


class Column:
    """One fitness column of the table with its truth, to score explanations against."""

    def __init__(self, space, table, name):
        self.archs = table.archs
        self.fitness = table.values(name).astype(np.float64)
        self.truth, self.shares = explanation.table_truth(space.options, self.archs, self.fitness)

    def score(self, space, penalties, seed, queries) -> tuple[float, float]:
        """(effects Pearson, importance Spearman) of one random search's first `queries` rows."""
        pick = np.random.default_rng(seed).choice(len(self.archs), queries, replace=False)
        archs, fitness = self.archs[pick], self.fitness[pick]
        num_choices = tuple(int(k) for k in space.num_choices)
        groups = explanation.option_groups(space.options)
        effects = explanation._effects(archs, fitness, explanation._kernel(archs, num_choices, groups, penalties),
                                       num_choices, groups, penalties)
        importance = explanation._importance(fitness, effects)
        known = ~np.isnan(self.truth)
        ranks = lambda v: np.argsort(np.argsort(v))
        return (float(np.corrcoef(effects[known], self.truth[known])[0, 1]),
                float(np.corrcoef(ranks(importance), ranks(self.shares))[0, 1]))


def measure(space, columns, penalties, seeds, queries) -> dict:
    """Mean effects Pearson and importance Spearman (with its standard error) over columns x seeds,
    and each column's means."""
    found = {name: np.asarray([column.score(space, penalties, seed, queries) for seed in seeds])
             for name, column in columns.items()}
    every = np.concatenate(list(found.values()))
    return {"effects_pearson_mean": float(every[:, 0].mean()), "importance_spearman_mean": float(every[:, 1].mean()),
            "importance_spearman_se": float(every[:, 1].std() / np.sqrt(len(every))),
            "per_column": {name: {"effects_pearson_mean": float(f[:, 0].mean()),
                                  "importance_spearman_mean": float(f[:, 1].mean())} for name, f in found.items()}}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="experiments/measured/explain/tuning.json")
    args = parser.parse_args()
    space = spaces.get("nas_bench_201")
    table = tabular.nas_bench_201(space, JUDGED_COLUMN)
    tuning = {name: Column(space, table, name) for name in TUNING_COLUMNS}
    rows = []
    with explanation._one_blas_thread():
        for penalties in candidates():
            rows.append({"penalties": label(penalties), "queries": 100,
                         "tuning": measure(space, tuning, penalties, TUNING_SEEDS, 100)})
            print(f"{label(penalties):55s} tuning P {rows[-1]['tuning']['effects_pearson_mean']:.3f} "
                  f"S {rows[-1]['tuning']['importance_spearman_mean']:.3f}", flush=True)
        best = max(range(len(rows)), key=lambda i: rows[i]["tuning"]["importance_spearman_mean"])
        chosen = candidates()[best]
        print(f"chosen: {label(chosen)}; the library's defaults: {label(explanation.PENALTIES)}", flush=True)
        judged = {JUDGED_COLUMN: Column(space, table, JUDGED_COLUMN)}
        final = []
        for name, penalties in (("chosen", chosen), ("previous", PREVIOUS)):
            for queries in (50, 100, 200):
                final.append({"model": name, "penalties": label(penalties), "queries": queries,
                              "tuning": measure(space, tuning, penalties, TUNING_SEEDS, queries),
                              "judged": measure(space, judged, penalties, REPORTED_SEEDS, queries)})
                print(f"{name:9s} n={queries:3d}  tuning P {final[-1]['tuning']['effects_pearson_mean']:.3f} "
                      f"S {final[-1]['tuning']['importance_spearman_mean']:.3f}  |  {JUDGED_COLUMN} P "
                      f"{final[-1]['judged']['effects_pearson_mean']:.3f} S "
                      f"{final[-1]['judged']['importance_spearman_mean']:.3f}", flush=True)
    records.write_json(os.path.dirname(args.out) or ".", os.path.basename(args.out), {
        "command": "python experiments/measured/explain/tune_importance.py " + " ".join(sys.argv[1:]),
        "tuning_columns": list(TUNING_COLUMNS), "judged_column": JUDGED_COLUMN,
        "seeds": {"tuning": [TUNING_SEEDS.start, TUNING_SEEDS.stop - 1],
                  "judged": [REPORTED_SEEDS.start, REPORTED_SEEDS.stop - 1]},
        "rule": "highest mean importance Spearman over the tuning columns and seeds at 100 queries",
        "chosen": label(chosen), "library_defaults": label(explanation.PENALTIES),
        "library_defaults_are_the_chosen": chosen == explanation.PENALTIES,
        "candidates": rows, "chosen_and_previous": final,
        "table_importance": {name: dict(zip(space.decision_names, column.shares.tolist()))
                             for name, column in {**tuning, **judged}.items()},
        "provenance": records.provenance()})


if __name__ == "__main__":
    main()
