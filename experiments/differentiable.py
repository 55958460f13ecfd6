"""DARTS or GDAS: differentiable search on the NAS-Bench-201 supernet, then the derived
architecture and random architectures of the space retrained from scratch the same way.

Bilevel: the supernet weights step on `train`, the architecture logits on `val`. DARTS goes
through the mixed (all candidates, softmax-weighted) supernet; GDAS (`:gdas`) draws one operation
per edge (Gumbel-softmax, temperature linear from `tau_max` to `tau_min`), runs only that path of
the single-path supernet and passes the gradient through the soft sample (straight-through). The
derived architecture is the argmax per edge, never `none`. Writes results.json (derived arch,
final softmax weights, search seconds, the comparison with random architectures), metrics.jsonl,
arch_weights.png and architecture.png.

    python launch.py --config experiments/differentiable.py --workdir runs/darts
    python launch.py --config experiments/differentiable.py:gdas --workdir runs/gdas
    python launch.py --config experiments/differentiable.py:runlocal --workdir runs/darts_local

Variants after the colon, comma-separated:
  gdas        GDAS instead of DARTS (order2, early_stop and aux_skip are DARTS's).
  runlocal    digits, a one-stage network, 60 search steps, 2 random architectures retrained
              for 200 steps: a smoke run, about 30 s on 2 CPU cores.
  digits      the quick dataset: 300 search steps, 10 random architectures x 500 retrain steps.
  order2      second-order (unrolled) architecture gradient instead of first order.
  early_stop  DARTS+ remedy: stop once over half of the derived edges are parameter-free.
  aux_skip    DARTS- remedy: an auxiliary skip branch decaying from 1 to 0.
  mobilenet   the MobileNet space (kernel / expansion / depth) instead of NAS-Bench-201.
  warmup      train the weights alone for the first 30% of the steps (PC-DARTS's warm-up).
  nocompare   skip the retraining comparison.
Without a dataset variant the search runs on MNIST-1D (1-D signals, shape (40, 1)).
"""

import ml_collections
from ml_collections import config_dict

from experiments import common

VARIANTS = {"runlocal", "gdas", "digits", "order2", "early_stop", "aux_skip", "mobilenet", "warmup", "nocompare"}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    variants = common.variants(arg, VARIANTS, "differentiable")
    gdas = "gdas" in variants
    if gdas and variants & {"order2", "early_stop", "aux_skip"}:
        raise ValueError("differentiable: order2, early_stop and aux_skip are DARTS options; drop them for gdas.")
    runlocal = "runlocal" in variants
    quick = "digits" in variants  # the quick dataset, shorter search and retraining
    if "early_stop" in variants and "aux_skip" in variants:
        raise ValueError("differentiable: pick one remedy, early_stop or aux_skip.")

    c = common.base("differentiable")

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

    # The fields of supernet.differentiable.Recipe, one to one.
    s = c.search = ml_collections.ConfigDict()
    s.method = "gdas" if gdas else "darts"
    s.order = 2 if "order2" in variants else 1
    s.steps = 60 if runlocal else 300 if quick else 800
    s.batch_size = 64
    s.val_batch_size = 64
    s.weight_lr = 0.05
    s.weight_momentum = 0.9
    s.weight_decay = 3e-4
    s.grad_clip = 5.0
    # DARTS uses 3e-4 over ~20k steps; a search of a few hundred steps needs a larger step.
    s.alpha_lr = 3e-3
    s.alpha_weight_decay = 1e-3
    s.xi = config_dict.placeholder(float)  # second order's virtual step; None: weight_lr
    s.tau_max = 10.0  # GDAS only
    s.tau_min = 0.1
    s.remedy = "early_stop" if "early_stop" in variants else "aux_skip" if "aux_skip" in variants else "none"
    s.max_param_free_share = 0.5
    s.min_stop_fraction = 0.25
    # Weights only for this share of the steps, alphas frozen (PC-DARTS's warm-up).
    s.warmup_fraction = 0.3 if "warmup" in variants else 0.0
    s.log_every = 10 if runlocal else 20

    # Keyword arguments of supernet.jobs.differentiable.compare_with_random; num_random 0: skip.
    r = c.compare = ml_collections.ConfigDict()
    r.num_random = 0 if "nocompare" in variants else 2 if runlocal else 10
    r.retrain_steps = 200 if runlocal else 500 if quick else 1000
    r.batch_size = 64
    r.learning_rate = 0.05
    r.weight_decay = 5e-4
    return c
