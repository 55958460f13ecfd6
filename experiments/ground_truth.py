"""Ground truth for ranking: NAS-Bench-201 cells (C=8, one cell per stage) trained standalone on
MNIST-1D with a large test split, two seeds each.

    python launch.py --config experiments/ground_truth.py --workdir runs/ground_truth
    # on 2 cores, two processes (each trains every other architecture; the last merges):
    python launch.py --config experiments/ground_truth.py --workdir runs/ground_truth --config.ground_truth.shard_index=0 --config.ground_truth.num_shards=2 &
    python launch.py --config experiments/ground_truth.py --workdir runs/ground_truth --config.ground_truth.shard_index=1 --config.ground_truth.num_shards=2
    python launch.py --config experiments/ground_truth.py:runlocal --workdir runs/ground_truth_local

The task: MNIST-1D drawn from its generator at 20,000 examples: 2,000 train, 2,000 val, 16,000
test. Why a small training set: on the official 4,000 / 1,000 split most cells score 96-98% and a
1,000-example test split cannot order them; fewer training examples spread the cells out and
16,000 test examples measure each to about +-0.15 points. Recipe (the same for every cell): SGD
with Nesterov momentum 0.9, learning rate 0.05 on a cosine schedule, weight decay 5e-4, batch
128, 600 steps (38 epochs), one compiled step shared by the seeds.
"""

import ml_collections


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    variants = {v for v in (arg or "").split(",") if v}
    if variants - {"runlocal"}:
        raise ValueError(f"unknown variant(s) {sorted(variants - {'runlocal'})} for ground_truth; valid: runlocal.")
    runlocal = "runlocal" in variants
    c = ml_collections.ConfigDict()
    c.job = "ground_truth"
    c.seed = 0  # picks the sample of architectures and the train/val carve
    c.progress = True
    c.dataset = ml_collections.ConfigDict({"name": "mnist1d", "options": {
        "num_samples": 20_000, "train_split": 0.2, "val_fraction": 0.5}})
    c.space = ml_collections.ConfigDict({"name": "nas_bench_201", "options": {
        "channels": 8, "cells_per_stage": 1, "stages": 3}})
    g = c.ground_truth = ml_collections.ConfigDict()
    g.num_archs = 4 if runlocal else 300
    g.seeds = (0, 1)
    g.shard_index = 0
    g.num_shards = 1
    g.train = ml_collections.ConfigDict({"steps": 60 if runlocal else 600, "batch_size": 128,
                                         "learning_rate": 0.05, "momentum": 0.9, "weight_decay": 5e-4})
    return c
