"""The numpy local-search simulation (`local_search_simulation.py`) with the linear surrogate of
`ridge_guided_simulation.py` (option counts plus the one-hot code) read off each cell's raw code
("counts") or off its canonical form ("canonical": `space.canonical`, one representative per
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


def use_dataset(dataset):
    """Points the simulation's validation and test arrays (shared by both modules) at `dataset`."""
    sim.VAL[:] = sim.TABLE.metric(sim.CELLS, f"{dataset}-val")
    sim.TEST[:] = sim.TABLE.metric(sim.CELLS, f"{dataset}-test")


if __name__ == "__main__":
    first, count = int(sys.argv[1]), int(sys.argv[2])
    dataset = sys.argv[3] if len(sys.argv) > 3 else "cifar10"
    use_dataset(dataset)
    for features in ("counts", "canonical"):
        result = np.array([rg.search(s, order=True, features=features, l2=100.0) for s in range(first, first + count)])
        mean, error = result.mean(0), result.std(0) / np.sqrt(count)
        print(f"{dataset}, features of the {'raw code' if features == 'counts' else 'canonical form'}: test at "
              f"100 / 300 queries {mean[0]:.3f} / {mean[1]:.3f} (+- {error[0]:.3f} / {error[1]:.3f})", flush=True)
