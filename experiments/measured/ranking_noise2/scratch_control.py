"""One-off control for the fine_tuned ranker (2026-11-29): the same 100 steps (lr 0.03 cosine, the
same batches), started from fresh initialisation instead of the supernet's weights, on the first
60 cells of the shipped table. Measured with the pilot loop this script restates through
`evaluation.evaluate_fine_tuned` (same steps, batches, calibration and scoring): Kendall tau
0.618 of the validation accuracy after 100 steps from scratch against the table (on the same 60
cells: fine_tuned 0.629, params 0.591, supernet 0.543).

    python experiments/measured/ranking_noise2/scratch_control.py
"""
import csv
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", ".."))
import jax
import numpy as np
from scipy.stats import kendalltau

from experiments import ranking as ranking_config
from supernet import evaluation, one_shot, training
from supernet.jobs import setup

config = ranking_config.get_config()
dataset, space, runtime = setup(config, workdir=None)
mesh = runtime.mesh
model = space.supernet()
rows = list(csv.DictReader(open(config.ground_truth.table)))[:60]
archs = np.stack([space.from_string(r["arch"]) for r in rows])
fresh = training.init_params(space, model, jax.random.key(0), dataset.input_shape)
calib_x = one_shot.calibration_inputs(dataset.train, config.supernet.calib_size, config.seed, mesh)
scores = evaluation.evaluate_fine_tuned(space, model, fresh, archs, dataset.train, calib_x, dataset.val.x,
                                        dataset.val.y, runtime=runtime, steps=100, batch_size=128, seed=123,
                                        optimizer=training.make_optimizer(0.03, 0.9, 5e-4, 100), eval_batch_size=250)
truth = [float(r["test_accuracy_mean"]) for r in rows]
print(f"K=100 lr=0.03 n=60 tuned acc {kendalltau(scores['accuracy'], truth)[0]:.3f}")
