"""The numpy local-search simulation with the kept surrogate (`ridge_guided_simulation.py`'s
"counts" features, the strategies' `climb_order="linear"`), with three ways out of the local
optima that hold climbs: the seventh attempt at the best-at-100 goal, not kept (README).
`endgame`: once a climb stops with at most that many queries left, no restart (a fresh climb could
not finish); the rest go to the surrogate's best fresh one- or two-decision neighbours of the best
result so far. `avoid`: a restart's uniform cells differ in at least that many decisions from
every earlier climb's centre. `jump`: every that many queries, a climb's query goes to the
surrogate's best fresh cell in the whole space. Reported: `cifar10-test` of the
best-by-validation cell after 100 queries, mean and standard error over tuning seeds.

    PYTHONPATH=. OMP_NUM_THREADS=1 python experiments/measured/strategies_nb201/escape_simulation.py FIRST_SEED SEEDS SETTINGS

SETTINGS: space-separated, e.g. `endgame=15 avoid=3 jump=20`; `kept` is the kept climb; `missed`
alone lists where the kept climbs that missed the reference cell ended. Climbs
otherwise restart as in `local_search_simulation.py`.
"""

import sys

import numpy as np

sys.path.insert(0, __file__.rsplit("/", 1)[0])
import best_first_simulation as bf  # noqa: E402
import ridge_guided_simulation as rg  # noqa: E402

CELLS, VAL, FUNCTION, NEIGHBOURS = rg.sim.CELLS, rg.sim.VAL, rg.sim.FUNCTION, rg.sim.NEIGHBOURS
EVERY_CELL = np.arange(len(CELLS))


def near_best(queried, seen):
    """The fresh one- and two-decision neighbours of the best result so far."""
    best = max(queried, key=lambda c: VAL[c])
    ring = {int(c) for n in NEIGHBOURS[best] for c in [n, *NEIGHBOURS[n]]} - {best}
    return np.asarray([c for c in sorted(ring) if FUNCTION[c] not in seen], int)


def best_predicted(model, cells, seen):
    """The fresh cell of `cells` the surrogate predicts best, or None."""
    for cell in cells[np.argsort(-model(cells), kind="stable")]:
        if FUNCTION[cell] not in seen:
            return int(cell)
    return None


def search(seed, endgame=0, avoid=0, jump=0, budget=100, num_initial=10, patience=24, history=None):
    """Test accuracy of the returned cell; `history`, a list, receives the queries."""
    centres = []

    def next_cell(queried, seen, start):
        model = rg.ridge(queried, 100.0, "counts")
        if jump and len(queried) % jump == 0:
            return best_predicted(model, EVERY_CELL, seen)
        centre = max(queried[start:], key=lambda c: VAL[c])
        cells = bf.fresh_neighbours([centre], seen)[0]
        if bf.stale(queried, centre, patience) or not len(cells):
            if budget - len(queried) > endgame:
                centres.append(centre)
                return None
            cells = near_best(queried, seen)
        return best_predicted(model, cells, seen)

    def far_from_centres(cell, queried):
        return all(np.sum(CELLS[cell] != CELLS[c]) >= avoid for c in centres)

    return bf.climbs(seed, next_cell, budget, num_initial, far_from_centres if avoid else None, history)


def missed(first, count):
    """The seeds whose kept climbs missed the reference cell (the table's best by validation),
    with the validation accuracy of their best result and its distance in decisions."""
    reference = int(np.argmax(VAL))
    for seed in range(first, first + count):
        history = []
        search(seed, history=history)
        best = max(history, key=lambda c: VAL[c])
        if best != reference:
            print(f"seed {seed}: best {VAL[best]:.2f}, {np.sum(CELLS[best] != CELLS[reference])} decisions away")


if __name__ == "__main__":
    first, count = int(sys.argv[1]), int(sys.argv[2])
    settings = sys.argv[3:]
    if settings == ["missed"]:
        missed(first, count)
        settings = []
    for setting in settings:
        options = {} if setting == "kept" else {k: int(v) for k, v in (setting.split("="),)}
        result = np.array([search(s, **options) for s in range(first, first + count)])
        print(f"{setting}: {result.mean():.3f} (+- {result.std() / np.sqrt(count):.3f})", flush=True)
