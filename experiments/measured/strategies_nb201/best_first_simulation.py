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


def climbs(seed, next_cell, budget=100, num_initial=10, accept=None, queried=None):
    """Restarted climbs: each starts with `num_initial` fresh uniform cells (those `accept(cell,
    queried)` allows, when given, for up to 1,000 draws a cell), then queries
    `next_cell(queried, seen, start)` (`start`: where this climb's results begin in `queried`;
    `seen`: the functions evaluated, as a cell counts as evaluated when one computing the same
    function was) until it returns None. Returns the test accuracy of the best-by-validation cell
    after `budget` queries; `queried`, a list when given, receives the queries."""
    rng = np.random.default_rng(seed)
    seen, queried = set(), [] if queried is None else queried

    def query(cell):
        seen.add(FUNCTION[cell])
        queried.append(int(cell))

    while len(queried) < budget:
        start = len(queried)
        draws = 0
        while len(queried) < budget and len(queried) - start < num_initial:
            cell, draws = int(rng.integers(len(CELLS))), draws + 1
            if FUNCTION[cell] not in seen and (accept is None or draws > 1000 or accept(cell, queried)):
                query(cell)
                draws = 0
        while len(queried) < budget:
            cell = next_cell(queried, seen, start)
            if cell is None:
                break
            query(cell)
    return TEST[max(queried, key=lambda c: VAL[c])]


def stale(queried, cell, patience):
    """Whether `patience` results came in after `cell` (without improving on it, for the best)."""
    return len(queried) - 1 - queried.index(cell) >= patience


def search(seed, top=1, weight=0.0, budget=100, num_initial=10, patience=24):
    def next_cell(queried, seen, start):
        ranked = sorted(queried[start:], key=lambda c: -VAL[c])
        if stale(queried, ranked[0], patience) or not len(fresh_neighbours(ranked[:1], seen)[0]):
            return None
        cells, places = fresh_neighbours(ranked[:top], seen)
        predicted = rg.ridge(queried, 100.0, "counts")(cells) - weight * places
        return cells[int(np.argmax(predicted))]
    return climbs(seed, next_cell, budget, num_initial)


if __name__ == "__main__":
    first, count = int(sys.argv[1]), int(sys.argv[2])
    for options in ({"top": 1}, {"top": 2}, {"top": 3}, {"top": 2, "weight": 0.5}, {"top": 3, "weight": 0.5},
                    {"top": 5, "weight": 0.3}):
        result = np.array([search(s, **options) for s in range(first, first + count)])
        print(f"{options}: test at 100 queries {result.mean():.3f} (+- {result.std() / np.sqrt(count):.3f})",
              flush=True)
