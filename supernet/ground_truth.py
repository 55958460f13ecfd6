"""Ground-truth tables: a fixed sample of a space's architectures, each trained standalone from
scratch with one stated recipe and several seeds, scored on validation and test data.

A table is what every ranker (the supernet, a training-free proxy, parameter count) is judged
against (`supernet.ranking`). The `ground_truth` job (`supernet.jobs.ground_truth`) writes rows to
`ground_truth.partIofN.csv` files as they finish and merges them (`merge_parts`);
`ground_truth.json` beside a table records the task the rows were trained on (`task`), and
`check_task` refuses to judge a run on another task against it.
"""

from __future__ import annotations

import csv
import json
import os
import time

import jax
import numpy as np

from supernet import data, records, retrain, spaces, training
from supernet.runtime import Runtime

# Space options that follow from the dataset rather than from the config.
_DERIVED_SPACE_OPTIONS = ("num_classes", "input_shape")
# Dataset options that leave the training split and the architectures' test scores unchanged.
_TASK_NEUTRAL = ("dataset.options.extra_val",)


def sample_architectures(space, n: int, seed: int) -> np.ndarray:
    """`n` distinct architectures drawn uniformly in a fixed order, skipping degenerate ones
    (`space.is_degenerate`, when the space defines it)."""
    if n > space.size:
        raise ValueError(f"asked for {n} distinct architectures; the {space.name} space has {space.size}.")
    rng = np.random.default_rng(seed)
    seen, out = set(), []
    degenerate = getattr(space, "is_degenerate", lambda arch: False)
    while len(out) < n:
        arch = rng.integers(0, np.asarray(space.num_choices))
        key = tuple(arch.tolist())
        if key not in seen and not degenerate(arch):
            out.append(arch)
        seen.add(key)
    return np.asarray(out, np.int32)


def columns(seeds) -> list[str]:
    """The table's columns for these training seeds: arch, per-seed and mean accuracies, counts, time."""
    per_seed = [f"{split}_accuracy_seed{s}" for split in ("val", "test") for s in seeds]
    return ["arch", *per_seed, "val_accuracy_mean", "test_accuracy_mean", "params", "flops", "train_seconds"]


def train_and_score(space, arch, dataset: data.Dataset, *, seeds, steps: int, batch_size: int,
                    learning_rate: float, momentum: float, weight_decay: float, mesh) -> dict:
    """One table row: `arch` trained from scratch once per seed (init and data order from the seed),
    with one compiled step shared by the seeds, on `mesh`, quietly (the table's job shows the rows)."""
    tic = time.perf_counter()
    module = space.standalone(arch)
    optimizer = training.make_optimizer(learning_rate, momentum, weight_decay, steps)
    step = retrain.make_standalone_step(module, optimizer)
    row = {"arch": space.to_string(arch)}
    val, test = [], []
    for seed in seeds:
        variables = retrain.train_standalone(module, dataset.train, steps=steps, batch_size=batch_size,
                                             optimizer=optimizer, key=jax.random.key(seed), step=step,
                                             runtime=Runtime(mesh, progress=False))
        val.append(retrain.accuracy(module, variables, dataset.val, batch_size=1000))
        test.append(retrain.accuracy(module, variables, dataset.test, batch_size=1000))
    row.update({f"val_accuracy_seed{s}": v for s, v in zip(seeds, val)})
    row.update({f"test_accuracy_seed{s}": t for s, t in zip(seeds, test)})
    row.update(val_accuracy_mean=float(np.mean(val)), test_accuracy_mean=float(np.mean(test)),
               params=space.params(arch), flops=space.flops(arch), train_seconds=time.perf_counter() - tic)
    return row


def task(dataset_name: str, dataset_options: dict, space_name: str, space_options: dict, seed: int) -> dict:
    """The task a table's rows were trained on: dataset and space with every default filled in,
    and the seed (it carves train from val). A table's rows are comparable only with runs on the
    same task."""
    dataset = {**data.options(dataset_name), **dataset_options}
    space = {**spaces.SPACES.defaults(space_name), **space_options}
    for name in _DERIVED_SPACE_OPTIONS:
        space.pop(name, None)
    # Through JSON, so tuples compare equal to a saved task's lists.
    return json.loads(json.dumps({"dataset": {"name": dataset_name, "options": dataset},
                                  "space": {"name": space_name, "options": space}, "seed": seed}))


