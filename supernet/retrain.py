"""Training a standalone network from scratch and scoring it: the honest number for a winner."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from supernet import backend, data, sharding
from supernet import task as tasks
from supernet.networks import BN_MOMENTUM
from supernet.runtime import Runtime
from supernet.training import DROPOUT_STREAM, apply_train, resume, run_loop, step_batches


def init_variables(module, key: jax.Array, input_shape, dtype=jnp.float32) -> dict:
    """Fresh variables of `module` for inputs of `input_shape` and `dtype` (integer for token ids)."""
    x = jnp.zeros((2, *input_shape), dtype)
    return dict(backend.init_variables(lambda k: module.init(k, x, train=False), key))


def make_standalone_step(module, optimizer: optax.GradientTransformation, task: tasks.Task = tasks.CLASSIFICATION):
    """`step((params, batch_stats, opt_state), x, y, dropout_rng=None) -> (new triple, loss)`,
    jitted; `task.loss`. `dropout_rng`: the key of the module's `nn.Dropout` masks this step;
    without it dropout is off."""

    def step(carry, x, y, dropout_rng=None):
        params, batch_stats, opt_state = carry

        def loss_fn(p):
            logits, updated = apply_train(module, {"params": p, "batch_stats": batch_stats}, x,
                                          mutable=["batch_stats"], dropout_rng=dropout_rng)
            return task.loss(logits, y), updated["batch_stats"]

        (loss, batch_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), batch_stats, opt_state), loss

    return jax.jit(step, donate_argnums=0)


def train_standalone(module, train: data.Split, *, steps: int, batch_size: int,
                     optimizer: optax.GradientTransformation, key: jax.Array, runtime: Runtime,
                     variables: dict | None = None, desc: str = "retrain", stage: str | None = None,
                     log_every: int = 100, checkpoint_every: int = 0, step=None,
                     task: tasks.Task = tasks.CLASSIFICATION) -> dict:
    """Trains `module` (fresh weights from `key` unless `variables` is given) on `runtime`'s mesh;
    returns its variables. `step`: a `make_standalone_step(module, optimizer)` to reuse (one
    compilation for several seeds). With a workdir, logs under `stage` (default `desc`),
    checkpoints into `workdir/checkpoints/<stage>` and resumes from there (a finished stage
    restores its last step and trains no more). `task`: the loss trained (`supernet.task`;
    default cross-entropy). Dropout masks of step t come from `fold_in(fold_in(key, DROPOUT_STREAM), t)`."""
    mesh = runtime.mesh
    sharding.check_batch_size(batch_size, mesh)
    data.check_split(train, batch_size=batch_size, num_classes=getattr(module, "num_classes", None) if task.labels
                     else None)
    init_key, data_key = jax.random.split(key)
    variables = variables or init_variables(module, init_key, train.x.shape[1:], train.x.dtype)
    carry = sharding.replicate(mesh, (variables["params"], variables.get("batch_stats", {}),
                                      optimizer.init(variables["params"])))
    stage = stage or desc
    start, carry = resume(runtime.checkpoints(stage), carry)
    carry = sharding.replicate(mesh, carry)
    step = step or make_standalone_step(module, optimizer, task)
    batches = step_batches(train, batch_size, int(jax.random.randint(data_key, (), 0, 2**31 - 1)), start)

    dropout_key = jax.random.fold_in(key, DROPOUT_STREAM)

    def train_step(carry, t):
        carry, loss = step(carry, *sharding.shard_batch(mesh, *next(batches)), jax.random.fold_in(dropout_key, t))
        return carry, {"loss": loss}

    carry, _ = run_loop(train_step, carry, steps=steps, runtime=runtime, start=start, desc=desc, stage=stage,
                        log_every=log_every, checkpoint_every=checkpoint_every)
    params, batch_stats, _ = carry
    return {"params": params, "batch_stats": batch_stats}


@functools.lru_cache(maxsize=16)
def _batch_stats_of(module):
    """Jitted: the batch statistics of one train-mode pass, as the running averages would hold them
    after infinitely many passes. Why the division: BN's running average starts from zeros here and
    takes one step of `(1 - momentum) * batch statistics`."""
    def stats(variables, x):
        zeros = jax.tree.map(jnp.zeros_like, variables["batch_stats"])
        _, updated = apply_train(module, {**variables, "batch_stats": zeros}, x, mutable=["batch_stats"])
        return jax.tree.map(lambda v: v / (1.0 - BN_MOMENTUM), updated["batch_stats"])
    return jax.jit(stats)


def recalibrate_batch_norm(module, variables: dict, x: np.ndarray) -> dict:
    """`variables` with every batch-norm running average replaced by the exact statistics of the
    trained network on inputs `x` (e.g. a few thousand training examples). The running averages
    (momentum 0.9) follow the last few batches, so two trainings that reached the same weights can
    still score differently; precise statistics remove that noise from an evaluation."""
    if not variables.get("batch_stats"):
        return variables
    return {**variables, "batch_stats": _batch_stats_of(module)(variables, jnp.asarray(x))}


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


@functools.lru_cache(maxsize=16)
def _jitted_metric(task: tasks.Task):
    return jax.jit(task.metric)


def score(module, variables: dict, split: data.Split, task: tasks.Task = tasks.CLASSIFICATION,
          batch_size: int = 500) -> float:
    """`task.metric` of a standalone network's eval-mode outputs on every example of `split`
    (accuracy for the default task, exactly as `accuracy` computes it)."""
    if task.metric is tasks.accuracy:
        return accuracy(module, variables, split, batch_size)
    return float(_jitted_metric(task)(jnp.asarray(logits(module, variables, split.x, batch_size)),
                                      jnp.asarray(split.y)))
