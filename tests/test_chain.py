"""Tests for user-defined chain spaces: errors, strings, exact FLOPs (the contract every space
meets is in test_spaces.py)."""

import jax
import jax.numpy as jnp
import pytest

from space_helpers import abstract_variables, archs, matmul_flops
from supernet import spaces
from supernet.spaces.chain import OPERATIONS, ChainSpace

# every operation of the library appears once
CHOICES = {"block1": ["conv", "sepconv", "maxpool", "identity"],
           "block2": ["residual", "conv1x1", "avgpool"],
           "block3": ("linear", "mlp", "conv5x5")}


def tiny(input_shape=(8, 8, 1)):
    return spaces.get("chain", choices=CHOICES, channels=4, num_classes=10, input_shape=input_shape)


def test_registry_and_direct_construction():
    space = tiny()
    assert isinstance(space, ChainSpace)
    assert space.decision_names == ("block1", "block2", "block3")
    assert space.options[2] == ("linear", "mlp", "conv5x5")
    assert space.to_string([0, 0, 1]) == "block1=conv,block2=residual,block3=mlp"
    direct = ChainSpace(CHOICES, channels=4, input_shape=(8, 8, 1))
    assert direct.options == space.options and direct.size == 4 * 3 * 3
    assert set(OPERATIONS) == {"conv", "conv1x1", "conv5x5", "sepconv", "residual", "maxpool",
                               "avgpool", "identity", "linear", "mlp"}


def test_largest_smallest_parameter_free():
    space = tiny()
    assert space.to_string(space.largest()) == "block1=conv,block2=residual,block3=conv5x5"
    assert space.to_string(space.smallest()) == "block1=maxpool,block2=avgpool,block3=linear"
    assert space.parameter_free([2, 2, 0]).tolist() == [True, True, False]
    assert space.parameter_free([[3, 0, 1], [1, 1, 1]]).tolist() == [[True, False, False], [False] * 3]


@pytest.mark.parametrize("choices, message", [
    ({"b1": ["conv", "warp"]}, r"'b1'.*unknown operation 'warp'.*conv, conv1x1"),
    ({"b1": []}, r"'b1' has an empty list"),
    ({"b1": "conv"}, r"'b1' must map to a list.*str"),
    ({"b1": {"conv": 1}}, r"'b1' must map to a list.*dict"),
    ({}, r"`choices` is empty"),
    (["conv"], r"must be a dict"),
    ({"b1": ["conv", 3]}, r"'b1' has a non-string option 3"),
    ({"b1": ["conv", "conv"]}, r"'b1' lists an operation twice"),
    ({"stem": ["conv"]}, r"'stem' is reserved"),
    ({"a,b": ["conv"]}, r"'a,b' must be a non-empty string"),
])
def test_choice_errors_name_the_decision(choices, message):
    with pytest.raises(ValueError, match=message):
        spaces.get("chain", choices=choices)


def test_validate_errors_name_the_decision():
    space = tiny()
    with pytest.raises(ValueError, match="block2"):
        space.validate([0, 3, 0])
    with pytest.raises(ValueError, match="block3"):
        space.from_string("block1=conv,block2=residual,block3=warp")


@pytest.mark.parametrize("input_shape", [(8, 8, 1), (12, 3)])
def test_flops_match_the_traced_convolutions(input_shape, grouped_depthwise):
    """Exact: the analytic count equals the conv/dot multiply-adds of the traced standalone net
    (params are checked for every space in test_spaces.py)."""
    space = tiny(input_shape)
    for arch in archs(space, 4):
        net = space.standalone(arch)
        variables = abstract_variables(net, input_shape)
        jaxpr = jax.make_jaxpr(lambda v, x: net.apply(v, x, train=False))(variables, jnp.zeros((1, *input_shape)))
        assert space.flops(arch) == matmul_flops(jaxpr.jaxpr), space.to_string(arch)


def test_flops_close_to_xla_cost_analysis():
    """XLA also counts element-wise work (BN, ReLU, the residual add) and leaves out the taps that
    fall on padding; with 16 channels on 32x32 inputs both stay small for convolutional blocks, so
    we require 10%. (Pool / identity blocks count 0 here but not in XLA, so they are left out.)"""
    space = ChainSpace({"a": ["conv"], "b": ["sepconv"], "c": ["residual"], "d": ["mlp"]},
                       channels=16, input_shape=(32, 32, 3))
    arch = space.largest()
    net = space.standalone(arch)
    variables = jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype),
                                       abstract_variables(net, space.input_shape))
    x = jnp.zeros((1, *space.input_shape))
    cost = jax.jit(lambda v, x: net.apply(v, x, train=False)).lower(variables, x).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    assert abs(cost["flops"] / space.flops(arch) - 1) < 0.10, (cost["flops"], space.flops(arch))


def test_sparse_path_runs_the_chosen_operations_and_equals_the_masked_one():
    """On the CPU's `nas_path="sparse"` a path runs only its operations (the chain's convs inside the
    conditionals take forward-layout gradients, a custom_vjp): the same outputs and gradients as
    the masked supernet; the mixed (DARTS) supernet is masked."""
    import numpy as np
    space = spaces.get("chain", choices={f"b{i}": ["conv", "maxpool", "residual", "identity"] for i in (1, 2)},
                       channels=4, num_classes=10, input_shape=(8, 8, 1))
    model = space.supernet()
    assert model.sparse and not space.supernet(mixed=True).sparse
    masked = model.clone(sparse=False)
    x = jax.random.normal(jax.random.key(0), (4, 8, 8, 1))
    params = model.init(jax.random.key(1), x, space.largest(), train=False)["params"]
    for arch in np.asarray(space.sample(jax.random.key(2), 6)):
        weights = jax.nn.one_hot(arch, max(space.num_choices))
        outs = [jax.value_and_grad(lambda p: m.apply({"params": p}, x, weights, train=True).sum())(params)
                for m in (model, masked)]
        np.testing.assert_allclose(outs[0][0], outs[1][0], rtol=1e-5, atol=1e-5)
        for a, b in zip(jax.tree_util.tree_leaves(outs[0][1]), jax.tree_util.tree_leaves(outs[1][1])):
            np.testing.assert_allclose(a, b, atol=1e-4)
    jaxpr = str(jax.make_jaxpr(lambda w: model.apply({"params": params}, x, w, train=True))(weights))
    assert "cond[" in jaxpr and "custom_vjp_call" in jaxpr
