"""The sparse NAS-Bench-201 cell (only the chosen operations run, hand-written backward) against
the folded cell and plain autodiff: same outputs, gradients and BN statistics."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from supernet import evaluation, layers, spaces, training
from supernet.spaces import sparse_cell
from supernet.networks import NB201_EDGES

# A random cell, one whose node 1 and 2 are dead (only edge 0->3 reaches the output), and one
# with every operation type.
CELLS = ["|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_1x1~1|+|nor_conv_3x3~0|none~1|none~2|",
         "|skip_connect~0|+|nor_conv_1x1~0|none~1|+|nor_conv_3x3~0|nor_conv_3x3~1|avg_pool_3x3~2|",
         "|avg_pool_3x3~0|+|none~0|nor_conv_1x1~1|+|skip_connect~0|nor_conv_3x3~1|avg_pool_3x3~2|"]


@pytest.mark.parametrize("shape,window", [((3, 7, 6, 4), 3), ((3, 7, 6, 4), 1), ((2, 11, 3), 3), ((2, 11, 3), 5)])
def test_conv_grads_match_autodiff(shape, window):
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal(shape), jnp.float32)
    kernel = jnp.asarray(rng.standard_normal((window,) * (len(shape) - 2) + (shape[-1], 5)), jnp.float32)
    grad = jnp.asarray(rng.standard_normal(layers.conv(x, kernel).shape), jnp.float32)
    expected = jax.vjp(layers.conv, x, kernel)[1](grad)
    for got, want in zip(layers.conv_grads(x, kernel, grad), expected):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("shape", [(2, 5, 7, 3), (2, 9, 2)])
def test_sum_pool_is_the_average_pool_and_its_own_transpose(shape):
    x = jnp.asarray(np.random.default_rng(1).standard_normal(shape), jnp.float32)
    g = jnp.asarray(np.random.default_rng(2).standard_normal(shape), jnp.float32)
    np.testing.assert_allclose(layers.sum_pool3(x) / layers.pool3_counts(x), layers.avg_pool3(x), atol=1e-6)
    # <sum_pool(x), g> == <x, sum_pool(g)>: the backward pass may reuse the forward map
    np.testing.assert_allclose(jnp.vdot(layers.sum_pool3(x), g), jnp.vdot(x, layers.sum_pool3(g)), rtol=1e-5)


def _reaches_output(arch):
    """Reference: edges whose target node has a path of non-`none` edges to node 3."""
    live = {3}
    for node in (2, 1):
        if any(arch[e] != 0 and i == node and j in live for e, (i, j) in enumerate(NB201_EDGES)):
            live.add(node)
    return [arch[e] if j in live else 0 for e, (_, j) in enumerate(NB201_EDGES)]


def test_dead_edges_are_pruned_exactly_for_every_cell():
    archs = np.asarray(list(itertools.product(range(5), repeat=6)), np.int32)
    pruned = np.asarray(jax.jit(jax.vmap(sparse_cell.prune_dead_edges))(archs))
    expected = np.asarray([_reaches_output(a) for a in archs])
    np.testing.assert_array_equal(pruned, expected)
    assert (pruned != archs).any(axis=1).sum() > 1000  # the case is common, not a corner


@pytest.fixture(scope="module")
def nets():
    """Both paths of one tiny supernet, with jitted loss gradients, calibration and prediction
    (the architecture is an argument, so each compiles once for every cell)."""
    space = spaces.get("nas_bench_201", input_shape=(8, 8, 3), channels=4, cells_per_stage=1, stages=2)
    models = {"sparse": space.supernet(sparse=True), "folded": space.supernet(sparse=False)}
    params = training.init_params(space, models["folded"], jax.random.key(0), (8, 8, 3))
    x = jnp.asarray(np.random.default_rng(3).standard_normal((6, 8, 8, 3)), jnp.float32)

    def fns(model):
        loss = lambda p, w: jnp.sum(jnp.sin(model.apply({"params": p}, x, w, train=True)))
        return {"grads": jax.jit(jax.value_and_grad(loss, argnums=(0, 1))),
                "calibrate": jax.jit(lambda w: evaluation.calibrate(model, params, w, x)),
                "predict": jax.jit(lambda s, w: evaluation.predict(model, params, s, w, x)),
                "logits": jax.jit(lambda w: model.apply({"params": params}, x, w, train=True))}
    return space, {name: fns(m) for name, m in models.items()}, params


@pytest.mark.parametrize("cell", CELLS)
def test_sparse_and_folded_supernets_agree(nets, cell):
    space, fns, params = nets
    weights = training.one_hot(space, jnp.asarray(space.from_string(cell)))
    (value_s, (grads_s, wgrad_s)), (value_f, (grads_f, wgrad_f)) = [
        fns[path]["grads"](params, weights) for path in ("sparse", "folded")]
    np.testing.assert_allclose(value_s, value_f, rtol=1e-5)
    for got, want in zip(jax.tree.leaves(grads_s), jax.tree.leaves(grads_f)):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    # The sparse cell differentiates only the chosen option's weight (what GDAS uses); there the
    # folded cell's derivative agrees up to BN's epsilon (which makes a conv's output not quite
    # invariant to the scale of its folded kernel).
    assert np.all(np.asarray(wgrad_s)[np.asarray(weights) == 0] == 0)
    np.testing.assert_allclose(wgrad_s, wgrad_f * weights, rtol=1e-3, atol=1e-4)
    # Calibrated evaluation: the same logits from either path, with either path's statistics.
    stats = [fns[path]["calibrate"](weights) for path in ("sparse", "folded")]
    expected = fns["folded"]["predict"](stats[1], weights)
    for path, stat in itertools.product(("sparse", "folded"), stats):
        np.testing.assert_allclose(fns[path]["predict"](stat, weights), expected, atol=1e-4)


def test_sparse_supernet_under_vmap_matches_one_at_a_time(nets):
    space, fns, _ = nets
    weights = training.one_hot(space, jnp.asarray(np.stack([space.from_string(c) for c in CELLS])))
    logits = jax.jit(jax.vmap(fns["sparse"]["logits"]))(weights)
    for w, batched in zip(weights, logits):
        np.testing.assert_allclose(batched, fns["sparse"]["logits"](w), atol=1e-5)


def test_darts_supernet_cannot_be_sparse(nets):
    space, _, params = nets
    x = jnp.zeros((2, 8, 8, 3))
    with pytest.raises(ValueError, match="cannot be sparse"):
        space.supernet(mixed=True, sparse=True).apply({"params": params}, x, jnp.ones((6, 5)) / 5, train=True)
