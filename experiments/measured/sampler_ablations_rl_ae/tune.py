"""One strategy setting on the NAS-Bench-201 12-epoch table: the jitted strategy, vmapped over
seeds, with `cifar10-val` as fitness; prints the mean `cifar10-val` and `cifar10-test` accuracy of
the best-by-validation cell at 100 and 300 queries, and on how many seeds the query sequence is
identical to `local`'s (and to each strategy named in COMPARE). Writes results.json if OUT is given.

    PYTHONPATH=. python experiments/measured/sampler_ablations_rl_ae/tune.py NAME 'OPTIONS' FIRST_SEED SEEDS BUDGET [OUT]
    # e.g. reinforce "{'learning_rate': 0.0}" 100 20 300
"""

import ast
import json
import os
import sys

import numpy as np

import strategies
from strategies.benchmarks import tabular
from supernet import spaces
from supernet.jobs import strategies_nb201

COMPARE = os.environ.get("COMPARE", "local").split(",")

name, options = sys.argv[1], ast.literal_eval(sys.argv[2])
first, count, budget = (int(a) for a in sys.argv[3:6])
out = sys.argv[6] if len(sys.argv) > 6 else None
space = spaces.get("nas_bench_201")
table = tabular.TabularObjective(tabular.NB201_ACCURACY_CSV, space, "cifar10-val")
objective = strategies_nb201.table_objective(table, "cifar10-val")
seeds = list(range(first, first + count))


def search(strategy_name, strategy_options):
    with strategies_nb201.single_threaded_blas():  # as the comparison job runs them
        return strategies_nb201.run_search(strategies.get(strategy_name, space, **strategy_options),
                                           objective, seeds, budget)


queried = search(name, options)
flat = queried.reshape(-1, space.num_decisions)
val, test = (table.metric(flat, column).reshape(queried.shape[:2]) for column in ("cifar10-val", "cifar10-test"))
val_curve = np.maximum.accumulate(val, axis=1)
test_curve = strategies_nb201.best_so_far(val, test)
result = {"strategy": name, "options": repr(options), "seeds": [first, first + count - 1], "budgets": {}}
for b in (100, 300):
    if b <= budget:
        v, t = val_curve[:, b - 1], test_curve[:, b - 1]
        result["budgets"][b] = {"val_mean": float(v.mean()), "test_mean": float(t.mean()), "test_std": float(t.std()),
                                "test_per_seed": [float(x) for x in t]}
        print(f"{name} {options} at {b} queries: val {v.mean():.3f}, test {t.mean():.3f} +- {t.std():.3f} "
              f"(se {t.std() / np.sqrt(count):.3f})")
result["identical_sequences"] = {}
for other in [c for c in COMPARE if c and c != name]:
    same = int(np.sum(np.all(search(other, {}) == queried, axis=(1, 2))))
    result["identical_sequences"][other] = same
    print(f"identical query sequences with {other}: {same} of {count} seeds")
if out:
    with open(out, "w") as f:
        json.dump(result, f, indent=1)
