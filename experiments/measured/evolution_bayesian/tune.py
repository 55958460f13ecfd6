"""Scores strategy settings on the NAS-Bench-201 12-epoch table: the jitted strategy, vmapped over
seeds, fitness `cifar10-val`; prints (and appends to a JSON-lines file) the mean `cifar10-val` and
`cifar10-test` accuracy of the best-by-validation cell at 100 and 300 queries, and how many seeds
made the same query sequence as the restarted local search (`local`) at those budgets.

    PYTHONPATH=. python experiments/measured/evolution_bayesian/tune.py OUT.jsonl FIRST_SEED SEEDS NAME 'OPTIONS' [NAME 'OPTIONS' ...]
    # e.g. ... tune.jsonl 100 50 evolution "{'population_size': 20}" evolution "{'crossover_rate': 0.0}"

Settings were chosen on validation accuracy over seeds from 100 on only; seeds 0-19 were run once
with the chosen defaults (and with each mechanism switched off, for the ablation).
"""

import ast
import json
import sys
import time

import jax.numpy as jnp
import numpy as np

import strategies
from strategies.benchmarks import tabular
from supernet import spaces
from supernet.jobs import strategies_nb201 as job

BUDGETS = (100, 300)


def search(space, table, name, options, seeds):
    strategy = strategies.get(name, space, **options)
    queried = job.run_search(strategy, job.table_objective(table, "cifar10-val"), seeds, BUDGETS[-1])
    flat = queried.reshape(-1, space.num_decisions)
    canonical = np.asarray(space.canonical(jnp.asarray(flat))).reshape(queried.shape)
    val, test = (table.metric(flat, c).reshape(queried.shape[:2]) for c in ("cifar10-val", "cifar10-test"))
    return canonical, job.best_so_far(val, val), job.best_so_far(val, test)


def main(out, first, count, pairs):
    space = spaces.get("nas_bench_201")
    table = tabular.TabularObjective(tabular.NB201_ACCURACY_CSV, space, "cifar10-val")
    seeds = list(range(first, first + count))
    with job.single_threaded_blas():
        cache = f"{out}.local_{first}_{count}.npy"  # local's queries, computed once per seed range
        try:
            local = np.load(cache)
        except FileNotFoundError:
            local, _, _ = search(space, table, "local", {}, seeds)
            np.save(cache, local)
        for name, options in pairs:
            start = time.time()
            canonical, val, test = search(space, table, name, options, seeds)
            same = job.identical_query_sequences({"local": local, name: canonical}, BUDGETS)[f"local vs {name}"]
            row = {"strategy": name, "options": repr(options), "seeds": [first, first + count - 1],
                   "seconds": round(time.time() - start, 1), "identical_with_local": same}
            for b in BUDGETS:
                row[f"val_{b}"] = round(float(val[:, b - 1].mean()), 3)
                row[f"test_{b}"] = round(float(test[:, b - 1].mean()), 3)
                row[f"test_{b}_se"] = round(float(test[:, b - 1].std() / np.sqrt(count)), 3)
            print(json.dumps(row), flush=True)
            with open(out, "a") as f:
                f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    args = sys.argv[4:]
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]),
         [(args[i], ast.literal_eval(args[i + 1])) for i in range(0, len(args), 2)])
