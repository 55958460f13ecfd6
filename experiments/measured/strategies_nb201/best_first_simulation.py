"""The numpy local-search simulation with the kept surrogate (`ridge_guided_simulation.py`'s
"counts" features, the strategies' `climb_order="linear"`), where the next query is the
surrogate's best among the fresh neighbours of the `top` best results since the restart instead
of the best one's alone (a best-first search; `weight` points are taken off the prediction per
place a parent ranks below the best): the fifth attempt at the best-at-100 goal, not kept
(README). Reported: `cifar10-test` of the best-by-validation cell after 100 queries, mean and
standard error over tuning seeds.

    PYTHONPATH=. OMP_NUM_THREADS=1 python experiments/measured/strategies_nb201/best_first_simulation.py FIRST_SEED SEEDS

A climb restarts as in `local_search_simulation.py`: when the best result's own neighbours are
exhausted or 24 results came in without improving on it.
"""

import sys

import numpy as np

sys.path.insert(0, __file__.rsplit("/", 1)[0])
import ridge_guided_simulation as rg  # noqa: E402

sim = rg.sim
CELLS, VAL, TEST, FUNCTION, NEIGHBOURS = sim.CELLS, sim.VAL, sim.TEST, sim.FUNCTION, sim.NEIGHBOURS


def fresh_neighbours(parents, seen):
    """The unevaluated neighbours of `parents` (best first), each with its parent's place."""
    cells, places = [], []
    for place, parent in enumerate(parents):
        for cell in NEIGHBOURS[parent]:
            if FUNCTION[cell] not in seen and cell not in cells:
                cells.append(cell)
                places.append(place)
    return np.asarray(cells), np.asarray(places)


class History:
    """The queried cells in order and the functions seen (a cell counts as evaluated when one
    computing the same function was)."""

    def __init__(self):
        self.seen, self.queried = set(), []

    def query(self, cell):
        self.seen.add(FUNCTION[cell])
        self.queried.append(int(cell))

    def fill(self, rng, count, budget):
        """Queries `count` fresh uniform cells (a climb's start), within the budget."""
        start = len(self.queried)
        while len(self.queried) < budget and len(self.queried) - start < count:
            cell = int(rng.integers(len(CELLS)))
            if FUNCTION[cell] not in self.seen:
                self.query(cell)


def search(seed, top=1, weight=0.0, budget=100, num_initial=10, patience=24):
    rng = np.random.default_rng(seed)
    history = History()
    seen, queried, query = history.seen, history.queried, history.query
    while len(queried) < budget:
        start = len(queried)
        history.fill(rng, num_initial, budget)
        while len(queried) < budget:
            ranked = sorted(queried[start:], key=lambda c: -VAL[c])
            best = ranked[0]
            if len(queried) - 1 - queried.index(best) >= patience or not len(fresh_neighbours([best], seen)[0]):
                break
            cells, places = fresh_neighbours(ranked[:top], seen)
            predicted = rg.ridge(queried, 100.0, "counts")(cells) - weight * places
            query(cells[int(np.argmax(predicted))])
    return TEST[max(queried, key=lambda c: VAL[c])]


if __name__ == "__main__":
    first, count = int(sys.argv[1]), int(sys.argv[2])
    for options in ({"top": 1}, {"top": 2}, {"top": 3}, {"top": 2, "weight": 0.5}, {"top": 3, "weight": 0.5},
                    {"top": 5, "weight": 0.3}):
        result = np.array([search(s, **options) for s in range(first, first + count)])
        print(f"{options}: test at 100 queries {result.mean():.3f} (+- {result.std() / np.sqrt(count):.3f})",
              flush=True)
