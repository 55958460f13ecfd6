"""The distribution a differentiable (DARTS/GDAS) search learned, as a strategy, and `derive`.

`strategies.get("differentiable", space, weights=result["weights"])` asks the derived architecture
first, then the most likely draws of the learned distribution (never a `none` option, like
`derive`), so a finished search hands its result to the rest of the system like any sampler.
`derive` turns softmax weights float[D, K] into the discrete architecture; it only needs the
space's option labels, so it lives here and `supernet.differentiable` uses it.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from strategies import buffer, interface

# Options never chosen by `derive` (the NAS-Bench-201 reference drops `none` when deriving).
EXCLUDED_LABELS = ("none",)


def excluded_options(space, labels=EXCLUDED_LABELS) -> np.ndarray:
    """bool[D, K]: options `derive` must not pick (a decision keeps them if it has nothing else)."""
    mask = space.option_mask()
    excluded = np.zeros_like(mask)
    for d, options in enumerate(space.options):
        for k, label in enumerate(options):
            excluded[d, k] = label in labels
        if excluded[d].sum() == len(options):  # e.g. a decision whose only option is `none`
            excluded[d] = False
    return excluded


def derive(space, weights, labels=EXCLUDED_LABELS) -> np.ndarray:
    """The discrete architecture int32[D]: per decision, the heaviest option not labelled `none`."""
    allowed = space.option_mask() & ~excluded_options(space, labels)
    scores = np.where(allowed, np.asarray(weights, np.float64), -np.inf)
    return space.validate(scores.argmax(axis=-1))



DEFAULT_CAPACITY = 1000


class DistributionState(NamedTuple):
    """The strategy state: the results told so far."""
    history: buffer.History


def make_core(space, capacity: int, weights=None) -> interface.Core:
    """`weights`: the search's final softmax weights float[D, K] (None: uniform)."""
    allowed = space.option_mask() & ~excluded_options(space)
    if weights is not None and np.shape(weights) != allowed.shape:
        raise ValueError(f"differentiable: weights must be float[{', '.join(map(str, allowed.shape))}] (decisions x "
                         f"options of {space.name}), got shape {np.shape(weights)}; pass the final softmax weights "
                         f"of a search over this space.")
    w = np.where(allowed, 1.0, 0.0) if weights is None else np.where(allowed, np.asarray(weights, np.float64), 0.0)
    w = w / w.sum(axis=-1, keepdims=True)
    logits = jnp.asarray(np.where(w > 0, np.log(np.maximum(w, 1e-30)), -np.inf), jnp.float32)
    derived = jnp.asarray(derive(space, w))[None]
    rows = jnp.arange(space.num_decisions)

    def init(key):
        del key
        return DistributionState(buffer.empty_history(space.num_decisions, capacity))

    def propose(key, state, n):
        del state
        samples = jax.random.categorical(key, logits, shape=(4 * n, space.num_decisions)).astype(jnp.int32)
        pool = jnp.concatenate([derived, samples])
        # Log-probability under the learned distribution; the derived architecture always first.
        priority = logits[rows, pool].sum(-1).at[0].set(jnp.inf)
        return pool, priority

    def learn(state, archs, fitness):
        del archs, fitness
        return state

    return interface.Core(init, propose, learn)
