"""Flax helpers for the strategies that learn a network (reinforce, autoencoder)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def init_params(module, key, *example_inputs):
    """Flax variables for `module` from one normal draw: weight matrices scaled by 1/sqrt(fan-in)
    (fan-in = all but the last axis), vectors (biases) zero.

    Flax's own initialisers draw once per parameter, and on CPU every random op costs about half
    a second of compile time; this keeps `init` cheap to compile.
    """
    shapes = jax.eval_shape(module.init, jax.random.key(0), *example_inputs)
    leaves, treedef = jax.tree.flatten(shapes)
    sizes = [int(np.prod(leaf.shape)) for leaf in leaves]
    draw = jax.random.normal(key, (sum(sizes),), jnp.float32)
    values, start = [], 0
    for leaf, size in zip(leaves, sizes):
        if len(leaf.shape) >= 2:
            fan_in = int(np.prod(leaf.shape[:-1]))
            values.append((draw[start:start + size] / np.sqrt(fan_in)).reshape(leaf.shape).astype(leaf.dtype))
        else:
            values.append(jnp.zeros(leaf.shape, leaf.dtype))
        start += size
    return jax.tree.unflatten(treedef, values)
