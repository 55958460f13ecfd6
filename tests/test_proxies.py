"""Training-free proxies on a tiny NAS-Bench-201 supernet: finite for every operation (also cells
with no parameters or no path at all), invariant to the order of the batch, one compilation per
population, synflow's rescaling exact, the objective and prefilter helpers."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from supernet import evaluation, profiling, proxies, spaces, training

P = 8


@pytest.fixture(scope="module")
def setup():
    space = spaces.get("nas_bench_201", num_classes=10, input_shape=(12, 1), channels=4, cells_per_stage=1, stages=1)
    model = space.supernet(sparse=False)
    params = training.init_params(space, model, jax.random.key(0), space.input_shape)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 12, 1)).astype(np.float32)
    y = rng.integers(0, 10, 16).astype(np.int32)
    uniform = np.repeat(np.arange(5, dtype=np.int32)[:, None], 6, axis=1)  # all none, skip, 1x1, 3x3, pool
    archs = np.concatenate([uniform, np.asarray(space.sample(jax.random.key(1), P - 5))])
    return space, model, params, archs, x, y


@pytest.fixture(scope="module")
def scores(setup):
    """scores(proxy) for the fixture's population, computed (and compiled) on first use."""
    space, model, params, archs, x, y = setup
    return functools.cache(lambda proxy: proxies.score(space, model, params, archs, x, y, proxy))


@pytest.mark.parametrize("proxy", proxies.PROXIES)
def test_finite_for_every_operation(setup, scores, proxy):
    s = scores(proxy)
    assert s.shape == (P,) and s.dtype == np.float32 and np.all(np.isfinite(s)), s
    assert len(np.unique(s)) >= 5  # the architectures really differ
    assert s[0] == s.min()  # the all-`none` cell (no path through it) scores lowest


@pytest.mark.parametrize("proxy", proxies.PROXIES)
def test_invariant_to_batch_order(setup, scores, proxy):
    space, model, params, archs, x, y = setup
    perm = np.random.default_rng(1).permutation(len(x))
    permuted = proxies.score(space, model, params, archs, x[perm], y[perm], proxy)
    np.testing.assert_allclose(permuted, scores(proxy), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("proxy", ["synflow", "naswot"])  # the two that intercept module calls
def test_vmapped_population_equals_the_loop(setup, scores, proxy):
    """All architectures vmapped (the GPU/TPU default) against the `lax.map` loop (the CPU one)."""
    space, model, params, archs, x, y = setup
    vmapped = proxies.score(space, model, params, archs, x, y, proxy, vmap_archs=None)
    np.testing.assert_allclose(vmapped, scores(proxy), rtol=1e-5, atol=1e-6)


def test_one_compilation_per_population(setup):
    space, model, params, _, x, y = setup
    first, second = (np.asarray(space.sample(jax.random.key(k), 3)) for k in (7, 8))
    with profiling.count_compilations() as compiles:
        proxies.score(space, model, params, first, x, y, "naswot")
    assert compiles.count == 1
    with profiling.count_compilations() as compiles:
        proxies.score(space, model, params, second, x, y, "naswot")
    assert compiles.count == 0


def test_sparse_supernet_gives_the_same_scores(setup, scores):
    space, _, params, archs, x, y = setup
    sparse = space.supernet(sparse=True)  # swapped for its folded path: same variables, same outputs
    np.testing.assert_allclose(proxies.score(space, sparse, params, archs, x, y, "snip"), scores("snip"), rtol=1e-5)


def test_synflow_rescaling_is_exact(setup, scores):
    """The per-block rescaling against the plain float32 computation, where that does not overflow."""
    space, model, params, archs, _, _ = setup
    ones = jnp.ones((1, 12, 1))

    @jax.jit
    def plain(arch):
        w = training.one_hot(space, arch)
        stats = jax.tree_util.tree_map_with_path(
            lambda p, v: jnp.zeros_like(v) if p[-1].key == "mean" else jnp.ones_like(v),
            evaluation.calibrate(model, params, w, ones))
        linear = jax.tree_util.tree_map_with_path(
            lambda p, v: jnp.zeros_like(v) if p[-1].key.startswith("bias") else jnp.abs(v), params)
        grads = jax.grad(lambda p: evaluation.predict(model, p, stats, w, ones).sum())(linear)
        kernel = lambda p: p[-1].key == "kernel" or p[-1].key.startswith("w_")
        terms = jax.tree_util.tree_map_with_path(lambda p, v, g: jnp.sum(v * g) if kernel(p) else 0.0, linear, grads)
        return jnp.log(sum(jax.tree.leaves(terms)))

    expected = np.asarray([plain(a) for a in archs[1:]])  # all-`none` is the floor, checked above
    np.testing.assert_allclose(scores("synflow")[1:], expected, rtol=1e-5)


def test_objective_and_prefilter(setup, scores):
    space, model, params, archs, x, y = setup
    objective = proxies.as_objective(space, model, params, x, y, "snip")
    fitness = objective(archs)
    assert fitness.shape == (P,) and fitness.dtype == np.float32
    np.testing.assert_array_equal(fitness, scores("snip"))
    kept = proxies.prefilter(space, fitness, archs, 3)
    np.testing.assert_array_equal(kept, archs[np.argsort(-fitness)[:3]])
    with pytest.raises(ValueError, match="keep"):
        proxies.prefilter(space, fitness, archs, 0)


def test_unknown_proxy_is_an_error(setup):
    space, model, params, archs, x, y = setup
    with pytest.raises(ValueError, match="valid: synflow, naswot, snip"):
        proxies.score(space, model, params, archs, x, y, "grasp")
    with pytest.raises(ValueError, match="valid: synflow, naswot, snip"):
        proxies.as_objective(space, model, params, x, y, "grasp")


@pytest.mark.parametrize("proxy", proxies.PROXIES)
def test_a_module_of_yours_is_scored(proxy):
    """A `supernet.nas` space: its supernet's only child is your module, so NASWOT reads that
    module's children's feature maps; every proxy gives finite scores that tell networks apart."""
    from experiments.own_cnn import Net
    from supernet import nas
    x = np.asarray(jax.random.normal(jax.random.key(0), (16, 8, 8, 1)))
    y = np.arange(16) % 10
    space = nas.space(Net(), x[:2])
    model = space.supernet()
    params = training.init_params(space, model, jax.random.key(1), (8, 8, 1))
    archs = np.stack([space.largest(), space.smallest()])
    found = proxies.score(space, model, params, archs, x, y, proxy)
    assert np.isfinite(found).all() and found[0] != found[1]
