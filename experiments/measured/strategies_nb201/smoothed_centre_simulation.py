"""The numpy local-search simulation with the kept surrogate (`ridge_guided_simulation.py`'s
"counts" features, the strategies' `climb_order="linear"`), where a climb continues from the
result with the best blend of its validation accuracy and the surrogate's prediction, `(1 - blend)
* accuracy + blend * prediction`, instead of the best accuracy (a lucky validation score would
otherwise hold the climb at a cell whose neighbours cannot beat it): the sixth attempt at the
best-at-100 goal, not kept (README). The returned cell is still the best by validation. Reported:
`cifar10-test` of that cell after 100 queries, mean and standard error over tuning seeds.

    PYTHONPATH=. OMP_NUM_THREADS=1 python experiments/measured/strategies_nb201/smoothed_centre_simulation.py FIRST_SEED SEEDS BLENDS

BLENDS: comma-separated, e.g. 0,0.3 (0 is the kept climb). Restarts as in
`local_search_simulation.py`, counted from the climb's centre.
"""

import sys

import numpy as np

sys.path.insert(0, __file__.rsplit("/", 1)[0])
import best_first_simulation as bf  # noqa: E402
import ridge_guided_simulation as rg  # noqa: E402

VAL = rg.sim.VAL


def search(seed, blend=0.0, budget=100, num_initial=10, patience=24):
    def next_cell(queried, seen, start):
        model = rg.ridge(queried, 100.0, "counts")
        climb = np.asarray(queried[start:])
        score = (1 - blend) * VAL[climb] + blend * model(climb) if blend else VAL[climb]
        centre = int(climb[int(np.argmax(score))])
        cells = bf.fresh_neighbours([centre], seen)[0]
        if bf.stale(queried, centre, patience) or not len(cells):
            return None
        return cells[int(np.argmax(model(cells)))]
    return bf.climbs(seed, next_cell, budget, num_initial)


if __name__ == "__main__":
    first, count = int(sys.argv[1]), int(sys.argv[2])
    for blend in [float(b) for b in sys.argv[3].split(",")]:
        result = np.array([search(s, blend=blend) for s in range(first, first + count)])
        print(f"blend {blend}: {result.mean():.3f} (+- {result.std() / np.sqrt(count):.3f})", flush=True)
