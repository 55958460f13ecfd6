"""A Linen module of yours with `supernet.nas` primitives, named in a config (registered as "nas").

    python launch.py --config experiments/quickstart.py --workdir runs/mine \
        --config.space.name=nas --config.space.options.module=experiments.own_cnn:Net

`module` is "package.module:Class", importable from the directory launch.py runs in, of a Linen
module that takes no constructor arguments. The space is `nas.space(module, zeros)` traced on the
dataset's input shape; the module's outputs must have `num_classes` entries.
"""

from __future__ import annotations

import importlib

import flax.linen as nn
import numpy as np


def load_module(spec: str, what: str = "space.options.module") -> nn.Module:
    """The Linen module `spec` ("package.module:Class") names, built with no arguments; `what`
    names the setting in the one-line error for a spec that builds no Linen module."""
    path, _, name = spec.partition(":")
    try:
        module = getattr(importlib.import_module(path), name)()
    except (ImportError, AttributeError, TypeError, ValueError) as err:
        raise ValueError(f"{what} {spec!r} cannot be built ({type(err).__name__}: {err}); give "
                         f"'package.module:Class' of a Linen module that takes no arguments, importable "
                         f"from the directory launch.py runs in.") from None
    if not isinstance(module, nn.Module):
        raise ValueError(f"{what} {spec!r} is a {type(module).__name__}, not a Linen module; "
                         f"name an nn.Module subclass that uses supernet.nas primitives.")
    return module


def from_module(module: str, num_classes: int, input_shape) -> "supernet.nas.NasSpace":
    """The space of the module `module` names, traced on float inputs of `input_shape`.

    Args:
      module: "package.module:Class" (see `load_module`).
      num_classes: how many outputs the data needs; the module's last axis must match.
      input_shape: one example's shape, channels last.
    Returns:
      a `supernet.nas.NasSpace`.
    """
    from supernet import nas  # imports modules that import this package
    linen = load_module(module)
    space = nas.space(linen, np.zeros((2, *input_shape), np.float32))
    outputs = space.output_shape[-1] if space.output_shape else 1   # per example, as traced
    if outputs != num_classes:
        raise ValueError(f"space.options.module {module!r} gives {outputs} outputs, but the data has "
                         f"{num_classes} classes; make its last layer nn.Dense({num_classes}).")
    space.num_classes = num_classes   # what the data checks read (input_shape: the traced one)
    return space
