"""Search your own Flax CNN: kernel size, width, depth and a connection, with `supernet.nas`.

The CNN is an ordinary Linen module with `nas` choice points in it. `AutoModel` traces it into a
search space, trains the weight-sharing supernet, searches it, and retrains the winner from scratch;
the winner's variables are plain Flax trees (`nn.Conv`, `nn.Dense`, `nn.BatchNorm` shapes).

    python -m experiments.own_cnn           # bundled 8x8 digits; writes experiments/measured/own_cnn/results.json
    python -m experiments.own_cnn --tiny    # seconds: the code paths only, writes nothing
"""

from __future__ import annotations

import os
import time

import flax.linen as nn
import jax

from experiments import common
from supernet import AutoModel, nas

RECORD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "measured", "own_cnn", "results.json")


class MyPool(nn.Module):
    """Any module of yours can be a candidate."""

    @nn.compact
    def __call__(self, x):
        return nn.avg_pool(x, (3, 3), padding="SAME")


class Block(nn.Module):
    @nn.compact
    def __call__(self, x, train=False):
        h = nas.Conv(features=(8, 16), kernel_size=(3, 5), name="conv")(x)    # width and kernel searched
        h = nn.relu(nn.BatchNorm(use_running_average=not train)(h))            # plain Flax BN
        return x + nas.Conv(features=x.shape[-1], kernel_size=3, name="proj")(h)


class Net(nn.Module):
    @nn.compact
    def __call__(self, x, train=False):
        x = stem = nn.Conv(16, (3, 3))(x)
        x = nas.Choice([nn.Conv(16, (3, 3)), nn.Conv(16, (1, 1)), MyPool()], name="op")(x)   # layer choice
        x = nas.Repeat(Block, depth=(1, 2, 3), name="stage")(x, train)                      # number of layers
        x = nas.InputChoice(n_chosen=1, name="skip")([stem, x])                             # connections
        return nn.Dense(10)(nn.relu(nas.Dense(features=(32, 64), name="fc")(x.mean((1, 2)))))


SIZES = {"tiny": dict(supernet={"steps": 10}, search={"budget": 4, "population": 2}, retrain={"steps": 5}),
         "full": dict(supernet={"steps": 1500}, search={"budget": 60, "population": 10}, retrain={"steps": 1000})}


def main(size: str = "full", progress: bool = True) -> dict:
    """Searches `Net` on digits at `size` ("tiny" or "full"); returns the result's summary."""
    tic = time.perf_counter()
    result = AutoModel(Net(), data="digits", progress=progress, **SIZES[size]).search()
    counted = sum(leaf.size for leaf in jax.tree_util.tree_leaves(result.variables["params"]))
    summary = {"best_architecture": result.best_architecture_dict, "best_accuracy": result.best_accuracy,
               "supernet_val_accuracy": result.supernet_val_accuracy, "params": result.params,
               "params_counted_in_the_retrained_variables": int(counted), "flops": result.flops,
               "evaluated": len(result.history["val_accuracy"]), "decisions": result.space.decision_names,
               "network": result.results["best_network"],
               "wall_time_s": time.perf_counter() - tic, "sizes": SIZES[size],
               "provenance": result.results["provenance"]}
    print(repr(result))
    return summary


if __name__ == "__main__":
    common.example_command_line(__doc__.splitlines()[0], main, RECORD)
