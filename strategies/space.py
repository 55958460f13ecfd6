"""What strategies know of a search space: named categorical decisions; an architecture is an
int32 vector with one choice per decision.

`Decisions` is the ground floor of every space (`supernet.spaces.Space` subclasses it and adds the
networks). A strategy needs only this, plus `params` / `flops` when a limit on them is set, so a
user can search any categorical space without the supernet library.
"""

from __future__ import annotations

import math
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np


class Decisions:
    """A list of named categorical decisions, each with its option labels: everything a strategy
    needs to know about a space. `supernet.spaces.Space` adds the networks on top."""

    name = "space"

    def __init__(self, decisions: Sequence[tuple[str, Sequence[str]]]):
        if not decisions:
            raise ValueError(f"{self.name}: a search space needs at least one decision.")
        self.decision_names = tuple(str(n) for n, _ in decisions)
        self.options = tuple(tuple(str(o) for o in opts) for _, opts in decisions)
        for name, opts in zip(self.decision_names, self.options):
            if not opts:
                raise ValueError(f"{self.name}: decision {name!r} has no options; give it at least one.")

    # -- shape of the space ------------------------------------------------------------------
    @property
    def num_choices(self) -> tuple[int, ...]:
        """How many options each decision has."""
        return tuple(len(o) for o in self.options)

    @property
    def num_decisions(self) -> int:
        """D, the number of decisions."""
        return len(self.options)

    @property
    def size(self) -> int:
        """The number of encodings (the product of `num_choices`)."""
        return math.prod(self.num_choices)

    def option_mask(self) -> np.ndarray:
        """bool[D, K]: which of the K = max(num_choices) one-hot slots are real options."""
        return np.arange(max(self.num_choices))[None, :] < np.asarray(self.num_choices)[:, None]

    def sample(self, key: jax.Array, n: int) -> jax.Array:
        """`n` architectures drawn uniformly, int32[n, D]. Jittable (n static)."""
        maxval = jnp.asarray(self.num_choices, jnp.int32)
        return jax.random.randint(key, (n, self.num_decisions), 0, maxval, dtype=jnp.int32)

    def canonical(self, archs: jax.Array) -> jax.Array:
        """Each architecture's representative among those that compute the same function
        (int32[..., D]); strategies evaluate one architecture per class. The identity here; a space
        whose encoding names one network several ways (NAS-Bench-201's cells) overrides it.
        Jittable."""
        return archs

    def inactive_decisions(self, arch) -> list[str]:
        """The names of the decisions `arch`'s network does not use: those where every other
        option leaves `canonical` (the function computed) unchanged, e.g. the blocks past a chosen
        depth or NAS-Bench-201 edges whose output reaches nothing. Their labels in `to_string` are
        placeholders."""
        a = self.validate(arch)
        if a.ndim != 1:
            raise ValueError(f"{self.name}: inactive_decisions takes one architecture, got shape {a.shape}.")
        variants = np.repeat(a[None], sum(self.num_choices), axis=0)
        owner = np.repeat(np.arange(self.num_decisions), self.num_choices)
        variants[np.arange(len(variants)), owner] = np.concatenate([np.arange(k) for k in self.num_choices])
        same = np.all(np.asarray(self.canonical(variants)) == np.asarray(self.canonical(a[None])), axis=1)
        return [name for d, name in enumerate(self.decision_names) if same[owner == d].all()]

    # -- checking and naming -------------------------------------------------------------------
    def validate(self, arch) -> np.ndarray:
        """Returns `arch` as int32 ([D] or [n, D]); raises ValueError naming the bad decision."""
        a = np.asarray(arch)
        if a.ndim not in (1, 2) or a.shape[-1] != self.num_decisions:
            raise ValueError(
                f"{self.name}: an architecture has {self.num_decisions} decisions "
                f"({', '.join(self.decision_names)}), got an array of shape {a.shape}; "
                f"pass int32[{self.num_decisions}] or int32[n, {self.num_decisions}].")
        if not np.issubdtype(a.dtype, np.integer):
            if not np.all(np.isfinite(a)) or np.any(a != np.round(a)):
                raise ValueError(f"{self.name}: architecture choices must be integers, got {a.dtype} values {a}.")
        a = a.astype(np.int64)
        upper = np.asarray(self.num_choices)
        bad = (a < 0) | (a >= upper)
        if bad.any():
            where = np.argwhere(bad)[0]
            d = int(where[-1])
            raise ValueError(
                f"{self.name}: decision {d} ({self.decision_names[d]!r}) has choice {int(a[tuple(where)])}, "
                f"valid range is 0..{upper[d] - 1} ({', '.join(self.options[d])}).")
        return a.astype(np.int32)

    def to_string(self, arch) -> str:
        """One architecture int[D] as "decision=option,...", readable and stable across versions."""
        a = self.validate(arch)
        if a.ndim != 1:
            raise ValueError(f"{self.name}: to_string takes one architecture, got shape {a.shape}.")
        return ",".join(f"{n}={o[c]}" for n, o, c in zip(self.decision_names, self.options, a))

    def from_string(self, text: str) -> np.ndarray:
        """The int32[D] architecture `to_string` wrote; names each part it cannot read."""
        parts = [p for p in str(text).split(",") if p]
        if len(parts) != self.num_decisions:
            raise ValueError(f"{self.name}: expected {self.num_decisions} 'decision=option' parts, got {text!r}.")
        arch = []
        for part, name, opts in zip(parts, self.decision_names, self.options):
            key, _, value = part.partition("=")
            if key != name or value not in opts:
                raise ValueError(f"{self.name}: {part!r} does not match decision {name!r} with options {opts}.")
            arch.append(opts.index(value))
        return np.asarray(arch, np.int32)

    def describe(self) -> dict:
        """A JSON-friendly summary, for results files."""
        return {"name": self.name, "decisions": dict(zip(self.decision_names, self.options)), "size": self.size}

    def __repr__(self):
        return f"{type(self).__name__}(name={self.name!r}, decisions={self.num_decisions}, size={self.size})"
