"""The Space contract, checked on every registered space: samples are in range and their strings
round-trip, one compilation of the supernet serves every architecture and soft weights, the
extracted standalone network reproduces the calibrated supernet, `params` counts the standalone
network exactly, and `largest`, `smallest` and `parameter_free` are what their names say."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from space_helpers import abstract_variables, archs, normal, random_params

from supernet import spaces
from supernet.evaluation import calibrate, predict
from supernet.layers import STATS_COLLECTION
from supernet.training import cross_entropy, one_hot

# A tiny instance of every registered space; a space registered without one fails below.
TINY = {
    "chain": dict(choices={"block1": ["conv", "sepconv", "maxpool", "identity"],
                           "block2": ["residual", "conv1x1", "avgpool"], "block3": ("linear", "mlp", "conv5x5")},
                  channels=4),
    "cnn1d": dict(stem_channels=4, widths=(2, 4), kernel_sizes=(1, 3), depths=(1, 2), head_widths=(4, 8)),
    "mobilenet": dict(stages=((4, 2, 1), (8, 1, 2)), kernel_sizes=(1, 3), expand_ratios=(2, 3),
                      width_mults=(0.5, 1.0), stem_channels=4, head_channels=16),
    "nas_bench_201": dict(channels=4, cells_per_stage=1, stages=2),
    "nas": dict(module="supernet.spaces.cnn:CNN"),   # a Linen module named as a config names it
}
INPUT_SHAPES = [(8, 8, 1), (12, 2)]  # an image, and a 1-D signal with 2 channels


def tiny(name, input_shape):
    return spaces.get(name, input_shape=input_shape, num_classes=10, **TINY[name])


def test_every_registered_space_is_checked_here():
    assert set(TINY) == set(spaces.names())


@pytest.mark.parametrize("name", sorted(TINY))
def test_samples_are_in_range_and_their_strings_round_trip(name):
    space = tiny(name, INPUT_SHAPES[0])
    sample = np.asarray(space.sample(jax.random.key(1), 50))
    assert sample.shape == (50, space.num_decisions)
    assert (sample >= 0).all() and (sample < np.asarray(space.num_choices)).all()
    for arch in sample:
        assert np.array_equal(space.from_string(space.to_string(arch)), arch)


@pytest.mark.parametrize("name", sorted(TINY))
def test_one_compilation_serves_every_architecture_and_soft_weights(name):
    space = tiny(name, INPUT_SHAPES[0])
    model = space.supernet(mixed=True)  # soft weights, as a differentiable search passes them
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
    logits = normal(space.num_decisions, max(space.num_choices), seed=3)
    soft = jax.nn.softmax(jnp.where(space.option_mask(), logits, -jnp.inf), axis=-1)  # padded slots 0
    loss, grads = loss_and_grad(params, soft)
    assert len(traces) == 1
    assert np.isfinite(loss) and all(np.isfinite(g).all() for g in jax.tree_util.tree_leaves(grads))
    out = model.apply({"params": params}, x, soft, train=True)
    assert out.shape == (4, 10) and np.isfinite(out).all()


@pytest.mark.parametrize("input_shape", INPUT_SHAPES)
@pytest.mark.parametrize("name", sorted(TINY))
def test_extracted_standalone_reproduces_the_calibrated_supernet(name, input_shape):
    space = tiny(name, input_shape)
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
        np.testing.assert_allclose(got, expected, atol=2e-5, rtol=2e-5, err_msg=space.to_string(arch))


@pytest.mark.parametrize("name", sorted(TINY))
def test_params_count_the_standalone_network_and_the_extremes_are_extreme(name):
    space = tiny(name, INPUT_SHAPES[0])
    counts = {}
    for arch in archs(space, 6):
        variables = abstract_variables(space.standalone(arch), space.input_shape)
        counts[tuple(arch)] = sum(leaf.size for leaf in jax.tree_util.tree_leaves(variables["params"]))
        assert space.params(arch) == counts[tuple(arch)], space.to_string(arch)
        assert space.flops(arch) > 0
        free = np.asarray(space.parameter_free(arch))
        assert free.shape == (space.num_decisions,) and free.dtype == bool
    assert counts[tuple(space.largest())] == max(counts.values())
    assert counts[tuple(space.smallest())] == min(counts.values())
