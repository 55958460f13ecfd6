"""Ground truth for ranking: NAS-Bench-201 cells (C=8, one cell per stage) trained standalone on a
harder MNIST-1D with a large test split, two seeds each.

    python launch.py --config experiments/ground_truth.py --workdir runs/ground_truth
    # on 2 cores, two processes (each trains every other architecture; the last merges):
    python launch.py --config experiments/ground_truth.py --workdir runs/ground_truth --config.ground_truth.shard_index=0 --config.ground_truth.num_shards=2 &
    python launch.py --config experiments/ground_truth.py --workdir runs/ground_truth --config.ground_truth.shard_index=1 --config.ground_truth.num_shards=2
    python launch.py --config experiments/ground_truth.py:runlocal --workdir runs/ground_truth_local

The task: MNIST-1D at twice the generator's noise (`noise=2.0`), drawn at 35,000 examples:
16,000 train, 4,000 val, 15,000 test. Why: on the official task (4,000 train) most cells sat
within 0.6 points of each other near 97% and a training seed reordered them (seed vs seed Kendall
tau 0.48, val vs test 0.65 over 300 cells: strategies/benchmarks/ground_truth_nb201_mnist1d.csv,
still shipped). The doubled noise spreads the cells over 54-87%; the 4x larger training set
keeps a seed's noise down. The table made with this config
(strategies/benchmarks/ground_truth_nb201_mnist1d_noise2.csv, 300 cells) ranks at seed vs seed
0.69 and val vs test 0.94 (README, ranking section, also for the pilots that chose it). The
15,000 test examples measure each cell to about +-0.35 points at 80%. Recipe (the same for every
cell): SGD with Nesterov momentum 0.9, learning rate 0.05 on a cosine schedule, weight decay
5e-4, batch 128, 1,000 steps (8 epochs), one compiled step shared by the seeds.

Variant `cnn`: the held-out table of the CNN space (`supernet/spaces/cnn.py`, "cnn1d": layer
choice, depth, width, kernel, connection) on the same task: 150 distinct networks drawn uniformly
(most are 3 blocks deep, as most of the space's networks are), 400 steps each (3.2 epochs: the
table had to train in about an hour on 2 shared cores; the first architectures took 15-54 s a pair
of seeds at 1,000 steps). No ranking recipe was chosen on it
(strategies/benchmarks/ground_truth_cnn_mnist1d.csv):

    python launch.py --config experiments/ground_truth.py:cnn --workdir runs/ground_truth_cnn

The official-task table was made with
`--config.dataset.options.noise=1.0 --config.dataset.options.num_samples=20000
--config.dataset.options.train_split=0.25` (4,000 train, 1,000 val, 15,000 test; 32 epochs).
"""

import ml_collections

from experiments import common


# MNIST-1D at twice the generator's noise, drawn at 35,000 examples: 16,000 train, 4,000 val,
# 15,000 test (see the docstring for why).
TASK = {"noise": 2.0, "num_samples": 35_000, "train_split": 20_000 / 35_000, "val_fraction": 0.2}


def task(runlocal: bool = False) -> dict:
    """The table's MNIST-1D options; `runlocal`: a quick 5,000-example draw of the same variant."""
    return dict(TASK, num_samples=5_000, train_split=0.25) if runlocal else dict(TASK)


# The spaces of the tables: NAS-Bench-201 cells (the default) and the CNN space (variant `cnn`).
SPACES = {"nb201": {"name": "nas_bench_201", "options": {"channels": 8, "cells_per_stage": 1, "stages": 3}},
          "cnn": {"name": "cnn1d", "options": {}}}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    variants = common.variants(arg, {"runlocal", "cnn"}, "ground_truth")
    runlocal, cnn = "runlocal" in variants, "cnn" in variants
    c = common.base("ground_truth", devices=False)  # seed: picks the sample of architectures and the train/val carve
    c.dataset = ml_collections.ConfigDict({"name": "mnist1d", "options": task(runlocal)})
    c.space = ml_collections.ConfigDict(SPACES["cnn" if cnn else "nb201"])
    g = c.ground_truth = ml_collections.ConfigDict()
    g.num_archs = 4 if runlocal else 150 if cnn else 300
    g.seeds = (0, 1)
    g.shard_index = 0
    g.num_shards = 1
    g.train = ml_collections.ConfigDict({"steps": 60 if runlocal else 400 if cnn else 1000, "batch_size": 128,
                                         "learning_rate": 0.05, "momentum": 0.9, "weight_decay": 5e-4})
    return c
