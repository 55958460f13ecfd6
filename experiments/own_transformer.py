"""Search your own Flax Transformer encoder: embedding width, depth, heads, MLP width and attention versus a conv mixer.

MNIST-1D read as a sequence of 40 tokens of one value each. The encoder is an ordinary Linen
module with `supernet.nas` choice points in it; `AutoModel` traces it into a search space, trains
the weight-sharing supernet, searches it and retrains the winner from scratch. Two fixed
hand-designed members of the same module, all attention (2 blocks with 2 heads, embedding width
16 and MLP width 32; 3 blocks with 2 heads, embedding width 24 and MLP width 64), are retrained
from scratch with the same recipe, steps and seeds as the winner: the baselines it must beat.

    python -m experiments.own_transformer          # writes experiments/measured/own_transformer/results.json
    python -m experiments.own_transformer --tiny   # seconds: the code paths only, writes nothing
"""

from __future__ import annotations

import functools
import os
import time
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from experiments import common
from supernet import AutoModel, data, nas, one_shot, retrain
from supernet.api import SearchResult
from supernet.runtime import Runtime

RECORD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "measured", "own_transformer", "results.json")

class ConvMixer(nn.Module):
    """Token mixing without attention: a depthwise 1-D conv along the sequence, then a channel mix
    back to the stream's `width`."""
    width: Any
    kernel_size: int = 5

    @nn.compact
    def __call__(self, x):
        x = nas.DepthwiseConv(kernel_size=self.kernel_size, use_bias=True, name="depthwise")(x)
        return nas.Dense(self.width, name="pointwise")(x)


class Block(nn.Module):
    """A pre-LayerNorm encoder block on a residual stream of `width` (a searched `nas.Value`): a
    searched token mixer (self-attention with a searched number of heads of `head_dim` features,
    sharing their weights, or the conv mixer), then an MLP of searched width, each on a residual."""
    width: Any
    heads: tuple = (1, 2, 4)
    head_dim: int = 8
    mlp_widths: tuple = (16, 32, 64)

    @nn.compact
    def __call__(self, x):
        attention = nas.MultiHeadAttention(num_heads=self.heads, head_dim=self.head_dim, out_features=self.width,
                                           name="attention")
        mixer = nas.Choice([attention, ConvMixer(self.width, name="conv")], name="mixer")
        x = x + mixer(nas.LayerNorm(self.width, name="norm1")(x))
        h = nn.gelu(nas.Dense(features=self.mlp_widths, name="mlp")(nas.LayerNorm(self.width, name="norm2")(x)))
        return x + nas.Dense(self.width, name="mlp_out")(h)


class Encoder(nn.Module):
    """float[N, tokens, 1] -> logits[N, classes]: a dense token embedding of a searched width plus
    learned positions of the same width (the residual stream's width, one decision for the whole
    network), 1 to max(`depths`) searched blocks, a classifier on the mean over tokens."""
    widths: tuple = (8, 16, 24)
    depths: tuple = (1, 2, 3)
    heads: tuple = (1, 2, 4)
    head_dim: int = 8
    mlp_widths: tuple = (16, 32, 64)
    num_classes: int = 10

    @nn.compact
    def __call__(self, x):
        width = nas.Value("width", self.widths)
        positions = nas.Embed(x.shape[1], width, name="positions")(jnp.arange(x.shape[1]))
        x = nas.Dense(width, name="embed")(x) + positions
        block = functools.partial(Block, width=width, heads=self.heads, head_dim=self.head_dim,
                                  mlp_widths=self.mlp_widths)
        x = nas.Repeat(block, depth=self.depths, name="blocks")(x)
        return nn.Dense(self.num_classes, name="head")(nas.LayerNorm(width, name="norm")(x).mean(axis=1))


def baselines(model: Encoder) -> dict:
    """The fixed hand-designed baselines, each {last part of a decision's name: option label}:
    "mid", 2 blocks of 2-head attention with the middle embedding and MLP widths; "large", the
    most blocks of 2-head attention with the widest embedding and MLP (more parameters than most
    of the space)."""
    attention = {"mixer": "MultiHeadAttention(attention)", "num_heads": "2"}
    return {"mid": {**attention, "depth": "2", "width": str(model.widths[1]), "features": str(model.mlp_widths[1])},
            "large": {**attention, "depth": str(max(model.depths)), "width": str(max(model.widths)),
                      "features": str(max(model.mlp_widths))}}


