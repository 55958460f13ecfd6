"""A network and its variables as files that plain JAX can run: no Flax, no module source, no
`supernet` needed to load them.

`save(network, variables, example_input, directory)` writes
- `forward.jax`: `network.apply(variables, x, train=False)` lowered to StableHLO by `jax.export`,
  for any batch size, with its first-order derivatives (so it can be fine-tuned: gradients with
  respect to the variables and the input);
- `variables.npz`: the variables, one array per leaf, keyed by their path joined with "/".

Loading takes `jax.export.deserialize` and numpy only (docs/own_model.md shows the lines); `load`
here does the same. Batch statistics are inputs like the parameters: a fine-tuning loop may keep
or update them, but the exported function always normalises with the ones it is given.
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np

from supernet import distributed

FORWARD = "forward.jax"
VARIABLES = "variables.npz"


def _flatten(tree, prefix=()) -> dict:
    if isinstance(tree, dict):
        out = {}
        for key, value in tree.items():
            if "/" in str(key):
                raise ValueError(f"export: variable name {key!r} holds '/', which the saved keys use as the "
                                 "separator; rename that module.")
            out.update(_flatten(value, prefix + (str(key),)))
        return out
    return {"/".join(prefix): np.asarray(tree)}


def _unflatten(flat) -> dict:
    tree: dict = {}
    for key in flat:
        *path, leaf = key.split("/")
        node = tree
        for part in path:
            node = node.setdefault(part, {})
        node[leaf] = np.asarray(flat[key])
    return tree


def save(network, variables, example_input, directory: str) -> str:
    """Writes `network` (a Linen module called as network.apply(variables, x, train=False)) with its
    `variables` to `directory` (created if needed). `example_input`: a batch the network accepts;
    its shape past the first axis and its dtype fix the exported input (the batch size is free).
    Returns the directory. In a multi-process run only process 0 writes."""
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise ValueError(f"export: {directory!r} is a file; pass a directory path (it is created).")
    if not distributed.is_writer():
        return directory
    variables = _unflatten(_flatten(dict(variables)))   # the structure `load` rebuilds (no empty subtrees)
    example = jnp.asarray(example_input)
    batch, = jax.export.symbolic_shape("batch")
    x_spec = jax.ShapeDtypeStruct((batch,) + example.shape[1:], example.dtype)
    v_spec = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), variables)

    def forward(variables, x):
        return network.apply(variables, x, train=False)

    exported = jax.export.export(jax.jit(forward))(v_spec, x_spec)
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, FORWARD), "wb") as f:
        f.write(exported.serialize(vjp_order=1))
    np.savez(os.path.join(directory, VARIABLES), **_flatten(variables))
    return directory


def load(directory: str):
    """(forward, variables) from `save`'s files: forward(variables, x) -> outputs, differentiable
    once; variables a nested dict of numpy arrays."""
    with open(os.path.join(directory, FORWARD), "rb") as f:
        exported = jax.export.deserialize(bytearray(f.read()))
    with np.load(os.path.join(directory, VARIABLES)) as flat:
        variables = _unflatten(flat)
    return exported.call, variables
