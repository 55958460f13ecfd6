"""A plain-numpy simulation of the strategies' local search on the NAS-Bench-201 table, fast
enough for 1,000 tuning seeds per setting (the jitted strategies take minutes for 20): how the
local-search defaults (docs/strategies.md) were compared. Fitness `cifar10-val`, reported `cifar10-test` of
the best-by-validation cell after 100 and 300 queries; seeds from 100 on, never the reported 0-19.

    PYTHONPATH=. python experiments/measured/strategies_nb201/local_search_simulation.py [SEEDS]

Each climb starts from the best of 10 fresh uniform cells, evaluates the best cell's unevaluated
neighbours in random order and restarts when none is left or 24 results came in without
improving on it (`strategies.hill_climb.local_search_over`). `one_per_function` counts a cell as
evaluated when one computing the same function was (`space.canonical`); `perturb` > 0 starts each
later climb from the last optimum with that many decisions changed (iterated local search).
"""

import sys

import numpy as np

from strategies.archs import enumerate_all, neighbours, radix_strides
from strategies.benchmarks import tabular
from supernet import spaces

SPACE = spaces.get("nas_bench_201")
CELLS = enumerate_all(SPACE.num_choices)
STRIDES = radix_strides(SPACE.num_choices)
TABLE = tabular.TabularObjective(tabular.NB201_ACCURACY_CSV, SPACE, "cifar10-val")
VAL, TEST = TABLE.metric(CELLS, "cifar10-val"), TABLE.metric(CELLS, "cifar10-test")
FUNCTION = np.asarray(SPACE.canonical(CELLS)) @ STRIDES  # a number per function
# NEIGHBOURS[c]: the numbers of cell c's one-decision neighbours, in `strategies.archs.neighbours`' order.
NEIGHBOURS = (np.asarray(neighbours(CELLS, SPACE.num_choices)).reshape(len(CELLS), -1, CELLS.shape[1])
              @ STRIDES).tolist()


def perturbed(cell, changes, rng):
    arch = CELLS[cell].copy()
    for d in rng.choice(len(arch), changes, replace=False):
        arch[d] = (arch[d] + rng.integers(1, SPACE.num_choices[d])) % SPACE.num_choices[d]
    return int(arch @ STRIDES)


def search(seed, budget=300, one_per_function=True, num_initial=10, patience=24, perturb=0, choose=None,
           after_first_sample=None):
    """`choose(fresh, queried, best)`: the next neighbour to query, or None to end the climb (default:
    a uniform one); `after_first_sample(queried, seen)`: a cell to query after the first initial
    sample, or None. For variants such as `ridge_guided_simulation.py`."""
    rng = np.random.default_rng(seed)
    key = FUNCTION if one_per_function else np.arange(len(CELLS))
    seen, queried = set(), []

    def query(cell):
        seen.add(key[cell])
        queried.append(cell)

    next_start = None
    while len(queried) < budget:
        start = len(queried)
        if next_start is not None:
            query(next_start)
        while len(queried) < budget and len(queried) - start < num_initial and next_start is None:
            cell = int(rng.integers(len(CELLS)))
            if key[cell] not in seen:
                query(cell)
        if after_first_sample is not None and start == 0 and len(queried) < budget:
            cell = after_first_sample(queried, seen)
            if cell is not None:
                query(cell)
        while len(queried) < budget:
            best = max(queried[start:], key=lambda c: VAL[c])
            fresh = [c for c in NEIGHBOURS[best] if key[c] not in seen]
            if not fresh or len(queried) - 1 - queried.index(best) >= patience:
                break
            cell = fresh[rng.integers(len(fresh))] if choose is None else choose(fresh, queried, best)
            if cell is None:
                break
            query(cell)
        starts = [perturbed(best, perturb, rng) for _ in range(50)] if perturb and len(queried) < budget else []
        next_start = next((c for c in starts if key[c] not in seen), None)
    return [TEST[max(queried[:b], key=lambda c: VAL[c])] for b in (100, 300)]


if __name__ == "__main__":
    seeds = range(100, 100 + int(sys.argv[1] if len(sys.argv) > 1 else 1000))
    for options in ({"one_per_function": False}, {}, {"patience": 12}, {"patience": 16}, {"num_initial": 3},
                    {"perturb": 2}, {"perturb": 3}, {"perturb": 4}):
        result = np.array([search(s, **options) for s in seeds])
        mean, error = result.mean(0), result.std(0) / np.sqrt(len(result))
        print(f"{options or 'default'}: test at 100 / 300 queries {mean[0]:.3f} / {mean[1]:.3f} "
              f"(+- {error[0]:.3f} / {error[1]:.3f})")
