"""GDAS: differentiable search with hard Gumbel-softmax samples on the NAS-Bench-201 supernet,
then the derived architecture and random architectures retrained from scratch the same way.

Each step draws one operation per edge (Gumbel-softmax, temperature linear from `tau_max` to
`tau_min`), runs only that path of the single-path supernet, and passes the architecture gradient
through the soft sample (straight-through). Weights step on `train`, logits on `val`. Writes
results.json (derived arch, final softmax weights, search seconds and step time, the comparison
with random architectures), metrics.jsonl and arch_weights.png.

    python launch.py --config experiments/gdas.py --workdir runs/gdas
    python launch.py --config experiments/gdas.py:runlocal --workdir runs/gdas_local

Variants after the colon, comma-separated:
  runlocal    digits, a one-stage network, 60 search steps, 2 random architectures retrained
              for 200 steps: a smoke run, about 30 s on 2 CPU cores.
  digits      the quick dataset: 300 search steps, 10 random architectures x 500 retrain steps.
  mobilenet   the MobileNet space (kernel / expansion / depth) instead of NAS-Bench-201.
  warmup      train the weights alone for the first 30% of the steps (PC-DARTS's warm-up).
  nocompare   skip the retraining comparison.
Without a dataset variant the search runs on MNIST-1D (1-D signals, shape (40, 1)).
"""

import ml_collections
from ml_collections import config_dict

VARIANTS = {"runlocal", "digits", "mobilenet", "warmup", "nocompare"}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    variants = {v for v in (arg or "").split(",") if v}
    unknown = variants - VARIANTS
    if unknown:
        raise ValueError(f"unknown variant(s) {sorted(unknown)} for gdas; valid: {', '.join(sorted(VARIANTS))}.")
    runlocal = "runlocal" in variants
    quick = "digits" in variants  # the quick dataset, shorter search and retraining

    c = ml_collections.ConfigDict()
    c.job = "differentiable"
    c.seed = 0
    c.num_devices = 0  # 0: every local device
    c.progress = True

    c.dataset = ml_collections.ConfigDict({"name": "digits" if runlocal or quick else "mnist1d",
                                           "options": {}})
    if "mobilenet" in variants:
        c.space = ml_collections.ConfigDict({"name": "mobilenet", "options": {
            "stages": ((8, 2, 1), (16, 2, 2)), "stem_channels": 8, "head_channels": 32,
            "kernel_sizes": (3, 5), "expand_ratios": (2, 4)}})
    else:
        # One stage for runlocal: a third of the compilation, which dominates a one-minute run.
        c.space = ml_collections.ConfigDict({"name": "nas_bench_201", "options": {
            "channels": 8, "cells_per_stage": 1, "stages": 1 if runlocal else 3}})

    # Keyword arguments of strategies.differentiable.run_differentiable_search, one to one.
    s = c.search = ml_collections.ConfigDict()
    s.method = "gdas"
    s.order = 1  # DARTS only
    s.steps = 60 if runlocal else 300 if quick else 800
    s.batch_size = 64
    s.val_batch_size = 64
    s.weight_lr = 0.05
    s.weight_momentum = 0.9
    s.weight_decay = 3e-4
    s.grad_clip = 5.0
    # GDAS uses 3e-4 over ~50k steps; a search of a few hundred steps needs a larger step.
    s.alpha_lr = 3e-3
    s.alpha_weight_decay = 1e-3
    s.xi = config_dict.placeholder(float)  # DARTS second order only
    s.tau_max = 10.0  # GDAS's schedule: linear from 10 to 0.1
    s.tau_min = 0.1
    s.remedy = "none"
    s.max_param_free_share = 0.5
    s.min_stop_fraction = 0.25
    # Weights only for this share of the steps, alphas frozen (PC-DARTS's warm-up).
    s.warmup_fraction = 0.3 if "warmup" in variants else 0.0
    s.log_every = 10 if runlocal else 20

    # Keyword arguments of strategies.differentiable.compare_with_random; num_random 0: skip.
    r = c.compare = ml_collections.ConfigDict()
    r.num_random = 0 if "nocompare" in variants else 2 if runlocal else 10
    r.retrain_steps = 200 if runlocal else 500 if quick else 1000
    r.batch_size = 64
    r.learning_rate = 0.05
    r.weight_decay = 5e-4
    return c
