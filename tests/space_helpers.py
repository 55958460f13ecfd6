"""Helpers shared by the tests of the mobilenet and chain spaces."""

import math

import jax
import jax.numpy as jnp
import numpy as np

from supernet.nas.check import matmul_flops  # noqa: F401 - the tests of the spaces import it from here


def archs(space, n, seed=0):
    """largest, smallest and n random architectures (numpy: no compilation)."""
    rng = np.random.default_rng(seed)
    return [space.largest(), space.smallest()] + list(rng.integers(0, space.num_choices, (n, space.num_decisions)))


def normal(*shape, seed=1):
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), jnp.float32)


def random_params(model, *args, seed=0):
    """Supernet parameters drawn with numpy: compiling the per-tensor random initialisers costs
    far more than these tests (about a second per tensor shape on CPU). BN affine parameters are
    moved away from (1, 0) so that a wrongly sliced or copied one would show."""
    shapes = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), *args, train=True))["params"]
    rng = np.random.default_rng(seed)

    def fill(path, leaf):
        if leaf.ndim == 1:  # BN scale / bias, dense bias
            base = 1.0 if "scale" in jax.tree_util.keystr(path) else 0.0
            return jnp.asarray(base + 0.2 * rng.standard_normal(leaf.shape), jnp.float32)
        fan_in = math.prod(leaf.shape[:-1])
        return jnp.asarray(rng.standard_normal(leaf.shape) * math.sqrt(2 / fan_in), jnp.float32)
    return jax.tree_util.tree_map_with_path(fill, shapes)


def abstract_variables(net, input_shape):
    x = jax.ShapeDtypeStruct((1, *input_shape), jnp.float32)
    return jax.eval_shape(lambda x: net.init(jax.random.PRNGKey(0), x, train=False), x)
