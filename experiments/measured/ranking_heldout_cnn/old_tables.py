"""Can the default ranking recipe be improved on the old tables, without training anything new?

On the two NAS-Bench-201 tables the default recipe was chosen on (the official-task and the
noise-2 MNIST-1D tables, 300 cells each), this rank-averages the default recipe's saved supernet
scores (two supernet seeds per table) with the saved training-free scores of the same 300 cells
(synflow, SNIP, NASWOT, params; from another ranking run of the same table: they do not depend on
the supernet), and compares each hybrid with the default fitness, the supernet's loss alone:
Kendall tau against the table and the tau margin with a bootstrap 95% interval
(`supernet.ranking.bootstrap_margin`, 2,000 resamples, seed 0).

The rule, fixed before looking: a hybrid replaces the default only if its margin over the loss
alone has an interval above 0 on both tables with both supernet seeds; only such a hybrid would
then be scored once on the held-out CNN table. Writes old_tables.json next to this file.

    python -m experiments.measured.ranking_heldout_cnn.old_tables
"""

from __future__ import annotations

import json
import os

import numpy as np

from supernet import ranking

HERE = os.path.dirname(os.path.abspath(__file__))
MEASURED = os.path.dirname(HERE)
# table -> (its training-free run, the default recipe's runs: supernet seeds 0 and 1)
TABLES = {
    "strategies/benchmarks/ground_truth_nb201_mnist1d.csv": (
        "ranking_options/uniform3000.json",
        ("ranking_options/distinct10000_wd0.01.json", "ranking_options/distinct10000_wd0.01_seed1.json")),
    "strategies/benchmarks/ground_truth_nb201_mnist1d_noise2.csv": (
        "ranking_noise2/uniform10000.json",
        ("ranking_noise2/distinct_wd0.01.json", "ranking_noise2/distinct_wd0.01_s1.json")),
}
DEFAULT = "supernet_loss"
TRAINING_FREE = ("synflow", "snip", "naswot", "params")
HYBRIDS = tuple(f"{DEFAULT}+{proxy}" for proxy in TRAINING_FREE) + ("supernet+synflow", "supernet_loss+params+synflow")


def _load(name: str) -> dict:
    with open(os.path.join(MEASURED, name)) as f:
        return json.load(f)


def _aligned(run: dict, rows: list[dict]) -> dict:
    where = {a: i for i, a in enumerate(run["archs"])}
    return {name: np.asarray(r["scores"], np.float64)[[where[row["arch"]] for row in rows]]
            for name, r in run["rankers"].items()}


def score_table(table: str, training_free_run: str, supernet_runs: tuple) -> dict:
    rows = ranking.read_rows(table)
    truth = np.asarray([r["test_accuracy_mean"] for r in rows])
    free = _aligned(_load(training_free_run), rows)
    out = {}
    for run_name in supernet_runs:
        pool = {**{p: free[p] for p in TRAINING_FREE}, **_aligned(_load(run_name), rows)}
        entry = {name: {"kendall_tau": ranking.kendall_tau(pool[name], truth)} for name in (DEFAULT, "supernet")}
        for hybrid in HYBRIDS:
            scores = ranking.rank_average(*(pool[part] for part in hybrid.split("+")))
            entry[hybrid] = {"kendall_tau": ranking.kendall_tau(scores, truth),
                             f"margin_over_{DEFAULT}": ranking.bootstrap_margin(scores, pool[DEFAULT], truth)}
        out[run_name] = entry
    return out


def main() -> None:
    results = {table: score_table(table, *runs) for table, runs in TABLES.items()}
    adopted = [h for h in HYBRIDS
               if all(run[h][f"margin_over_{DEFAULT}"]["low"] > 0 for table in results.values() for run in table.values())]
    for table, runs in results.items():
        print(f"== {table}")
        for run_name, entry in runs.items():
            print(f"  {run_name}: {DEFAULT} tau {entry[DEFAULT]['kendall_tau']:+.3f}, supernet (accuracy) "
                  f"{entry['supernet']['kendall_tau']:+.3f}")
            for hybrid in HYBRIDS:
                m = entry[hybrid][f"margin_over_{DEFAULT}"]
                print(f"    {hybrid:>30}: tau {entry[hybrid]['kendall_tau']:+.3f}  over {DEFAULT} "
                      f"{m['margin']:+.3f} [{m['low']:+.3f}, {m['high']:+.3f}]")
    print(f"adopted (interval above 0 on both tables, both seeds): {adopted or 'none'}")
    with open(os.path.join(HERE, "old_tables.json"), "w") as f:
        json.dump({"rule": "adopt a hybrid only if its tau margin over supernet_loss has a bootstrap 95% interval "
                           "above 0 on both tables with both supernet seeds",
                   "adopted": adopted, "tables": results}, f, indent=2)


if __name__ == "__main__":
    main()
