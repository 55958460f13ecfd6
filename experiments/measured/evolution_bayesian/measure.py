"""The reported figures of this record: on seeds 0-19 of the NAS-Bench-201 12-epoch table, each
setting searches 300 queries (fitness `cifar10-val`); written to OUT.json: the mean +- std over
seeds of the `cifar10-test` accuracy of the best-by-validation cell at 100 and 300 queries, how
many seeds queried the table's best-by-validation cell, and for every pair of settings the seeds on
which they made identical query sequences (canonical cells).

    PYTHONPATH=. python experiments/measured/evolution_bayesian/measure.py OUT.json LABEL NAME 'OPTIONS' [LABEL NAME 'OPTIONS' ...]
    PYTHONPATH=. python experiments/measured/evolution_bayesian/measure.py --merge OUT.json PART.json [PART.json ...]

Each run also saves its canonical queries beside OUT.json (OUT.npz); `--merge` joins runs made in
separate processes and counts identical query sequences over all their settings.

Settings were chosen on seeds from 100 on (`tune.py`); this runs once on 0-19.
"""

import ast
import json
import sys
import time

import numpy as np

sys.path.insert(0, __file__.rsplit("/", 1)[0])
import tune  # noqa: E402
from strategies.benchmarks import tabular  # noqa: E402
from supernet import spaces  # noqa: E402
from supernet.jobs import strategies_nb201 as job  # noqa: E402

SEEDS = list(range(20))


def main(out, settings):
    space = spaces.get("nas_bench_201")
    table = tabular.TabularObjective(tabular.NB201_ACCURACY_CSV, space, "cifar10-val")
    best_val = float(np.max(table.values("cifar10-val")))
    rows, canonical = {}, {}
    with job.single_threaded_blas():
        for label, name, options in settings:
            start = time.time()
            canonical[label], val, test = tune.search(space, table, name, options, SEEDS)
            rows[label] = {"strategy": name, "options": repr(options), "seconds": round(time.time() - start, 1)}
            for b in tune.BUDGETS:
                rows[label][str(b)] = {"mean": round(float(test[:, b - 1].mean()), 3),
                                       "std": round(float(test[:, b - 1].std()), 3),
                                       "found_reference": int(np.sum(val[:, b - 1] >= best_val - 1e-6))}
            print(label, json.dumps(rows[label]), flush=True)
    np.savez_compressed(out[:-len(".json")] + ".npz", **canonical)
    write(out, rows, canonical)


def write(out, rows, canonical):
    results = {"seeds": SEEDS, "budgets": list(tune.BUDGETS), "fitness_column": "cifar10-val",
               "report_column": "cifar10-test", "settings": rows,
               "identical_query_sequences": job.identical_query_sequences(canonical, tune.BUDGETS)}
    with open(out, "w") as f:
        json.dump(results, f, indent=1)
    print(json.dumps(results["identical_query_sequences"]))


def merge(out, parts):
    rows, canonical = {}, {}
    for part in parts:
        with open(part) as f:
            rows.update(json.load(f)["settings"])
        with np.load(part[:-len(".json")] + ".npz") as saved:
            canonical.update({label: saved[label] for label in saved.files})
    write(out, rows, canonical)


if __name__ == "__main__":
    if sys.argv[1] == "--merge":
        merge(sys.argv[2], sys.argv[3:])
    else:
        args = sys.argv[2:]
        main(sys.argv[1], [(args[i], args[i + 1], ast.literal_eval(args[i + 2])) for i in range(0, len(args), 3)])
