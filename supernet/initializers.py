"""Parameter initialisation drawn on the host: the `init="host"` choice of `supernet.backend`."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def host_init(abstract_variables, key: jax.Array) -> dict:
    """Concrete variables for an abstract tree (`jax.eval_shape(module.init, ...)`), drawn with numpy.

    Conv and dense kernels get He-normal values (std sqrt(2 / fan_in); an attention's query, key
    and value kernels count only their input features), `nn.Embed` tables normal
    values of std sqrt(1 / features) (Flax's default), BN scales and variances ones, biases and
    means zeros. Why not `module.init`: on the CPU, compiling Flax's truncated-normal
    initialisers took ~20 s even for a six-edge supernet, eagerly or under jit; this takes
    milliseconds and is just as deterministic (the numpy generator is seeded from `key`).
    A parameter of any other name is an error naming it: a silent zero fill would train a custom
    space with all-zero weights.
    """
    rng = np.random.default_rng(np.asarray(jax.random.key_data(key)).ravel().tolist())
    ones, zeros = ("scale", "var", "calibrated"), ("bias", "mean")   # calibrated: a nas supernet's marker

    def draw(path, leaf):
        name = str(getattr(path[-1], "key", path[-1]))
        if name == "kernel" or name.startswith("w_"):
            fan_in = _fan_in(path, leaf.shape)
            return jnp.asarray(rng.standard_normal(leaf.shape, np.float32) * np.sqrt(2.0 / fan_in), leaf.dtype)
        if name == "embedding":
            return jnp.asarray(rng.standard_normal(leaf.shape, np.float32) * np.sqrt(1.0 / leaf.shape[-1]), leaf.dtype)
        if name in ones or name.startswith("scale_"):
            return jnp.ones(leaf.shape, leaf.dtype)
        if name in zeros or name.startswith("bias_"):
            return jnp.zeros(leaf.shape, leaf.dtype)
        raise ValueError(f"host_init does not know how to initialise parameter {jax.tree_util.keystr(path)} "
                         f"(it knows conv/dense kernels, embedding tables, BN scales, biases and statistics); initialise the module "
                         f"with Flax's own initialisers, `params = model.init(key, x, arch, train=True)['params']`, "
                         f"and pass them to training.train_supernet(..., params=params).")

    return jax.tree_util.tree_map_with_path(draw, abstract_variables)


def _fan_in(path, shape) -> int:
    """Inputs per output unit: every axis but the last (a conv's window and input channels), except
    an attention's query, key and value kernels [in, heads, head_dim] (`nn.MultiHeadDotProductAttention`
    names them so), which read only the `in` features."""
    parent = str(getattr(path[-2], "key", "")) if len(path) > 1 else ""
    if parent in ("query", "key", "value") and len(shape) == 3:
        return int(shape[0])
    return int(np.prod(shape[:-1]))
