"""Training a standalone network from scratch and scoring it: the honest number for a winner."""

from __future__ import annotations

import functools
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh
from tqdm.auto import tqdm

from supernet import data, records, sharding
from supernet.layers import host_init
from supernet.training import cross_entropy, step_batches


def init_variables(module, key: jax.Array, input_shape) -> dict:
    x = jax.ShapeDtypeStruct((2, *input_shape), jnp.float32)
    return dict(host_init(jax.eval_shape(lambda: module.init(jax.random.key(0), x, train=False)), key))


def make_standalone_step(module, optimizer: optax.GradientTransformation):
    """`step((params, batch_stats, opt_state), x, y) -> (new triple, loss)`, jitted."""

    def step(carry, x, y):
        params, batch_stats, opt_state = carry

        def loss_fn(p):
            logits, updated = module.apply({"params": p, "batch_stats": batch_stats}, x, train=True,
                                           mutable=["batch_stats"])
            return cross_entropy(logits, y), updated["batch_stats"]

        (loss, batch_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), batch_stats, opt_state), loss

    return jax.jit(step, donate_argnums=0)


def train_standalone(module, train: data.Split, *, steps: int, batch_size: int,
                     optimizer: optax.GradientTransformation, key: jax.Array, mesh: Mesh,
                     variables: dict | None = None, progress: bool = True, desc: str = "retrain",
                     log: records.MetricsLog | None = None, log_every: int = 100, step=None) -> dict:
    """Trains `module` (fresh weights from `key` unless `variables` is given); returns its variables.
    `step`: a `make_standalone_step(module, optimizer)` to reuse (one compilation for several seeds)."""
    sharding.check_batch_size(batch_size, mesh)
    init_key, data_key = jax.random.split(key)
    variables = variables or init_variables(module, init_key, train.x.shape[1:])
    carry = sharding.replicate(mesh, (variables["params"], variables.get("batch_stats", {}),
                                      optimizer.init(variables["params"])))
    step = step or make_standalone_step(module, optimizer)
    batches = step_batches(train, batch_size, int(jax.random.randint(data_key, (), 0, 2**31 - 1)), 0)
    tic, losses = time.perf_counter(), []
    for t in tqdm(range(steps), desc=desc, disable=not progress):
        carry, loss = step(carry, *sharding.shard_batch(mesh, *next(batches)))
        losses.append(loss)
        if log and ((t + 1) % log_every == 0 or t + 1 == steps):
            log.write(phase="retrain", run=desc, step=t + 1, loss=float(np.mean(losses)), seconds=time.perf_counter() - tic)
            losses = []
    params, batch_stats, _ = carry
    return {"params": params, "batch_stats": batch_stats}


@functools.lru_cache(maxsize=16)
def _eval_apply(module):
    """One jitted eval-mode forward per module, reused across calls (and seeds)."""
    return jax.jit(lambda v, x: module.apply(v, x, train=False))


def logits(module, variables: dict, x: np.ndarray, batch_size: int = 500) -> np.ndarray:
    """Eval-mode logits of a standalone network for every row of `x`."""
    apply = _eval_apply(module)
    return np.concatenate([np.asarray(apply(variables, x[i:i + batch_size])) for i in range(0, len(x), batch_size)])


def accuracy(module, variables: dict, split: data.Split, batch_size: int = 500) -> float:
    """Top-1 accuracy of a standalone network on every example of `split`."""
    return float((logits(module, variables, split.x, batch_size).argmax(-1) == split.y).mean())
