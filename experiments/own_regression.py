"""Search your own Flax model for a regression: the frequency of a noisy sine, with an MSE loss.

Each example is 64 samples of `a * sin(2 pi f t + phase) + noise` (a, f, phase drawn at random from
a seed, no download); the target is the frequency f (1-6 cycles per window) standardised with the
generator's own mean and spread, so predicting the mean scores an MSE near 1. The model is an ordinary
Linen 1-D CNN with `supernet.nas` choice points (depth, conv widths and kernels, the activation, a
dense width), searched by `AutoModel(loss="mse", higher_is_better=False)`. The winner, retrained from
scratch, is compared on the test split with a fixed hand-designed CNN of similar size trained with
the same retrain recipe, and with predicting the training mean.

    python -m experiments.own_regression          # writes experiments/measured/own_regression/results.json
    python -m experiments.own_regression --tiny   # seconds: the code paths only, writes nothing
"""

from __future__ import annotations

import os
import time
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from experiments import common
from supernet import AutoModel, nas, retrain
from supernet.data import noisy_sines
from supernet import task as tasks
from supernet.one_shot import RetrainRecipe
from supernet.runtime import Runtime

RECORD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "measured", "own_regression", "results.json")


class Activation(nn.Module):
    """A function as a module, so `nas.Choice` can choose between functions."""
    fn: Callable

    def __call__(self, x):
        return self.fn(x)


class Block(nn.Module):
    @nn.compact
    def __call__(self, x, train=False):
        h = nas.Conv(features=(16, 32), kernel_size=(3, 7), name="conv")(x)            # width and kernel
        h = nn.BatchNorm(use_running_average=not train)(h)
        h = nas.Choice([Activation(nn.relu, name="relu"), Activation(nn.gelu, name="gelu"),
                        Activation(jnp.tanh, name="tanh")], name="act")(h)            # the activation
        return x + nas.Conv(features=x.shape[-1], kernel_size=3, name="proj")(h)


class Net(nn.Module):
    @nn.compact
    def __call__(self, x, train=False):
        x = nn.Conv(16, (5,))(x)
        x = nas.Repeat(Block, depth=(1, 2, 3), name="stage")(x, train)                 # number of blocks
        x = nn.LayerNorm()(x.mean(1))   # bounded features: an MSE's gradients are not bounded as softmax's are
        return nn.Dense(1)(nn.relu(nas.Dense(features=(16, 32, 64), name="fc")(x)))   # dense width


class Baseline(nn.Module):
    """Hand-designed: two residual blocks, 24 wide, 5-wide kernels, ReLU, a 32-wide dense layer."""

    @nn.compact
    def __call__(self, x, train=False):
        x = nn.Conv(16, (5,))(x)
        for _ in range(2):
            h = nn.relu(nn.BatchNorm(use_running_average=not train)(nn.Conv(24, (5,))(x)))
            x = x + nn.Conv(16, (3,))(h)
        return nn.Dense(1)(nn.relu(nn.Dense(32)(nn.LayerNorm()(x.mean(1)))))


# Learning rate 0.005, not the default 0.05: an MSE's gradients grow with the error (cross-entropy's
# are bounded), and at 0.01 this supernet's loss diverged within 50 steps.
LR = 0.005
SIZES = {"tiny": dict(n=200, supernet={"steps": 4, "learning_rate": LR, "batch_size": 32},
                      search={"budget": 2, "population": 2}, retrain={"steps": 2, "learning_rate": LR, "batch_size": 32}),
         "full": dict(n=4000, supernet={"steps": 1500, "learning_rate": LR}, search={"budget": 60, "population": 10},
                      retrain={"steps": 1000, "learning_rate": LR})}


def train_baseline(dataset, retrain_options: dict, seed: int) -> tuple[float, int]:
    """(test MSE, params) of `Baseline` trained with the search's retrain recipe (`retrain_options`)."""
    recipe = RetrainRecipe(**retrain_options)
    module = Baseline()
    variables = retrain.train_standalone(module, dataset.train, steps=recipe.steps, batch_size=recipe.batch_size,
                                         optimizer=recipe.optimizer(), key=jax.random.key(seed),
                                         runtime=Runtime(progress=False), task=tasks.resolve(loss="mse"))
    params = sum(leaf.size for leaf in jax.tree_util.tree_leaves(variables["params"]))
    return retrain.score(module, variables, dataset.test, tasks.resolve(loss="mse")), int(params)


def main(size: str = "full", progress: bool = True, seed: int = 0) -> dict:
    """Searches `Net` on the noisy-sine task at `size` ("tiny" or "full"); returns the summary."""
    tic = time.perf_counter()
    sizes = dict(SIZES[size])
    x, y = noisy_sines(sizes.pop("n"), seed)
    model = AutoModel(Net(), data=(x, y), loss="mse", metric="mse", higher_is_better=False, seed=seed,
                      progress=progress, **sizes)
    result = model.search()
    baseline_mse, baseline_params = train_baseline(result.dataset, sizes["retrain"], seed)
    mean_mse = float(np.mean((result.dataset.test.y - result.dataset.train.y.mean()) ** 2))
    summary = {"metric": result.metric, "best_architecture": result.best_architecture_dict,
               "test_mse": result.test_metric, "supernet_val_mse": result.supernet_val_metric,
               "params": result.params, "flops": result.flops,
               "baseline": {"test_mse": baseline_mse, "params": baseline_params},
               "predict_the_training_mean": {"test_mse": mean_mse},
               "evaluated": len(result.history["val_metric"]), "decisions": result.space.decision_names,
               "split_sizes": {s: len(result.dataset.split(s)) for s in ("train", "val", "test")},
               "wall_time_s": time.perf_counter() - tic, "sizes": SIZES[size], "seed": seed,
               "provenance": result.results["provenance"]}
    print(repr(result))
    print(f"test MSE: searched {result.test_metric:.4f}, baseline {baseline_mse:.4f}, training mean {mean_mse:.4f}")
    return summary


if __name__ == "__main__":
    common.example_command_line(__doc__.splitlines()[0], main, RECORD)