# Tiny: a small model on 1,000 generated examples instead of the official 5,000 (the code paths only).
SIZES = {"tiny": dict(model=dict(widths=(4, 8), depths=(1, 2), heads=(1, 2), head_dim=4, mlp_widths=(16, 32)),
                      data={"num_samples": 1000}, supernet={"steps": 4}, search={"budget": 4, "population": 2},
                      retrain={"steps": 4}, seeds=1),
         "full": dict(model={}, data={}, supernet={"steps": 2400}, search={"budget": 60, "population": 10},
                      retrain={"steps": 800}, seeds=2)}


def architecture(space, choices: dict) -> np.ndarray:
    """int32[D]: for each decision, the option labelled `choices[last part of its name]`."""
    labels = [[str(o) for o in options] for options in space.options]
    return np.asarray([labels[d].index(choices[name.rsplit(".", 1)[-1]])
                       for d, name in enumerate(space.decision_names)], np.int32)


def retrain_seeds(space, arch, dataset, recipe, seeds, progress: bool) -> list[float]:
    """Test accuracies of `arch` retrained from scratch with `recipe`, one per retrain key in `seeds`
    (key 0 is the one AutoModel retrains its winner with, at seed 0)."""
    retrain_key = jax.random.split(jax.random.key(0), 4)[2]   # as one_shot.run_one_shot_nas splits it
    accuracies = []
    for i in seeds:
        network, variables = one_shot.retrain_from_scratch(
            space, arch, recipe.split(dataset), steps=recipe.steps, batch_size=recipe.batch_size,
            optimizer=recipe.optimizer(), key=jax.random.fold_in(retrain_key, i), runtime=Runtime(progress=progress))
        accuracies.append(retrain.accuracy(network, variables, dataset.test))
    return accuracies


def main(size: str = "full", progress: bool = True) -> tuple[dict, SearchResult]:
    """Searches `Encoder` on MNIST-1D at `size` ("tiny" or "full") and retrains the baselines.

    Returns (summary, result): the summary is what the full run writes to results.json; the
    result is AutoModel's `SearchResult` (the retrained winner's network and variables)."""
    sizes = dict(SIZES[size])
    model, seeds = Encoder(**sizes.pop("model")), sizes.pop("seeds")
    tic = time.perf_counter()
    mnist1d = data.get("mnist1d", seed=0, **sizes.pop("data"))
    result = AutoModel(model, data=mnist1d, seed=0, progress=progress, **sizes).search()
    space, dataset, recipe = result.space, result.dataset, one_shot.RetrainRecipe(**sizes["retrain"])
    searched_s = time.perf_counter() - tic
    winner_runs = [result.best_accuracy] + retrain_seeds(space, result.architecture, dataset, recipe,
                                                         range(1, seeds), progress)
    counted = sum(leaf.size for leaf in jax.tree_util.tree_leaves(result.variables["params"]))
    summary = {
        "winner": {"architecture": result.best_architecture_dict, "inactive_decisions": result.inactive_decisions,
                   "test_accuracy": result.best_accuracy,
                   "test_accuracy_per_retrain_seed": winner_runs,
                   "mean_test_accuracy": float(np.mean(winner_runs)), "params": result.params,
                   "params_counted_in_the_retrained_variables": int(counted),
                   "supernet_val_accuracy": result.supernet_val_accuracy,
                   "inherited_weights_test_accuracy": result.results["inherited_weights_test_accuracy"]},
        "baselines": {},
        "decisions": space.decision_names, "evaluated": len(result.history["val_accuracy"]),
        "dataset": result.results["dataset"], "sizes": SIZES[size], "retrain_seeds": seeds,
    }
    retrained = {}   # architecture -> accuracies: a baseline equal to another is not retrained twice
    for name, choices in baselines(model).items():
        arch = architecture(space, choices)
        if tuple(arch) not in retrained:
            retrained[tuple(arch)] = retrain_seeds(space, arch, dataset, recipe, range(seeds), progress)
        runs = retrained[tuple(arch)]
        summary["baselines"][name] = {
            "architecture": dict(zip(space.decision_names, (space.options[d][c] for d, c in enumerate(arch)))),
            "test_accuracy_per_retrain_seed": runs, "mean_test_accuracy": float(np.mean(runs)),
            "params": space.params(arch)}
    summary["timings"] = {"automodel_s": searched_s, "wall_s": time.perf_counter() - tic,
                          **result.results["timings"]}
    summary["provenance"] = result.results["provenance"]
    print(repr(result))
    for name, found in [("winner", summary["winner"]), *summary["baselines"].items()]:
        print(f"{name:>8}: mean test accuracy {found['mean_test_accuracy']:.4f} over {seeds} retrain seed(s), "
              f"{found['params']:,} params")
    return summary, result


if __name__ == "__main__":
    common.example_command_line(__doc__.splitlines()[0], lambda size, progress: main(size, progress)[0], RECORD)
