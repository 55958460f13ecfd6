"""Scores saved `ranking` job results (each ranker's scores of the CNN space's 150 sampled networks)
against the held-out table: every ranker's report, the table's noise ceiling, and each ranker's
Kendall-tau margin over the parameter count with a bootstrap 95% interval (and each later run's
supernet rankers' margin over the first run's loss ranker). With `--training-free`, a run of
training-free rankers on the same sample (NASWOT) is scored too, and its scores join each supernet
run's in the hybrids of `JOINED` (the rank average the `ranking` job computes, without training a
supernet again). Refuses a run made on another task than the table's. Writes results.json and the
scatter plots next to this file.

    python -m experiments.measured.ranking_heldout_cnn.score experiments/measured/ranking_heldout_cnn/default.json \
        experiments/measured/ranking_heldout_cnn/automodel.json \
        --training-free experiments/measured/ranking_heldout_cnn/training_free.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess

import ml_collections
import numpy as np

from supernet import ground_truth, ranking
from supernet.jobs import task_of

HERE = os.path.dirname(os.path.abspath(__file__))
TABLE = "strategies/benchmarks/ground_truth_cnn_mnist1d.csv"
BASELINE = "params"
# Hybrids of a supernet run's scores and the training-free run's: each against the supernet ranker
# it adds to (does NASWOT help the supernet?). supernet+params+naswot is the quickstart's fitness.
JOINED = {"supernet_loss+naswot": "supernet_loss", "supernet+params+naswot": "supernet"}
SCATTERED = ("supernet", "supernet_loss", "naswot")


def _load(path: str) -> dict:
    with open(path) as f:
        return json.load(f)


def joined_scores(saved: dict, training_free: dict) -> dict:
    """The `JOINED` hybrids' scores (`ranking.rank_average`) from a supernet run's and a
    training-free run's saved scores of the same architectures."""
    if saved["archs"] != training_free["archs"]:
        raise ValueError("the training-free run scored other architectures than the supernet run; run both with "
                         "the same ground_truth.score_sample and seed.")
    pool = {name: r["scores"] for run in (training_free, saved) for name, r in run["rankers"].items()}
    return {name: ranking.rank_average(*(pool[c] for c in name.split("+"))).tolist() for name in JOINED}


def score_run(path: str, rows: list[dict], table: str, seed: int, training_free: dict | None = None) -> dict:
    """One saved run's reports against `rows` (with the `JOINED` hybrids when `training_free` is
    given), each ranker's margin over params, and each joined hybrid's over its supernet ranker."""
    saved = _load(path)
    ground_truth.check_task(task_of(ml_collections.ConfigDict(saved["config"])), table, "(none)")
    scores = {name: r["scores"] for name, r in saved["rankers"].items()}
    if training_free is not None:
        scores.update(joined_scores(saved, training_free))
    reports = ranking.rescore(saved["archs"], scores, rows)
    where = {a: i for i, a in enumerate(saved["archs"])}
    at = [where[r["arch"]] for r in rows]
    truth = np.asarray([r["test_accuracy_mean"] for r in rows])
    margins, over_supernet = {}, {}
    for name in scores:
        if name != BASELINE:
            margins[name] = ranking.bootstrap_margin(np.asarray(scores[name])[at], np.asarray(scores[BASELINE])[at],
                                                     truth, seed=seed)
        if name in JOINED:
            over_supernet[name] = ranking.bootstrap_margin(np.asarray(scores[name])[at],
                                                           np.asarray(scores[JOINED[name]])[at], truth, seed=seed)
        if name in SCATTERED:
            label = os.path.splitext(os.path.basename(path))[0]
            reports[name]["scatter_png"] = os.path.basename(ranking.draw_scatter(
                np.asarray(scores[name])[at], truth, reports[name], os.path.join(HERE, f"{label}_{name}.png"),
                xlabel=name, ylabel="test accuracy, mean of 2 seeds (table)", name=name))
    trained = any(name.startswith("supernet") for name in saved["rankers"])
    out = {"file": os.path.basename(path), "reports": reports,
           "supernet_recipe": saved["config"]["supernet"] if trained else "none (no supernet ranker)",
           f"tau_margin_over_{BASELINE}": margins}
    if over_supernet:
        out["tau_margin_over_the_supernet_ranker_joined"] = over_supernet
    return out


def _scores_on(path: str, name: str, rows: list[dict]) -> np.ndarray:
    saved = _load(path)
    where = {a: i for i, a in enumerate(saved["archs"])}
    return np.asarray(saved["rankers"][name]["scores"])[[where[r["arch"]] for r in rows]]


def _between(path: str, first: str, name: str, rows: list[dict], seed: int) -> dict:
    truth = np.asarray([r["test_accuracy_mean"] for r in rows])
    return ranking.bootstrap_margin(_scores_on(path, name, rows), _scores_on(first, "supernet_loss", rows), truth,
                                    seed=seed)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="results.json files of the ranking job (config variant cnn)")
    parser.add_argument("--training-free", help="results.json of a ranking run of training-free rankers only "
                                                "(naswot among them) on the same sample; joins the supernet runs' "
                                                "scores in the JOINED hybrids")
    parser.add_argument("--table", default=TABLE)
    parser.add_argument("--seed", type=int, default=0, help="fixes the bootstrap resamples")
    args = parser.parse_args(argv)
    table = ground_truth.resolve_table(args.table)
    rows = ranking.read_rows(table)
    out = {"table": args.table, "rows": len(rows), "noise_ceiling": ranking.table_noise_ceiling(rows),
           "test_accuracy_range": [min(r["test_accuracy_mean"] for r in rows),
                                   max(r["test_accuracy_mean"] for r in rows)],
           "bootstrap": f"2,000 resamples of the {len(rows)} rows with replacement, percentile 95% interval, seed "
                        f"{args.seed}",
           "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                    cwd=HERE).stdout.strip(),
           "runs": {}}
    training_free = _load(args.training_free) if args.training_free else None
    paths = [*args.runs, *([args.training_free] if args.training_free else [])]
    for path in paths:
        run = score_run(path, rows, table, args.seed, training_free if path in args.runs else None)
        out["runs"][os.path.splitext(os.path.basename(path))[0]] = run
        print(f"== {path}")
        for name, r in run["reports"].items():
            m = run[f"tau_margin_over_{BASELINE}"].get(name)
            extra = f"  margin over params {m['margin']:+.3f} [{m['low']:+.3f}, {m['high']:+.3f}]" if m else ""
            j = run.get("tau_margin_over_the_supernet_ranker_joined", {}).get(name)
            extra += f", over {JOINED[name]} {j['margin']:+.3f} [{j['low']:+.3f}, {j['high']:+.3f}]" if j else ""
            print(f"  {name:>22}: tau {r['kendall_tau']:+.3f}  rho {r['spearman_rho']:+.3f}  "
                  f"P@10% {r['precision_top10pct']:.2f}  top-1 regret {r['top1_regret']:.4f}{extra}")
    # Each other run's supernet rankers against the first run's loss ranker (the default fitness).
    first = args.runs[0]
    out["tau_margin_over_first_run_supernet_loss"] = {
        os.path.splitext(os.path.basename(path))[0]: {
            name: _between(path, first, name, rows, args.seed) for name in ("supernet", "supernet_loss")}
        for path in args.runs[1:]}
    with open(os.path.join(HERE, "results.json"), "w") as f:
        json.dump(out, f, indent=2)
    print(f"wrote {os.path.join(HERE, 'results.json')}")


if __name__ == "__main__":
    main()
