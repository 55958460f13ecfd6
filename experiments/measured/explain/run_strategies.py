"""How well each strategy's own history explains the space: every strategy (default options)
searches the 12-epoch NAS-Bench-201 table for 100 queries (fitness `cifar10-val`) on 20 seeds;
`strategies.explain` is fitted on each history and compared with the whole table's truth
(`strategies.explanation.agreement_with_table`): effects Pearson, importances Spearman.

    python experiments/measured/explain/run_strategies.py --out experiments/measured/explain

Writes results.json (per seed and summarised), and the pictures of one history (random search,
seed 0: random_seed0_effects.png, random_seed0_importance.png), of the same for local search
(local_seed0_effects.png) and of the whole table's truth (table_effects.png).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))

import strategies  # noqa: E402
from strategies import explanation  # noqa: E402
from strategies.benchmarks import tabular  # noqa: E402
from supernet import plots, records, spaces  # noqa: E402
from supernet.jobs.strategies_nb201 import run_search, single_threaded_blas  # noqa: E402

NAMES = ("random", "evolution", "bayesian", "reinforce", "autoencoder", "local")


def spread(values) -> dict:
    values = np.asarray(values)
    return {"mean": float(values.mean()), "std": float(values.std()), "min": float(values.min()),
            "max": float(values.max())}


def effects_scale(effects, truth) -> float:
    """The least-squares slope of a history's effects on the table's: 1 when they are on the
    table's scale, below 1 when shrunk."""
    known = ~np.isnan(truth)
    return float(np.sum(effects[known] * truth[known]) / np.sum(truth[known] ** 2))


def truth_report(space, table, column) -> explanation.Explanation:
    """The whole table's truth as an `Explanation` (no interval), to draw it like a history's."""
    effects, shares = explanation.table_truth(space.options, table.archs, table.values(column))
    return explanation.Explanation(effects=effects, effects_low=effects, effects_high=effects, importance=shares,
                                   interactions=[], decision_names=tuple(space.decision_names),
                                   options=tuple(space.options), num_results=len(table))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="experiments/measured/explain")
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--budget", type=int, default=100)
    parser.add_argument("--strategies", default=",".join(NAMES))
    args = parser.parse_args()
    provenance = records.provenance()   # before the pictures are written, which would mark the checkout dirty
    column = "cifar10-val"
    space = spaces.get("nas_bench_201")
    table = tabular.nas_bench_201(space, column)
    seeds = list(range(args.seeds))
    truth = truth_report(space, table, column)
    per_strategy = {}
    for name in args.strategies.split(","):
        tic = time.perf_counter()
        with single_threaded_blas():
            queried = run_search(strategies.get(name, space), table, seeds, args.budget)
        search_s = time.perf_counter() - tic
        rows = []
        for seed, archs in zip(seeds, queried):
            fitness = table(archs)
            report = strategies.explain(space, archs, fitness, seed=seed)
            agreement = explanation.agreement_with_table(report, table.archs, table.values(column))
            rows.append({"seed": seed, "effects_pearson": agreement["effects_pearson"],
                         "importance_spearman": agreement["importance_spearman"],
                         "effects_scale": effects_scale(report.effects, truth.effects),
                         "importance": dict(zip(report.decision_names, report.importance.tolist())),
                         "distinct": len(np.unique(archs, axis=0)), "ranking": report.ranking(),
                         "fitness_std": float(np.std(fitness))})
            if seed == seeds[0] and name in ("random", "local"):
                plots.effects(report, os.path.join(args.out, f"{name}_seed{seed}_effects.png"),
                              title=f"{name} search, seed {seed}: effect of each option on {column} (95% interval), "
                                    f"from its first {args.budget} queries")
                if name == "random":
                    plots.importance(report, os.path.join(args.out, f"{name}_seed{seed}_importance.png"))
        per_strategy[name] = {"effects_pearson": spread([r["effects_pearson"] for r in rows]),
                              "importance_spearman": spread([r["importance_spearman"] for r in rows]),
                              "effects_scale": spread([r["effects_scale"] for r in rows]),
                              "mean_importance": {d: float(np.mean([r["importance"][d] for r in rows]))
                                                  for d in space.decision_names},
                              "search_s": round(search_s, 1), "runs": rows}
        s = per_strategy[name]
        print(f"{name:12s} effects Pearson {s['effects_pearson']['mean']:.2f} +- {s['effects_pearson']['std']:.2f}  "
              f"importance Spearman {s['importance_spearman']['mean']:.2f} +- {s['importance_spearman']['std']:.2f}"
              f"  effects scale {s['effects_scale']['mean']:.2f}  ({search_s:.0f} s search)", flush=True)
    plots.effects(truth, os.path.join(args.out, "table_effects.png"),
                  title=f"the whole table ({len(table)} cells): each option's mean {column}, centred per decision")
    records.write_json(args.out, "results.json", {
        "what": "agreement of each strategy's explanation with the whole 12-epoch table",
        "command": "python experiments/measured/explain/run_strategies.py " + " ".join(sys.argv[1:]),
        "fitness_column": column, "budget": args.budget, "seeds": seeds,
        "table_ranking": truth.ranking(), "table_importance": dict(zip(truth.decision_names, truth.importance.tolist())),
        "table_effects": {name: dict(zip(opts, np.round(truth.effects[d], 3).tolist()))
                          for d, (name, opts) in enumerate(zip(truth.decision_names, truth.options))},
        "strategies": per_strategy, "provenance": provenance})


if __name__ == "__main__":
    main()
