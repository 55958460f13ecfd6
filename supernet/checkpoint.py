"""Checkpoints of any pytree with `flax.serialization`, written atomically (a crash mid-write
never destroys the previous checkpoint)."""

from __future__ import annotations

import os

import jax
from flax import serialization


def path(workdir: str, name: str) -> str:
    return os.path.join(workdir, name)


def exists(file: str) -> bool:
    return os.path.isfile(file)


def save(file: str, tree) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(file)), exist_ok=True)
    tmp = file + ".tmp"
    with open(tmp, "wb") as f:
        f.write(serialization.to_bytes(jax.device_get(tree)))
    os.replace(tmp, file)


def restore(file: str, target):
    """Restores into the structure of `target`; a mismatch names the file and what differs."""
    with open(file, "rb") as f:
        raw = f.read()
    try:
        return serialization.from_bytes(jax.device_get(target), raw)
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"checkpoint {file} does not match this run's model or optimiser ({err}); "
                         f"use a fresh --workdir or the config that wrote it.") from None