def task_file(table: str) -> str:
    """Where a table's task is recorded: next to it, with the extension .json."""
    return os.path.splitext(table)[0] + ".json"


def _flat(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def check_task(mine: dict, table: str, skip_flag: str) -> None:
    """ValueError when `table`'s recorded task differs from `mine` (a `task(...)`): a table trained
    on another dataset variant, space or train/val carve would judge the rankers against the wrong
    accuracies. The message names the config overrides that fix it (`skip_flag` turns the check
    off). A table without a task file (made before they existed) is not checked."""
    if not os.path.isfile(task_file(table)):
        print(f"note: {table} has no task file ({os.path.basename(task_file(table))}); "
              f"cannot check it was made on this run's task.")
        return
    with open(task_file(table)) as f:
        made = _flat(json.load(f)["task"])
    mine = _flat(mine)
    differ = sorted(k for k in set(made) | set(mine) if k not in _TASK_NEUTRAL and made.get(k) != mine.get(k))
    if made.get("space.name") != mine.get("space.name"):   # options of one space do not turn it into another
        raise ValueError(f"ground-truth table {table} was made on space {made.get('space.name')!r}, but this run "
                         f"searches {mine.get('space.name')!r}: run a config of that space (experiments/ranking.py:cnn "
                         f"is cnn1d's) or name a table made on this space; --config.{skip_flag}=False skips this "
                         f"check.")
    if differ:
        raise ValueError(
            f"ground-truth table {table} was made on another task than this run's: "
            + "; ".join(f"{k} is {made.get(k)!r} there and {mine.get(k)!r} here" for k in differ)
            + ". Its accuracies only judge rankings on its own task: run with "
            + " ".join(f"--config.{k}={made[k]}" for k in differ if k in made)
            + f", or name a table made on this task (experiments/ground_truth.py with the same dataset, space "
              f"and seed); --config.{skip_flag}=False skips this check.")


def read_rows(file: str) -> list[dict]:
    """The rows of a table or part file as dicts of strings ([] when it does not exist yet)."""
    if not os.path.exists(file):
        return []
    with open(file, newline="") as f:
        return list(csv.DictReader(f))


def append_row(file: str, fields: list[str], row: dict) -> None:
    """Appends one row (and the header to a new file), synced to disk so a kill loses no finished row."""
    new = not os.path.exists(file)
    with open(file, "a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        if new:
            writer.writeheader()
        writer.writerow({k: (f"{v:.6f}" if isinstance(v, float) else v) for k, v in row.items()})
        f.flush()
        os.fsync(f.fileno())


def part_file(workdir: str, shard: int, shards: int) -> str:
    """The file of shard `shard` of `shards` in `workdir`."""
    return os.path.join(workdir, f"ground_truth.part{shard}of{shards}.csv")


def merge_parts(workdir: str, archs: list[str], shards: int) -> str | None:
    """Writes `ground_truth.csv` in sample order once every part holds all of its rows."""
    rows = {}
    for shard in range(shards):
        for row in read_rows(part_file(workdir, shard, shards)):
            rows[row["arch"]] = row
    if any(a not in rows for a in archs):
        return None
    file = os.path.join(workdir, "ground_truth.csv")
    fields = list(rows[archs[0]])
    with records.atomic_file(file, newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows[a] for a in archs)
    return file


# The directory holding the `supernet` package: tables named relative to it are found from anywhere.
PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def table_places(path: str) -> list[str]:
    """Where a table `path` is looked for, in order and each place once: as given (relative to the
    current directory), then relative to the project root (the directory holding `supernet`)."""
    return list(dict.fromkeys([os.path.abspath(path), os.path.join(PROJECT_ROOT, path)]))


def resolve_table(path: str) -> str:
    """The first of `table_places(path)` that is a file."""
    candidates = table_places(path)
    for candidate in candidates:
        if os.path.isfile(candidate):
            return candidate
    raise FileNotFoundError(f"ground-truth table {path!r} not found (looked at {', '.join(candidates)}); "
                            f"make one with `python launch.py --config experiments/ground_truth.py --workdir DIR` "
                            f"and pass --config.ground_truth.table=DIR/ground_truth.csv.")
