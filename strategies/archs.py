"""Helpers on architecture arrays (int32[..., D], one choice per decision), for any option counts.

Random draws here use one `jax.random.uniform` call each: on CPU every random primitive adds
about a second of XLA compile time, and strategies compile several of these per `ask`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def from_uniform(u: jax.Array, num_choices) -> jax.Array:
    """Uniform draws in [0, 1), float[..., D] -> architectures int32[..., D], each decision uniform
    over its options (for callers that share one draw between several uses)."""
    sizes = jnp.asarray(num_choices, jnp.float32)
    return jnp.minimum(jnp.floor(u * sizes), sizes - 1).astype(jnp.int32)


def uniform(key: jax.Array, n: int, num_choices) -> jax.Array:
    """`n` architectures, each decision uniform over its options: int32[n, D]."""
    return from_uniform(jax.random.uniform(key, (n, len(num_choices))), num_choices)


def one_hot(archs: jax.Array, num_choices) -> jax.Array:
    """int32[..., D] -> float32[..., sum(num_choices)]: the choices one-hot, decision by decision."""
    offsets = jnp.asarray(np.concatenate([[0], np.cumsum(num_choices)[:-1]]), jnp.int32)
    return jax.nn.one_hot(archs + offsets, int(sum(num_choices)), dtype=jnp.float32).sum(-2)


def agreement(a: jax.Array, b: jax.Array, num_choices) -> jax.Array:
    """float32[len(a), len(b)]: on how many decisions a[i] and b[j] agree. A product of one-hot
    codes: far faster on CPU than an elementwise [len(a), len(b), D] comparison."""
    return one_hot(a, num_choices) @ one_hot(b, num_choices).T


def matches(a: jax.Array, b: jax.Array, num_choices) -> jax.Array:
    """bool[len(a), len(b)]: a[i] equals b[j] (they agree on all D decisions)."""
    return agreement(a, b, num_choices) > a.shape[-1] - 0.5


def mutate(key: jax.Array, archs: jax.Array, num_choices) -> jax.Array:
    """Changes exactly one uniformly chosen decision of each architecture to a different option.
    A decision with a single option cannot change; architectures whose chosen decision has one
    option come back unchanged (rare, and `ask`'s novelty filter drops them)."""
    n, d = archs.shape
    u = jax.random.uniform(key, (n, 2))
    decision = jnp.minimum(jnp.floor(u[:, 0] * d), d - 1).astype(jnp.int32)
    size = jnp.asarray(num_choices, jnp.int32)[decision]
    # A shift in 1..size-1 modulo size always lands on a different option.
    shift = 1 + jnp.floor(u[:, 1] * jnp.maximum(size - 1, 1)).astype(jnp.int32)
    current = archs[jnp.arange(n), decision]
    new = jnp.where(size > 1, (current + shift) % jnp.maximum(size, 1), current)
    return archs.at[jnp.arange(n), decision].set(new)


def neighbours(archs: jax.Array, num_choices) -> jax.Array:
    """Every architecture one decision away from each of `archs`: int32[n * sum(K_d - 1), D], the
    neighbours of archs[0] first. The exhaustive neighbourhood of local search (White et al., "Local
    search is state of the art for NAS benchmarks", 2020); static shapes, so it is jittable."""
    decision, shift = [], []
    for d, k in enumerate(num_choices):
        decision += [d] * (k - 1)
        shift += list(range(1, k))
    decision = jnp.asarray(decision, jnp.int32)
    shift, sizes = jnp.asarray(shift, jnp.int32), jnp.asarray(num_choices, jnp.int32)[decision]
    m = decision.shape[0]
    rows = jnp.repeat(archs.astype(jnp.int32), m, axis=0)               # [n * m, D]
    decision, shift, sizes = (jnp.tile(x, archs.shape[0]) for x in (decision, shift, sizes))
    index = jnp.arange(rows.shape[0])
    return rows.at[index, decision].set((rows[index, decision] + shift) % sizes)


def radix_strides(num_choices) -> np.ndarray:
    """Mixed-radix place values, last decision fastest: arch @ strides is its number."""
    sizes = np.asarray(num_choices, np.int64)
    return np.concatenate([np.cumprod(sizes[::-1])[::-1][1:], [1]]).astype(np.int64)


def enumerate_all(num_choices) -> np.ndarray:
    """Every architecture, int32[prod(num_choices), D]; row i is architecture number i."""
    grids = np.unravel_index(np.arange(int(np.prod(num_choices))), tuple(num_choices))
    return np.stack(grids, axis=-1).astype(np.int32)
