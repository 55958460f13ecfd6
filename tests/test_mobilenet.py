"""Tests for the MobileNet space: layout, naming, canonical forms, exact FLOPs (the contract every
space meets is in test_spaces.py)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from space_helpers import abstract_variables, archs, matmul_flops, normal
import strategies
from supernet import spaces
from supernet.layers import conv
from supernet.layers import depthwise_conv
from supernet.spaces.mobilenet import MobileNetSpace

# tiny: 2 stages, elastic everything, a width decision; 8x8 inputs keep every compile short
TINY = dict(stages=((4, 2, 1), (8, 2, 2)), kernel_sizes=(3, 5), expand_ratios=(2, 3),
            width_mults=(0.5, 1.0), stem_channels=4, head_channels=16)


def tiny(input_shape=(8, 8, 1)):
    return spaces.get("mobilenet", input_shape=input_shape, **TINY)


def test_registry_and_layout():
    space = tiny()
    assert isinstance(space, MobileNetSpace)
    assert space.decision_names == (
        "stage1_depth", "stage1_block1_kernel", "stage1_block1_expand", "stage1_block2_kernel",
        "stage1_block2_expand", "stage2_depth", "stage2_block1_kernel", "stage2_block1_expand",
        "stage2_block2_kernel", "stage2_block2_expand", "width")
    assert space.options[0] == ("1", "2") and space.options[1] == ("3", "5")
    assert space.options[2] == ("2", "3") and space.options[-1] == ("0.5", "1")
    default = spaces.get("mobilenet")
    assert "width" not in default.decision_names  # one multiplier: nothing to search
    assert default.options[default.decision_names.index("stage2_depth")] == ("1", "2", "3")
    assert spaces.get("mobilenet", min_depth=2).options[0] == ("2",)  # capped at max_depth


def test_validate_errors_name_the_decision():
    space = tiny()
    bad = space.largest().copy()
    bad[space.decision_names.index("stage2_block1_kernel")] = 7
    with pytest.raises(ValueError, match="stage2_block1_kernel"):
        space.validate(bad)
    with pytest.raises(ValueError, match="stage1_depth"):
        space.from_string(space.to_string(space.largest()).replace("stage1_depth=2", "stage1_depth=9"))
    with pytest.raises(ValueError, match="odd"):
        MobileNetSpace(kernel_sizes=(3, 4))
    with pytest.raises(ValueError, match="stages"):
        MobileNetSpace(stages=())


def test_canonical_ignores_blocks_beyond_depth():
    space = tiny()
    a = space.largest().copy()
    a[0] = 0  # stage 1 depth 1: block 2's choices no longer matter
    b = a.copy()
    b[3], b[4] = 0, 0
    assert np.array_equal(space.canonical(a), space.canonical(b))
    assert space.params(a) == space.params(b)
    assert space.to_string(space.canonical(a)) != space.to_string(space.canonical(space.largest()))
    assert np.array_equal(jax.jit(space.canonical)(np.stack([a, b])), np.stack([space.canonical(a)] * 2))


def test_strategies_never_query_two_names_of_one_mobilenet():
    space = tiny()
    strategy = strategies.get("evolution", space, population_size=8)
    state, names = strategy.init(jax.random.key(0)), set()
    for step in range(12):
        archs, state = strategy.ask(jax.random.key(step), state, 4)
        state = strategy.tell(state, archs, np.asarray([space.params(a) for a in np.asarray(archs)], np.float32))
        names |= {space.to_string(space.canonical(a)) for a in np.asarray(archs)}
    assert len(names) == 48


@pytest.mark.parametrize("shape, window, stride", [((2, 9, 9, 5), 3, 1), ((2, 8, 8, 5), 7, 2), ((2, 11, 3), 5, 2)])
def test_depthwise_conv_matches_grouped_conv(shape, window, stride):
    x = normal(*shape)
    kernel = normal(*(window,) * (len(shape) - 2), 1, shape[-1], seed=2)
    np.testing.assert_allclose(depthwise_conv(x, kernel, stride), conv(x, kernel, stride, groups=shape[-1]),
                               atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("input_shape", [(8, 8, 1), (9, 2)])
def test_flops_match_the_traced_convolutions(input_shape, grouped_depthwise):
    """Exact: the analytic count equals the conv/dot multiply-adds of the traced standalone net."""
    space = tiny(input_shape)
    for arch in archs(space, 4):
        net = space.standalone(arch)
        variables = abstract_variables(net, input_shape)
        x = jnp.zeros((1, *input_shape))
        jaxpr = jax.make_jaxpr(lambda v, x: net.apply(v, x, train=False))(variables, x)
        assert space.flops(arch) == matmul_flops(jaxpr.jaxpr), space.to_string(arch)


def test_flops_close_to_xla_cost_analysis():
    """XLA's count differs from ours in two known ways: it adds element-wise work (BN, ReLU6,
    residual adds) and leaves out taps that fall on padding. On a 32x32 input with moderately wide
    layers both are small, so the largest network must agree within 10%; the smallest (narrow
    layers, where BN/ReLU6 weigh relatively more) within 25%."""
    space = spaces.get("mobilenet", input_shape=(32, 32, 3), stages=((16, 1, 1), (32, 2, 2)),
                       kernel_sizes=(3, 5), expand_ratios=(3, 6), width_mults=(0.5, 1.0),
                       stem_channels=16, head_channels=64)
    for arch, tolerance in ((space.largest(), 0.10), (space.smallest(), 0.25)):
        net = space.standalone(arch)
        variables = jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype),
                                           abstract_variables(net, space.input_shape))
        x = jnp.zeros((1, *space.input_shape))
        cost = jax.jit(lambda v, x: net.apply(v, x, train=False)).lower(variables, x).compile().cost_analysis()
        cost = cost[0] if isinstance(cost, (list, tuple)) else cost
        assert abs(cost["flops"] / space.flops(arch) - 1) < tolerance, (cost["flops"], space.flops(arch))


def test_body_without_stem_masks_the_input_past_the_chosen_width():
    """stem=False: the input stands in for the stem's output, so its channels past the chosen width
    are zeroed, as the stem's would be (nas.Prefix)."""
    space = tiny()
    body = space.body(stem=False)
    x = normal(2, 8, 8, 4)   # full(stem_channels) = 4 channels; width 0.5 keeps 2
    arch = space.largest().copy()
    arch[space.decision_names.index("width")] = 0
    variables = jax.jit(lambda k: body.init(k, x, arch, train=True))(jax.random.key(0))
    zeroed = x.at[..., 2:].set(0.0)
    np.testing.assert_array_equal(body.apply(variables, x, arch, train=True),
                                  body.apply(variables, zeroed, arch, train=True))
    assert not np.array_equal(body.apply(variables, x, space.largest(), train=True),
                              body.apply(variables, zeroed, space.largest(), train=True))
