"""The numpy local-search simulation (`local_search_simulation.py`) with a ridge-regression
surrogate of the results so far (2026-12-03): the variants tried to lift the local search above
the 100-query goal, none kept. Fitness `cifar10-val`; reported: `cifar10-test` of the
best-by-validation cell after 100 / 300 queries, on tuning seeds from 100 on.

    PYTHONPATH=. OMP_NUM_THREADS=1 python experiments/measured/strategies_nb201/ridge_guided_simulation.py [SEEDS]

Options of `search`: `order` evaluates the best cell's fresh neighbours in the surrogate's order
instead of at random; `features` "onehot" (additive over the edges) or "path" (also a code per
input-to-output path's operations, NAS-Bench-201's path encoding), "counts" (below) or
"canonical" ("counts" of each cell's `space.canonical` form, `canonical_features_simulation.py`);
`l2` the ridge penalty;
`jump` queries the surrogate's best unseen cell right after the first initial sample; `margin`
ends a climb when no fresh neighbour is predicted above the best's fitness + margin.

Kept: features "counts", how often each operation occurs in the cell
(one weight per operation, penalty `SHARED_L2`) plus the one-hot code (penalty `l2`): the
strategies' `climb_order="linear"` (`strategies.surrogate.fit_linear_surrogate`, same penalties).
Two upper bounds for any ordering, which know the table: `oracle` "improving" puts a random
improving neighbour first; "additive" orders by the one-hot linear model fitted to all 15,625 cells.
"""

import sys

import numpy as np

sys.path.insert(0, __file__.rsplit("/", 1)[0])
import local_search_simulation as sim  # noqa: E402

CELLS, VAL, FUNCTION = sim.CELLS, sim.VAL, sim.FUNCTION
OPTIONS = 5
PATHS = [(3,), (0, 4), (1, 5), (0, 2, 5)]  # edge indices (NB201_EDGES order) along each path


def one_hot_codes(codes, width):
    out = np.zeros((len(codes), width))
    out[np.arange(len(codes)), codes] = 1
    return out


def counts_and_one_hot(cells):
    """How often each operation occurs in each cell, then the cell's one-hot code."""
    counts = np.stack([(cells == o).sum(1) for o in range(OPTIONS)], 1).astype(float)
    return np.concatenate([counts] + [one_hot_codes(cells[:, d], OPTIONS) for d in range(cells.shape[1])], 1)


ONEHOT = np.concatenate([one_hot_codes(CELLS[:, d], OPTIONS) for d in range(CELLS.shape[1])], 1)
PATH = np.concatenate([ONEHOT] + [one_hot_codes(CELLS[:, list(p)] @ OPTIONS ** np.arange(len(p))[::-1],
                                                OPTIONS ** len(p)) for p in PATHS], 1)
# "canonical": the "counts" features of each cell's representative (`space.canonical`).
FEATURES = {"onehot": ONEHOT, "path": PATH, "counts": counts_and_one_hot(CELLS),
            "canonical": counts_and_one_hot(np.asarray(sim.SPACE.canonical(CELLS)))}
SHARED_L2 = 0.01


def ridge(queried, l2, features):
    """Weights and mean of a ridge regression of validation accuracy on the features."""
    x, y = FEATURES[features][queried], VAL[queried]
    penalty = np.full(x.shape[1], l2)
    if features in ("counts", "canonical"):
        penalty[:OPTIONS] = SHARED_L2
    weights = np.linalg.solve(x.T @ x + np.diag(penalty), x.T @ (y - y.mean()))
    return lambda cells: FEATURES[features][cells] @ weights + y.mean()


ADDITIVE = ONEHOT @ np.linalg.lstsq(ONEHOT, VAL - VAL.mean(), rcond=None)[0]


def oracle_choice(oracle, fresh, best, rng):
    if oracle == "additive":
        return fresh[int(np.argmax(ADDITIVE[fresh]))]
    better = [c for c in fresh if VAL[c] > VAL[best]] or fresh
    return better[rng.integers(len(better))]


def search(seed, order=False, features="onehot", l2=0.1, jump=False, margin=None, oracle=None, **options):
    """`local_search_simulation.search` with the surrogate's options (module docstring)."""
    rng = np.random.default_rng(seed + 12345)

    def choose(fresh, queried, best):
        if oracle is not None:
            return oracle_choice(oracle, fresh, best, rng)
        predicted = ridge(queried, l2, features)(fresh)
        if margin is not None and predicted.max() < VAL[best] + margin:
            return None
        return fresh[int(np.argmax(predicted))]

    def best_predicted(queried, seen):
        predicted = ridge(queried, l2, features)(np.arange(len(CELLS)))
        return next(int(c) for c in np.argsort(-predicted) if FUNCTION[c] not in seen)

    return sim.search(seed, choose=choose if order or oracle else None,
                      after_first_sample=best_predicted if jump else None, **options)


if __name__ == "__main__":
    seeds = range(100, 100 + int(sys.argv[1] if len(sys.argv) > 1 else 1000))
    for options in ({}, {"order": True}, {"order": True, "l2": 0.03}, {"order": True, "l2": 0.3},
                    {"order": True, "features": "path", "l2": 1.0}, {"jump": True},
                    {"order": True, "margin": 0.0}, {"order": True, "margin": -1.0},
                    {"order": True, "features": "counts", "l2": 100.0}, {"order": True, "features": "counts", "l2": 30.0},
                    {"oracle": "improving"}, {"oracle": "additive"}):
        result = np.array([search(s, **options) for s in seeds])
        mean, error = result.mean(0), result.std(0) / np.sqrt(len(result))
        print(f"{options or 'default'}: test at 100 / 300 queries {mean[0]:.3f} / {mean[1]:.3f} "
              f"(+- {error[0]:.3f} / {error[1]:.3f})", flush=True)
