"""Quickstart: one-shot NAS on scikit-learn's bundled 8x8 digits (no download).

Trains a NAS-Bench-201 supernet (single-path, uniform sampling), searches it with regularized
evolution on the validation split, retrains the winner (and an ensemble of the 3 best) from scratch
and reports test accuracy.
A few minutes on 2 CPU cores (README: measured times); `:runlocal` takes about a minute.

    python launch.py --config experiments/quickstart.py --workdir runs/quickstart
    python launch.py --config experiments/quickstart.py:runlocal --workdir runs/quickstart_local
"""

import ml_collections

from experiments import common


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    variants = common.variants(arg, {"runlocal"}, "quickstart")
    runlocal = "runlocal" in variants

    c = ml_collections.ConfigDict()
    c.job = "search"
    c.seed = 0
    c.num_devices = 0  # 0: every local device
    c.progress = True
    c.backend = common.backend_section()  # CPU/GPU/TPU choices (cell, vmap_archs, depthwise, init, compute_dtype)

    c.dataset = ml_collections.ConfigDict({"name": "digits", "options": {}})
    c.space = ml_collections.ConfigDict({"name": "nas_bench_201",
                                         "options": {"channels": 8, "cells_per_stage": 1, "stages": 3}})

    c.supernet = ml_collections.ConfigDict()
    c.supernet.steps = 150 if runlocal else 1200
    c.supernet.batch_size = 64
    c.supernet.learning_rate = 0.05
    c.supernet.momentum = 0.9
    c.supernet.weight_decay = 5e-4
    c.supernet.sampling = "uniform"  # or "sandwich", "fair" (supernet.training.make_path_sampler)
    c.supernet.checkpoint_every = 200

    c.search = ml_collections.ConfigDict()
    c.search.strategy = "evolution"
    c.search.options = {}
    c.search.budget = 30 if runlocal else 200
    c.search.population = 10 if runlocal else 25
    c.search.calib_size = 256
    c.search.eval_batch_size = 256
    c.search.max_params = 0  # 0: no limit
    c.search.max_flops = 0
    c.search.ensemble_size = 3  # the 3 best by validation, each retrained from scratch; 0 or 1: off
    c.search.ensemble_method = "average"  # or "vote"

    c.retrain = ml_collections.ConfigDict()
    c.retrain.steps = 150 if runlocal else 800
    c.retrain.learning_rate = 0.05
    c.retrain.weight_decay = 5e-4

    # How well the supernet ranked, in results.json: against a ground-truth table of this space and
    # data when one is named, else (cheaper, coarser) its `check_size` favourites plus as many random
    # architectures, each retrained from scratch with the retrain recipe.
    c.ranking = ml_collections.ConfigDict({"table": "", "column": "test_accuracy_mean", "check_size": 3})
    return c
