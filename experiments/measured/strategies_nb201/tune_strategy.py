"""How one strategy's setting was compared on tuning seeds (2026-12-03): the jitted strategy,
vmapped over seeds, against the NAS-Bench-201 table; prints the mean `cifar10-test` accuracy of
the best-by-validation cell at 100 (and 300) queries, and how many seeds queried the reference cell.

    PYTHONPATH=. python experiments/measured/strategies_nb201/tune_strategy.py NAME 'OPTIONS' FIRST_SEED SEEDS BUDGET
    # e.g. reinforce "{'climb_starts': 'policy'}" 100 200 100

Evolution's settings (2026-12-04) ran through `evolution_tuning/sweep.py`, once per line of its
`configs*.txt`; README.md, "How evolution's defaults were chosen", has the figures.

The bayesian settings were once run in chunks of 50 seeds (FIRST_SEED 100, 150, 200, 250):
vmapped over 200 seeds at once, the linear mean's LAPACK solve hung jaxlib 0.10's CPU runtime.
`strategies.surrogate.spd_solve` replaced it; the defaults then ran on all 200 at once.
"""

import ast
import sys

import numpy as np

import strategies
from strategies.benchmarks import tabular
from supernet import spaces
from supernet.jobs import strategies_nb201

name, options = sys.argv[1], ast.literal_eval(sys.argv[2])
first, count, budget = (int(a) for a in sys.argv[3:6])
space = spaces.get("nas_bench_201")
table = tabular.TabularObjective(tabular.NB201_ACCURACY_CSV, space, "cifar10-val")
with strategies_nb201.single_threaded_blas():  # as the comparison job runs them
    queried = strategies_nb201.run_search(strategies.get(name, space, **options),
                                            strategies_nb201.table_objective(table, "cifar10-val"),
                                            list(range(first, first + count)), budget)
flat = queried.reshape(-1, space.num_decisions)
val, test = (table.metric(flat, column).reshape(queried.shape[:2]) for column in ("cifar10-val", "cifar10-test"))
curve = strategies_nb201.best_so_far(val, test)
# The reference cell is the table's best by validation: how many seeds queried it by each budget.
found = np.maximum.accumulate(val >= table.values("cifar10-val").astype(val.dtype).max(), axis=1)
for b in (100, 300):
    if b <= budget:
        print(f"{name} {options} at {b} queries: {curve[:, b - 1].mean():.3f} +- {curve[:, b - 1].std() / np.sqrt(count):.3f}, "
              f"{found[:, b - 1].sum()} of {count} seeds queried the reference cell")
