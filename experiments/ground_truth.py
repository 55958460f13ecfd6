"""Ground truth for ranking: NAS-Bench-201 cells (C=8, one cell per stage) trained standalone on
MNIST-1D with a large test split, two seeds each.

    python launch.py --config experiments/ground_truth.py --workdir runs/ground_truth
    # on 2 cores, two processes (each trains every other architecture; the last merges):
    python launch.py --config experiments/ground_truth.py --workdir runs/ground_truth --config.ground_truth.shard_index=0 --config.ground_truth.num_shards=2 &
    python launch.py --config experiments/ground_truth.py --workdir runs/ground_truth --config.ground_truth.shard_index=1 --config.ground_truth.num_shards=2
    python launch.py --config experiments/ground_truth.py:runlocal --workdir runs/ground_truth_local

The task: MNIST-1D drawn from its generator at 20,000 examples: 4,000 train, 1,000 val (the
official dataset's sizes) and 15,000 test. Why: on the official 1,000-example test split the
binomial error (+-0.5 points) is as large as the spread of most cells; 15,000 test examples
measure each cell to +-0.15. Recipe (the same for every cell): SGD with Nesterov momentum 0.9,
learning rate 0.05 on a cosine schedule, weight decay 5e-4, batch 128, 1,000 steps (32 epochs),
one compiled step shared by the seeds. Chosen by a pilot on 10 cells x 3 seeds: with 2,000
training examples and 600 steps the seed-to-seed std was 0.68 points and two seeds ranked 28
cells at Kendall tau 0.48; with 4,000 examples and 1,000 steps the std halved (0.37) and two seeds
agreed at tau 0.87 (10 cells).
"""

import ml_collections

from experiments import common


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    variants = common.variants(arg, {"runlocal"}, "ground_truth")
    runlocal = "runlocal" in variants
    c = common.base("ground_truth", devices=False)  # seed: picks the sample of architectures and the train/val carve
    c.dataset = ml_collections.ConfigDict({"name": "mnist1d", "options": {
        "num_samples": 20_000, "train_split": 0.25, "val_fraction": 0.2}})
    c.space = ml_collections.ConfigDict({"name": "nas_bench_201", "options": {
        "channels": 8, "cells_per_stage": 1, "stages": 3}})
    g = c.ground_truth = ml_collections.ConfigDict()
    g.num_archs = 4 if runlocal else 300
    g.seeds = (0, 1)
    g.shard_index = 0
    g.num_shards = 1
    g.train = ml_collections.ConfigDict({"steps": 60 if runlocal else 1000, "batch_size": 128,
                                         "learning_rate": 0.05, "momentum": 0.9, "weight_decay": 5e-4})
    return c
