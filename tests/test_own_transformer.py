"""The Transformer encoder example (experiments/own_transformer.py) searched end to end at a tiny size."""

import jax
import numpy as np
import pytest

from experiments import own_transformer
from supernet import retrain


@pytest.fixture(scope="module")
def tiny():
    return own_transformer.main("tiny", progress=False)


def test_search_ran_over_width_depth_mixer_heads_and_mlp_width(tiny):
    summary, result = tiny
    per_block = ("mixer", "attention.num_heads", "mlp.features")
    assert summary["decisions"] == ("width", "blocks.depth") + tuple(
        f"blocks.block{i}.{kind}" for i in (1, 2) for kind in per_block)
    assert summary["evaluated"] == 4 == len(result.history["val_accuracy"])
    assert np.isfinite(result.history["val_accuracy"]).all()


def test_winner_is_plain_flax_with_exactly_the_counted_parameters(tiny):
    summary, result = tiny
    assert set(result.variables) <= {"params", "batch_stats"}   # no supernet collections
    leaves = jax.tree_util.tree_leaves(result.variables["params"])
    assert all(isinstance(leaf, jax.Array) for leaf in leaves)
    counted = sum(leaf.size for leaf in leaves)
    assert counted == result.space.params(result.architecture) == summary["winner"]["params"]
    # Each block holds only the chosen options' weights, at their static sizes.
    chosen, blocks = result.best_architecture_dict, result.variables["params"]["blocks"]
    width = int(chosen["width"])   # the residual stream's, from the embedding on
    assert result.variables["params"]["embed"]["kernel"].shape == (1, width)
    assert result.variables["params"]["positions"]["embedding"].shape == (40, width)
    assert sorted(blocks) == [f"block{i}" for i in range(1, int(chosen["blocks.depth"]) + 1)]
    for name, block in blocks.items():
        assert block["mlp"]["kernel"].shape == (width, int(chosen[f"blocks.{name}.mlp.features"]))
        assert block["mlp_out"]["kernel"].shape[-1] == width
        if chosen[f"blocks.{name}.mixer"] == "ConvMixer(conv)":
            assert "attention" not in block and block["conv"]["depthwise"]["kernel"].shape == (5, 1, width)
        else:
            heads = int(chosen[f"blocks.{name}.attention.num_heads"])   # the first heads of the shared weights
            assert "conv" not in block and sorted(block["attention"]) == ["key", "out", "query", "value"]
            assert block["attention"]["query"]["kernel"].shape == (width, heads, 4)   # head_dim 4
            assert block["attention"]["out"]["kernel"].shape == (heads, 4, width)
    # The decisions the winner does not use: blocks past its depth, the heads of a conv mixer.
    def unused(name):
        if not name.startswith("blocks.block"):
            return False
        block = name.split(".")[1]
        return block not in blocks or name.endswith("num_heads") and chosen[f"blocks.{block}.mixer"] == "ConvMixer(conv)"
    assert result.inactive_decisions == [n for n in result.space.decision_names if unused(n)]
    assert result.results["inactive_decisions"] == result.inactive_decisions == summary["winner"]["inactive_decisions"]


def test_winner_and_baselines_have_test_accuracies(tiny):
    summary, result = tiny
    assert summary["winner"]["test_accuracy"] == result.best_accuracy == retrain.accuracy(
        result.network, result.variables, result.dataset.test)
    assert set(summary["baselines"]) == {"mid", "large"}
    for baseline in summary["baselines"].values():
        assert len(baseline["test_accuracy_per_retrain_seed"]) == 1
        assert 0.0 <= baseline["mean_test_accuracy"] <= 1.0 and baseline["params"] > 0
        assert baseline["architecture"]["blocks.depth"] == "2"   # the tiny model's largest depth is 2
        assert baseline["architecture"]["width"] == "8"   # its middle and largest width
        assert {baseline["architecture"][f"blocks.block{i}.{kind}"] for i in (1, 2)
                for kind in ("mixer", "attention.num_heads")} == {"MultiHeadAttention(attention)", "2"}
