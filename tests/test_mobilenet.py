"""Tests for the MobileNet space: layout, naming, exact params / FLOPs, extraction, one compilation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from space_helpers import abstract_variables, archs, matmul_flops, normal, random_params
import strategies
from supernet import spaces
from supernet.evaluation import calibrate, predict
from supernet.layers import STATS_COLLECTION
from supernet.layers import conv
from supernet.layers import depthwise_conv
from supernet.spaces.mobilenet import MobileNetSpace
from supernet.training import cross_entropy, one_hot

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


def test_sample_and_string_round_trip():
    space = tiny()
    sample = np.asarray(space.sample(jax.random.PRNGKey(1), 50))
    assert sample.shape == (50, space.num_decisions)
    assert (sample >= 0).all() and (sample < np.asarray(space.num_choices)).all()
    for arch in sample:
        assert np.array_equal(space.from_string(space.to_string(arch)), arch)


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


@pytest.mark.parametrize("input_shape", [(8, 8, 1), (16, 2)])
def test_params_match_standalone_network(input_shape):
    space = tiny(input_shape)
    for arch in archs(space, 6):
        variables = abstract_variables(space.standalone(arch), input_shape)
        count = sum(leaf.size for leaf in jax.tree_util.tree_leaves(variables["params"]))
        assert space.params(arch) == count, space.to_string(arch)
    assert space.params(space.largest()) > space.params(space.smallest())


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


@pytest.mark.parametrize("input_shape", [(8, 8, 1), (16, 2)])
def test_extracted_standalone_reproduces_supernet(input_shape):
    space = tiny(input_shape)
    model = space.supernet()
    x = normal(16, *input_shape)
    params = random_params(model, x, one_hot(space, jnp.asarray(space.largest())))

    @jax.jit
    def supernet_eval(weights):
        stats = calibrate(model, params, weights, x)
        return stats, predict(model, params, stats, weights, x)

    for arch in archs(space, 2, seed=input_shape[0]):
        stats, expected = supernet_eval(one_hot(space, jnp.asarray(arch)))
        variables = space.extract_variables({"params": params, STATS_COLLECTION: stats}, arch)
        net = space.standalone(arch)
        got = jax.jit(lambda v: net.apply(v, x, train=False))(variables)
        np.testing.assert_allclose(got, expected, atol=1e-5, rtol=1e-5, err_msg=space.to_string(arch))


def test_one_compilation_serves_every_architecture_and_soft_weights():
    space = spaces.get("mobilenet", input_shape=(8, 8, 1),
                       **{**TINY, "stages": ((4, 2, 1), (8, 1, 2)), "kernel_sizes": (1, 3)})
    model = space.supernet(mixed=True)  # accepted; the same masked supernet
    x = normal(4, *space.input_shape)
    y = jnp.arange(4) % 10
    params = random_params(model, x, one_hot(space, jnp.asarray(space.largest())))
    traces = []

    @jax.jit
    def loss_and_grad(params, weights):
        traces.append(1)  # runs only while tracing
        loss = lambda p: cross_entropy(model.apply({"params": p}, x, weights, train=True), y)
        return jax.value_and_grad(loss)(params)

    for arch in archs(space, 8):
        loss_and_grad(params, one_hot(space, jnp.asarray(arch)))
    # soft rows (padded slots 0), as a differentiable search passes them
    logits = normal(space.num_decisions, max(space.num_choices), seed=3)
    soft = jax.nn.softmax(jnp.where(space.option_mask(), logits, -jnp.inf), axis=-1)
    loss, grads = loss_and_grad(params, soft)
    assert len(traces) == 1
    assert np.isfinite(loss) and all(np.isfinite(g).all() for g in jax.tree_util.tree_leaves(grads))
    out = model.apply({"params": params}, x, soft, train=True)
    assert out.shape == (4, 10) and np.isfinite(out).all()
