"""Search your own Flax Transformer encoder: depth, heads, MLP width and attention versus a conv mixer.

MNIST-1D read as a sequence of 40 tokens of one value each. The encoder is an ordinary Linen
module with `supernet.nas` choice points in it; `AutoModel` traces it into a search space, trains
the weight-sharing supernet, searches it and retrains the winner from scratch. A fixed
hand-designed member of the same module (2 blocks, 2-head attention, MLP width 64) is retrained
from scratch with the same recipe, steps and seeds, as the baseline the winner must beat.

    python -m experiments.own_transformer          # writes experiments/measured/own_transformer/results.json
    python -m experiments.own_transformer --tiny   # seconds: the code paths only, writes nothing
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import time

import flax.linen as nn
import jax
import numpy as np

from supernet import AutoModel, data, nas, one_shot, retrain, sharding
from supernet.api import SearchResult

RECORD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "measured", "own_transformer", "results.json")

class Attention(nn.Module):
    """Self-attention with a searched number of heads (each option has its own weights)."""
    heads: tuple = (1, 2, 4)

    @nn.compact
    def __call__(self, x):
        options = [nn.MultiHeadDotProductAttention(num_heads=h, name=f"heads{h}") for h in self.heads]
        return nas.Choice(options, name="heads")(x)


class ConvMixer(nn.Module):
    """Token mixing without attention: a depthwise 1-D conv along the sequence, then a channel mix."""
    kernel_size: int = 5

    @nn.compact
    def __call__(self, x):
        width = x.shape[-1]
        x = nn.Conv(width, (self.kernel_size,), feature_group_count=width, name="depthwise")(x)
        return nn.Dense(width, name="pointwise")(x)


class Block(nn.Module):
    """A pre-LayerNorm encoder block: a searched token mixer, then an MLP of searched width, each
    on a residual."""
    heads: tuple = (1, 2, 4)
    mlp_widths: tuple = (32, 64, 128)

    @nn.compact
    def __call__(self, x):
        mixer = nas.Choice([Attention(self.heads, name="attention"), ConvMixer(name="conv")], name="mixer")
        x = x + mixer(nn.LayerNorm(name="norm1")(x))
        h = nn.gelu(nas.Dense(features=self.mlp_widths, name="mlp")(nn.LayerNorm(name="norm2")(x)))
        return x + nn.Dense(x.shape[-1], name="mlp_out")(h)   # sees the chosen MLP width


def sinusoidal_positions(tokens: int, width: int) -> np.ndarray:
    """float[tokens, width]: the fixed sine/cosine position code of "Attention is all you need"."""
    angle = np.arange(tokens)[:, None] / 10000 ** (np.arange(0, width, 2) / width)
    return np.concatenate([np.sin(angle), np.cos(angle)], axis=1).astype(np.float32)


class Encoder(nn.Module):
    """float[N, tokens, 1] -> logits[N, classes]: a dense token embedding of `width` plus a
    sinusoidal position code, 1 to max(`depths`) searched blocks, a classifier on the mean over tokens."""
    width: int = 32
    depths: tuple = (1, 2, 3, 4)
    heads: tuple = (1, 2, 4)
    mlp_widths: tuple = (32, 64, 128)
    num_classes: int = 10

    @nn.compact
    def __call__(self, x):
        x = nn.Dense(self.width, name="embed")(x) + sinusoidal_positions(x.shape[1], self.width)
        block = functools.partial(Block, heads=self.heads, mlp_widths=self.mlp_widths)
        x = nas.Repeat(block, depth=self.depths, name="blocks")(x)
        return nn.Dense(self.num_classes, name="head")(nn.LayerNorm(name="norm")(x).mean(axis=1))


# The hand-designed baseline, by the last part of each decision's name: 2 blocks, each with 2-head
# attention and an MLP of width 64.
BASELINE = {"depth": "2", "mixer": "Attention(attention)", "heads": "MultiHeadDotProductAttention(heads2)",
            "features": "64"}

# Tiny: a small model on 1,000 generated examples instead of the official 5,000 (the code paths only).
SIZES = {"tiny": dict(model=dict(width=8, depths=(1, 2), heads=(1, 2), mlp_widths=(32, 64)),
                      data={"num_samples": 1000}, supernet={"steps": 4}, search={"budget": 4, "population": 2},
                      retrain={"steps": 4}, seeds=1),
         "full": dict(model={}, data={}, supernet={"steps": 1500}, search={"budget": 60, "population": 10},
                      retrain={"steps": 1500}, seeds=2)}


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
            optimizer=recipe.optimizer(), key=jax.random.fold_in(retrain_key, i), mesh=sharding.make_mesh(),
            progress=progress)
        accuracies.append(retrain.accuracy(network, variables, dataset.test))
    return accuracies


def main(size: str = "full", progress: bool = True) -> tuple[dict, SearchResult]:
    """Searches `Encoder` on MNIST-1D at `size` ("tiny" or "full") and retrains the baseline.

    Returns (summary, result): the summary is what the full run writes to results.json; the
    result is AutoModel's `SearchResult` (the retrained winner's network and variables)."""
    sizes = dict(SIZES[size])
    model, seeds = Encoder(**sizes.pop("model")), sizes.pop("seeds")
    tic = time.perf_counter()
    mnist1d = data.get("mnist1d", seed=0, **sizes.pop("data"))
    result = AutoModel(model, data=mnist1d, seed=0, progress=progress, **sizes).search()
    space, dataset, recipe = result.space, result.dataset, one_shot.RetrainRecipe(**sizes["retrain"])
    searched_s = time.perf_counter() - tic
    baseline = architecture(space, BASELINE)
    winner_runs = [result.best_accuracy] + retrain_seeds(space, result.architecture, dataset, recipe,
                                                         range(1, seeds), progress)
    baseline_runs = retrain_seeds(space, baseline, dataset, recipe, range(seeds), progress)
    counted = sum(leaf.size for leaf in jax.tree_util.tree_leaves(result.variables["params"]))
    summary = {
        "winner": {"architecture": result.best_architecture_dict, "test_accuracy": result.best_accuracy,
                   "test_accuracy_per_retrain_seed": winner_runs,
                   "mean_test_accuracy": float(np.mean(winner_runs)), "params": result.params,
                   "params_counted_in_the_retrained_variables": int(counted),
                   "supernet_val_accuracy": result.supernet_val_accuracy,
                   "inherited_weights_test_accuracy": result.results["inherited_weights_test_accuracy"]},
        "baseline": {"architecture": dict(zip(space.decision_names,
                                              (space.options[d][c] for d, c in enumerate(baseline)))),
                     "test_accuracy": baseline_runs[0], "test_accuracy_per_retrain_seed": baseline_runs,
                     "mean_test_accuracy": float(np.mean(baseline_runs)),
                     "params": space.params(baseline)},
        "decisions": space.decision_names, "evaluated": len(result.history["val_accuracy"]),
        "dataset": result.results["dataset"], "sizes": SIZES[size],
        "timings": {"automodel_s": searched_s, "wall_s": time.perf_counter() - tic, **result.results["timings"]},
        "provenance": result.results["provenance"],
    }
    print(repr(result))
    print(f"winner {np.mean(winner_runs):.4f} ({result.params:,} params) vs baseline "
          f"{np.mean(baseline_runs):.4f} ({summary['baseline']['params']:,} params), mean test accuracy over "
          f"{seeds} retrain seed(s)")
    return summary, result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="tiny sizes: the code paths only, nothing written")
    args = parser.parse_args()
    found, _ = main("tiny" if args.tiny else "full", progress=not args.tiny)
    if not args.tiny:
        os.makedirs(os.path.dirname(RECORD), exist_ok=True)
        with open(RECORD, "w") as f:
            json.dump(found, f, indent=2, default=float)
        print(f"wrote {RECORD}")
