"""The `ground_truth` job: trains a fixed sample of a space's architectures standalone from
scratch, several seeds each, into a table (`supernet.ground_truth`; `experiments/ground_truth.py`).

Rows are appended to `workdir/ground_truth.partIofN.csv` as they finish, so a killed run resumes at
the next architecture; `num_shards` processes can split the sample (`shard_index` 0..N-1, e.g.
one per core); once every part is complete, the first process to notice merges them into
`workdir/ground_truth.csv`, in sample order, beside `ground_truth.json` (the task and the recipe).
"""

from __future__ import annotations

from tqdm.auto import tqdm

from supernet import data, records, sharding, spaces
from supernet.ground_truth import (append_row, columns, merge_parts, part_file, read_rows, sample_architectures,
                                   train_and_score)
from supernet.jobs import task_of


def check(config) -> None:
    """The shard is one of the shards, before any work."""
    g = config.ground_truth
    if g.num_shards < 1:
        raise ValueError(f"ground_truth.num_shards must be >= 1, got {g.num_shards}; set --config.ground_truth.num_shards.")
    if not 0 <= g.shard_index < g.num_shards:
        raise ValueError(f"ground_truth.shard_index {g.shard_index} must lie in 0..{g.num_shards - 1} "
                         f"(ground_truth.num_shards={g.num_shards}); set --config.ground_truth.shard_index.")


def run(config, workdir: str) -> dict:
    """The `ground_truth` job (see the module docstring); returns its status and the merged table's
    path."""
    dataset = data.get(config.dataset.name, seed=config.seed, **config.dataset.options.to_dict())
    space = spaces.get(config.space.name, num_classes=dataset.num_classes, input_shape=dataset.input_shape,
                       **config.space.options.to_dict())
    g = config.ground_truth
    archs = [space.to_string(a) for a in sample_architectures(space, g.num_archs, config.seed)]
    records.write_json(workdir, "ground_truth.json", {
        "task": task_of(config), "recipe": g.train.to_dict(), "seeds": list(g.seeds), "num_archs": g.num_archs})
    mine = archs[g.shard_index::g.num_shards]
    seeds = list(g.seeds)
    part = part_file(workdir, g.shard_index, g.num_shards)
    done = {row["arch"] for row in read_rows(part)}
    mesh = sharding.make_mesh(1)
    t = g.train
    for arch in tqdm(mine, desc=f"ground truth {g.shard_index + 1}/{g.num_shards}", disable=not config.progress,
                     initial=len(done & set(mine)), total=len(mine)):
        if arch in done:
            continue
        row = train_and_score(space, space.from_string(arch), dataset, seeds=seeds, steps=t.steps,
                              batch_size=t.batch_size, learning_rate=t.learning_rate, momentum=t.momentum,
                              weight_decay=t.weight_decay, mesh=mesh)
        append_row(part, columns(seeds), row)
    merged = merge_parts(workdir, archs, g.num_shards)
    return {"status": "complete" if merged else "waiting for the other shards", "table": merged,
            "rows": len(read_rows(merged)) if merged else None, "part": part}
