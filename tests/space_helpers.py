"""Helpers shared by the tests of the mobilenet and chain spaces."""

import math

import jax
import jax.numpy as jnp
import numpy as np


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
    return jax.eval_shape(lambda: net.init(jax.random.PRNGKey(0), x, train=False))


def matmul_flops(jaxpr) -> int:
    """2 x multiply-adds of every conv and dot in a jaxpr (full windows, padding included: the
    convention `flops` documents), recursing into sub-jaxprs."""
    total = 0
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "conv_general_dilated":
            out, rhs = eqn.outvars[0].aval, eqn.invars[1].aval
            total += 2 * out.size * rhs.size // out.shape[-1]  # rhs.size / out_channels = MACs per output
        elif eqn.primitive.name == "dot_general":
            (contract, _), _ = eqn.params["dimension_numbers"]
            lhs = eqn.invars[0].aval
            total += 2 * eqn.outvars[0].aval.size * math.prod(lhs.shape[i] for i in contract)
        for value in eqn.params.values():
            for sub in value if isinstance(value, (list, tuple)) else [value]:
                if isinstance(sub, jax.extend.core.ClosedJaxpr):
                    total += matmul_flops(sub.jaxpr)
                elif isinstance(sub, jax.extend.core.Jaxpr):
                    total += matmul_flops(sub)
    return total
