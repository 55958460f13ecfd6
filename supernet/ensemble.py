"""Combining the predictions of several architectures (e.g. `base.top_k(state, k)` of a search).

The search itself never sees a model; the pipeline runs each of the top-k architectures and hands
their logits here. Averaging works for any outputs (logits, regression values, per-token logits);
voting needs class logits.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

METHODS = ("average", "vote")


def weights_from_fitness(fitness, temperature: float = 1.0) -> jax.Array:
    """Softmax weights from fitness: fitter members count more; a large temperature -> uniform."""
    fitness = jnp.asarray(fitness, jnp.float32)
    return jax.nn.softmax(fitness / temperature)


def combine(logits, weights=None, method: str = "average") -> jax.Array:
    """Scores float32[batch, ..., classes] from members' outputs float[k, batch, ..., classes]; for
    class logits, the argmax of the scores is the ensemble's prediction. Jittable.

    average: weighted mean of the outputs (logits, or values for regression).
    vote: each member casts its weight for its argmax class; ties are broken by the averaged
      logits (added at a scale far below one vote's weight).
    weights: float[k], normalised here; None -> equal weights.
    """
    if method not in METHODS:
        raise ValueError(f"unknown ensembling method {method!r}; valid methods: {', '.join(METHODS)}.")
    logits = jnp.asarray(logits, jnp.float32)
    if logits.ndim < 2:
        raise ValueError(f"combine: outputs must be [members, batch, ...], got shape {logits.shape}.")
    k = logits.shape[0]
    weights = jnp.ones((k,), jnp.float32) if weights is None else jnp.asarray(weights, jnp.float32)
    if weights.shape != (k,):
        raise ValueError(f"combine: {k} members but weights of shape {weights.shape}.")
    weights = weights / jnp.sum(weights)
    averaged = jnp.tensordot(weights, logits, axes=1)
    if method == "average":
        return averaged
    if logits.ndim < 3:
        raise ValueError(f"combine: voting needs class logits [members, batch, ..., classes], got shape "
                         f"{logits.shape}; use method='average'.")
    votes = jnp.tensordot(weights, jax.nn.one_hot(jnp.argmax(logits, -1), logits.shape[-1]), axes=1)
    # Tie-break: a softmax in (0, 1) scaled well below the smallest nonzero vote weight.
    tie_break = jax.nn.softmax(averaged, axis=-1) * (jnp.min(weights) * 1e-3)
    return votes + tie_break


def predict(logits, weights=None, method: str = "average") -> jax.Array:
    """The ensemble's class predictions int32[batch]."""
    return jnp.argmax(combine(logits, weights, method), axis=-1).astype(jnp.int32)
