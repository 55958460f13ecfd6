"""The linear surrogate: a ridge regression of fitness on the one-hot code of the architecture's
canonical form (`space.canonical`) and on how often each option label occurs in it, solved with a
small plain-jnp Cholesky."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from strategies.archs import one_hot
from strategies.buffer import History, filled_fitness, valid_mask

# `fit_linear_surrogate`'s ridge penalties, chosen in a simulation of the local search on the
# NAS-Bench-201 table (600 tuning seeds): the shared label weights nearly free, the per-decision
# corrections shrunk hard (300 and 10^6 did the same, 30 a little worse).
SURROGATE_SHARED_L2 = 0.01
SURROGATE_PER_DECISION_L2 = 100.0


def option_counts_matrix(space) -> np.ndarray:
    """float32[sum(num_choices), L]: maps each (decision, option) one-hot slot to its option label
    among the space's L distinct labels, so `one_hot(archs) @ it` counts how many decisions chose
    each label (e.g. how many NAS-Bench-201 edges are a 3x3 convolution)."""
    labels = sorted({label for options in space.options for label in options})
    slots = [label for options in space.options for label in options]
    return np.asarray([[float(slot == label) for label in labels] for slot in slots], np.float32)


def spd_solve(a: jax.Array, b: jax.Array) -> jax.Array:
    """a^-1 b for a small symmetric positive definite `a`: a Cholesky factorisation column by
    column, then two substitutions, in plain jnp ops. Not LAPACK's: the bayesian strategy, which
    also factorises its GP, hung in jaxlib 0.10's CPU runtime when vmapped over 200 seeds with a
    LAPACK solve here (all threads idle; 50 seeds ran)."""
    index = jnp.arange(a.shape[0])

    def factor_column(lower, j):
        v = a[:, j] - lower @ lower[j]  # columns before j are done, the rest still zero
        return lower.at[:, j].set(jnp.where(index >= j, v / jnp.sqrt(v[j]), 0.0)), None

    lower, _ = jax.lax.scan(factor_column, jnp.zeros_like(a), index)

    def forward(z, i):  # lower @ z = b
        return z.at[i].set((b[i] - lower[i] @ z) / lower[i, i]), None

    def backward(x, i):  # lower.T @ x = z
        return x.at[i].set((z[i] - lower[:, i] @ x) / lower[i, i]), None

    z, _ = jax.lax.scan(forward, jnp.zeros_like(b), index)
    x, _ = jax.lax.scan(backward, jnp.zeros_like(b), index[::-1])
    return x


def fit_linear_surrogate(history: History, space, shared_l2: float = SURROGATE_SHARED_L2,
                         per_decision_l2: float = SURROGATE_PER_DECISION_L2) -> tuple[jax.Array, jax.Array]:
    """A ridge regression of fitness on how often each option label occurs in an architecture
    (its weights shared by all decisions offering that label, so every result informs them) plus
    each decision's own one-hot choice (penalised far more: a per-decision correction). On
    NAS-Bench-201 the labels are the operations, and ordering a climb's neighbours by this model
    beats random order (README, "Comparison on NAS-Bench-201"); with no label shared between
    decisions it is an additive ridge model. Returns (slot weights float32[sum(num_choices)],
    offset): the prediction is `linear_prediction(archs, ...)`. Jittable."""
    counts = jnp.asarray(option_counts_matrix(space))
    valid = valid_mask(history).astype(jnp.float32)
    fitness = filled_fitness(history)
    offset = jnp.sum(valid * fitness) / jnp.maximum(jnp.sum(valid), 1.0)
    codes = one_hot(space.canonical(history.archs), space.num_choices)
    x = jnp.concatenate([codes @ counts, codes], axis=-1) * valid[:, None]
    penalty = jnp.concatenate([jnp.full((counts.shape[1],), shared_l2), jnp.full((counts.shape[0],), per_decision_l2)])
    weights = spd_solve(x.T @ x + jnp.diag(penalty), x.T @ (valid * (fitness - offset)))
    # Both feature blocks are linear in the one-hot code: fold them into one weight per slot.
    return counts @ weights[:counts.shape[1]] + weights[counts.shape[1]:], offset


def linear_prediction(archs: jax.Array, slot_weights: jax.Array, offset, space) -> jax.Array:
    """The linear surrogate's fitness for each architecture (of its canonical form): float32[n]."""
    return one_hot(space.canonical(archs), space.num_choices) @ slot_weights + offset
