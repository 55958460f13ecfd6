"""The numpy local-search simulation (`local_search_simulation.py`) with the kept surrogate
(`ridge_guided_simulation.py`'s "counts" features, the strategies' `climb_order="linear"`) fitted
to a transform of the validation accuracies instead of the accuracies themselves: the third
attempt at the best-at-100 goal, not kept (README). Reported: `cifar10-test` of the
best-by-validation cell after 100 / 300 queries, mean and standard error over tuning seeds.

    PYTHONPATH=. OMP_NUM_THREADS=1 python experiments/measured/strategies_nb201/surrogate_transform_simulation.py FIRST_SEED SEEDS SET

SET "all" runs every variant, "best" the baseline and the three best. Transforms of the results
so far: "rank" (rank / n), "normal" (normal scores of the ranks), "rank^p" (rank / n to the power
p), "clip q" (values below the q-quantile raised to it), "log" (-log(100.5 - accuracy)).
"residual_gp" adds to the rank-fitted linear model a GP on its residuals with kernel
exp(-hamming / lengthscale) and noise variance `noise` (the signal's is 1).
"""

import sys

import numpy as np
from scipy.stats import norm

sys.path.insert(0, __file__.rsplit("/", 1)[0])
import ridge_guided_simulation as rg  # noqa: E402

CELLS, VAL, FEATURES = rg.CELLS, rg.VAL, rg.FEATURES["counts"]


def transformed(y, transform):
    rank = (np.argsort(np.argsort(y)) + 0.5) / len(y)
    kind, _, parameter = transform.partition(" ")
    return {"none": lambda: y, "rank": lambda: rank, "normal": lambda: norm.ppf(rank),
            "rank^p": lambda: rank ** float(parameter), "clip": lambda: np.maximum(y, np.quantile(y, float(parameter or 0.5))),
            "log": lambda: -np.log(100.5 - y)}[kind]()


def linear(queried, y, l2):
    x = FEATURES[queried]
    penalty = np.full(x.shape[1], l2)
    penalty[:rg.OPTIONS] = rg.SHARED_L2
    weights = np.linalg.solve(x.T @ x + np.diag(penalty), x.T @ (y - y.mean()))
    return lambda cells: FEATURES[cells] @ weights


def residual_gp(queried, y, predict, lengthscale, noise):
    seen = CELLS[queried]
    kernel = lambda cells: np.exp(-(CELLS[cells][:, None, :] != seen[None]).sum(-1) / lengthscale)  # noqa: E731
    alpha = np.linalg.solve(kernel(queried) + noise * np.eye(len(queried)), y - y.mean() - predict(queried))
    return lambda cells: predict(cells) + kernel(cells) @ alpha


def search(seed, transform="none", l2=100.0, gp=None):
    def choose(fresh, queried, best):
        y = transformed(VAL[queried], transform)
        predict = linear(queried, y, l2)
        if gp is not None:
            predict = residual_gp(queried, y, predict, *gp)
        return fresh[int(np.argmax(predict(fresh)))]
    return rg.sim.search(seed, choose=choose)


SETTINGS = {
    "all": [{}, {"transform": "rank"}, {"transform": "rank", "l2": 30.0}, {"transform": "rank", "l2": 300.0},
            {"transform": "normal"}, {"transform": "rank^p 2"}, {"transform": "rank^p 3"}, {"transform": "clip 0.25"},
            {"transform": "clip 0.5"}, {"transform": "clip 0.75"}, {"transform": "log"},
            {"transform": "rank", "gp": (1.0, 1.0)}, {"transform": "rank", "gp": (1.0, 0.3)},
            {"transform": "rank", "gp": (2.0, 1.0)}, {"transform": "rank", "gp": (0.5, 0.3)}],
    "best": [{}, {"transform": "rank"}, {"transform": "rank", "l2": 300.0}, {"transform": "clip 0.75"}],
}

if __name__ == "__main__":
    first, count, which = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    for options in SETTINGS[which]:
        result = np.array([search(s, **options) for s in range(first, first + count)])
        mean, error = result.mean(0), result.std(0) / np.sqrt(count)
        print(f"{options or 'the kept surrogate'}: test at 100 / 300 queries {mean[0]:.3f} / {mean[1]:.3f} "
              f"(+- {error[0]:.3f} / {error[1]:.3f})", flush=True)
