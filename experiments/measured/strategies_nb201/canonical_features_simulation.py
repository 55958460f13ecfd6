"""The numpy local-search simulation (`local_search_simulation.py`) with the linear surrogate of
`ridge_guided_simulation.py` ("counts" features: option counts plus the one-hot code) read off
each cell's raw code or off its canonical form (`space.canonical`, one representative per
function): the eighth attempt at the best-at-100 goal, kept (README). Reported: the test accuracy
of the best-by-validation cell after 100 / 300 queries, mean and standard error over tuning seeds.

    PYTHONPATH=. OMP_NUM_THREADS=1 python experiments/measured/strategies_nb201/canonical_features_simulation.py FIRST_SEED SEEDS [DATASET]

DATASET: the table's column pair searched and reported, "cifar10" (default), "cifar100" or
"imagenet" (`DATASET-val` as fitness, `DATASET-test` reported).
"""

import sys

import numpy as np

sys.path.insert(0, __file__.rsplit("/", 1)[0])
import local_search_simulation as sim  # noqa: E402
import ridge_guided_simulation as rg  # noqa: E402


def counts_and_one_hot(cells):
    counts = np.stack([(cells == o).sum(1) for o in range(rg.OPTIONS)], 1).astype(float)
    return np.concatenate([counts] + [rg.one_hot_codes(cells[:, d], rg.OPTIONS) for d in range(cells.shape[1])], 1)


rg.FEATURES["canonical"] = counts_and_one_hot(np.asarray(sim.SPACE.canonical(sim.CELLS)))


def use_dataset(dataset):
    """Points the simulation's validation and test arrays (shared by both modules) at `dataset`."""
    sim.VAL[:] = sim.TABLE.metric(sim.CELLS, f"{dataset}-val")
    sim.TEST[:] = sim.TABLE.metric(sim.CELLS, f"{dataset}-test")


def ridge(queried, l2, features):
    """`rg.ridge` for the "counts" layout of any feature matrix: the option counts' weights nearly
    free (`SHARED_L2`), the one-hot corrections penalised by `l2`."""
    x, y = rg.FEATURES[features][queried], sim.VAL[queried]
    penalty = np.full(x.shape[1], l2)
    penalty[:rg.OPTIONS] = rg.SHARED_L2
    weights = np.linalg.solve(x.T @ x + np.diag(penalty), x.T @ (y - y.mean()))
    return lambda cells: rg.FEATURES[features][cells] @ weights + y.mean()


rg.ridge = ridge

if __name__ == "__main__":
    first, count = int(sys.argv[1]), int(sys.argv[2])
    dataset = sys.argv[3] if len(sys.argv) > 3 else "cifar10"
    use_dataset(dataset)
    for features in ("counts", "canonical"):
        result = np.array([rg.search(s, order=True, features=features, l2=100.0) for s in range(first, first + count)])
        mean, error = result.mean(0), result.std(0) / np.sqrt(count)
        print(f"{dataset}, features of the {'raw code' if features == 'counts' else 'canonical form'}: test at "
              f"100 / 300 queries {mean[0]:.3f} / {mean[1]:.3f} (+- {error[0]:.3f} / {error[1]:.3f})", flush=True)
