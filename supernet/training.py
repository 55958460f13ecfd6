"""Single-path one-shot training of a supernet with optax.

The architecture is an argument of the jitted step (int32[paths, D]), never a Python constant, so
one compilation serves every architecture. With `paths > 1` the gradients of all paths are
averaged (the "sandwich rule": largest, smallest and random paths in one step).
"""

from __future__ import annotations

import functools
import time
from typing import Any, Callable, Iterator

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

from strategies.archs import enumerate_all
from strategies.constraints import DEFAULT_ENUMERATE_LIMIT
from supernet import backend, checkpoint, data, sharding
from supernet import task as tasks
from supernet.runtime import Runtime, raise_pending_interrupt
from supernet.spaces.base import Space


@flax.struct.dataclass
class TrainState:
    """Training state: the step, the parameters and the optimiser's state."""
    step: jax.Array
    params: Any
    opt_state: Any


def one_hot(space: Space, archs: jax.Array) -> jax.Array:
    """int32[..., D] -> float32[..., D, K] with K the largest number of options of any decision."""
    return jax.nn.one_hot(archs, max(space.num_choices), dtype=jnp.float32)


cross_entropy = tasks.cross_entropy

# A stream of its own for dropout masks (`fold_in(key, DROPOUT_STREAM)`), so the keys that draw the
# initial weights, the paths and the batches are the same with or without dropout.
DROPOUT_STREAM = 0x64726F70


def _dropout_off(next_fun, args, kwargs, context):
    """Method interceptor: every `nn.Dropout` passes its input through, and attention drops no
    weights (its `deterministic` is a call argument: `nas.space` refuses it in the constructor),
    as in evaluation."""
    module = context.module
    if context.method_name == "__call__":
        if isinstance(module, flax.linen.Dropout):
            return args[0] if args else kwargs["inputs"]
        if isinstance(module, flax.linen.MultiHeadDotProductAttention) and module.dropout_rate > 0:
            return next_fun(*args, **{**kwargs, "deterministic": True})
    return next_fun(*args, **kwargs)


def apply_train(model, variables, *args, dropout_rng: jax.Array | None = None, **kwargs):
    """`model.apply(variables, *args, train=True, **kwargs)`. A `nn.Dropout` in the model draws its
    masks from `dropout_rng`; without one it is off, as calibration, proxies and initialisation want
    (train-mode batch statistics of the network that evaluation runs)."""
    kwargs = {"train": True, **kwargs}
    if dropout_rng is not None:
        return model.apply(variables, *args, rngs={"dropout": dropout_rng}, **kwargs)
    with flax.linen.intercept_methods(_dropout_off):
        return model.apply(variables, *args, **kwargs)


def init_params(space: Space, model, key: jax.Array, input_shape, dtype=jnp.float32) -> Any:
    """Supernet parameters, initialised with the largest architecture so every weight exists.
    `dtype`: the inputs' (integer for token ids)."""
    x = jnp.zeros((2, *input_shape), dtype)
    weights = one_hot(space, jnp.asarray(space.largest()))

    def init(k):
        with flax.linen.intercept_methods(_dropout_off):
            return model.init(k, x, weights, train=True)["params"]
    return backend.init_variables(init, key)


def create_state(space: Space, model, optimizer: optax.GradientTransformation, key: jax.Array,
                 input_shape, dtype=jnp.float32) -> TrainState:
    """A fresh `TrainState`: parameters initialised for `input_shape` from `key`, the optimiser
    initialised."""
    params = init_params(space, model, key, input_shape, dtype)
    return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=optimizer.init(params))


def make_optimizer(learning_rate: float = 0.05, momentum: float = 0.9, weight_decay: float = 5e-4,
                   steps: int = 1000, warmup_steps: int = 0) -> optax.GradientTransformation:
    """SGD with Nesterov momentum, decoupled weight decay and a cosine schedule (NAS-Bench-201's recipe)."""
    steps = max(steps, 1)
    if warmup_steps:
        schedule = optax.warmup_cosine_decay_schedule(0.0, learning_rate, warmup_steps, max(steps, warmup_steps + 1))
    else:
        schedule = optax.cosine_decay_schedule(learning_rate, steps)
    return optax.chain(optax.add_decayed_weights(weight_decay),
                       optax.sgd(schedule, momentum=momentum, nesterov=True))


def make_train_step(space: Space, model, optimizer: optax.GradientTransformation,
                    task: tasks.Task = tasks.CLASSIFICATION):
    """`step(state, x, y, archs int32[paths, D], dropout_key=None) -> (state, metrics)`, jitted:
    `task.loss` averaged over the paths; the metrics hold the loss, and the accuracy when the task
    has labels. `dropout_key`: the run's key for a model's `nn.Dropout` masks, the same every step;
    the step folds in `state.step`, then each path its index (inside the jitted step, so a model
    without dropout pays nothing for it); without it dropout is off.

    Data parallelism comes from the inputs: pass the state replicated (`sharding.replicate`) and
    the batch split over the mesh (`sharding.shard_batch`); jit partitions the step to match and
    averages the gradients across devices. (Giving jit in_shardings/out_shardings instead made the
    CPU step ~35x slower in our measurement, so the shardings ride on the arrays.) The compute
    dtype is the backend policy's when the step is built (bfloat16 when it asks for it; the params,
    their gradients and the optimiser state stay float32)."""
    dtype = backend.current().dtype

    def step(state: TrainState, x, y, archs, dropout_key=None):
        def loss_fn(params):
            losses, accuracies = [], []
            for p in range(archs.shape[0]):  # static: 1 path, or 3 for the sandwich rule
                cast = functools.partial(backend.compute_cast, dtype=dtype)
                rng = None if dropout_key is None else jax.random.fold_in(
                    jax.random.fold_in(dropout_key, state.step), p)
                logits = apply_train(model, {"params": cast(params)}, cast(x), cast(one_hot(space, archs[p])),
                                     dropout_rng=rng)
                logits = logits.astype(jnp.float32)
                losses.append(task.loss(logits, y))
                if task.labels:  # cheap, and what the progress bar shows for classification
                    accuracies.append(tasks.accuracy(logits, y))
            return jnp.mean(jnp.stack(losses)), {"accuracy": jnp.mean(jnp.stack(accuracies))} if task.labels else {}

        (loss, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        new_state = TrainState(step=state.step + 1, params=params, opt_state=opt_state)
        return new_state, {"loss": loss, **metrics}

    return jax.jit(step, donate_argnums=0)


SAMPLINGS = ("uniform", "sandwich", "fair", "distinct")
DISTINCT_LIMIT = DEFAULT_ENUMERATE_LIMIT  # the most architectures "distinct" sampling enumerates, as constraints do


def make_path_sampler(space: Space, sampling: str = "uniform") -> Callable[[jax.Array], jax.Array]:
    """`sampler(key) -> int32[paths, D]`, the architectures one supernet step trains: "uniform"
    (one path), "sandwich" (largest, smallest, uniform), "fair" (`fair_paths`) or "distinct"
    (one path, uniform over `distinct_functions`)."""
    if sampling not in SAMPLINGS:
        raise ValueError(f"unknown supernet sampling {sampling!r}; valid: {', '.join(SAMPLINGS)}.")
    if sampling == "fair":
        return lambda key: fair_paths(space, key)
    if sampling == "distinct":
        return uniform_over(distinct_functions(space))
    return lambda key: sample_paths(space, key, sandwich=sampling == "sandwich")


def distinct_functions(space: Space, fixed: dict[int, int] | None = None) -> np.ndarray:
    """int32[F, D]: one architecture per distinct function of the space (`space.canonical`), the
    lowest-numbered, for de-isomorphic sampling (Ning et al., "Evaluating Efficient Performance
    Estimators of Neural Architectures", NeurIPS 2021); with `fixed` ({decision: option}), among
    the architectures that take those options only. Why: uniform encodings over-train the
    functions that many encodings name (on NAS-Bench-201, cells with dead edges: simple ones), so
    the shared weights favour simple architectures. Enumerates the space, so at most
    `DISTINCT_LIMIT` architectures."""
    if space.size > DISTINCT_LIMIT:
        raise ValueError(f"supernet sampling 'distinct' enumerates the space, but {space.name} has {space.size:,} "
                         f"architectures (limit {DISTINCT_LIMIT:,}); use supernet.sampling='uniform'.")
    archs = enumerate_all(space.num_choices)
    if fixed:
        archs = archs[np.all(archs[:, list(fixed)] == np.asarray(list(fixed.values())), axis=1)]
    _, first = np.unique(np.asarray(space.canonical(archs)), axis=0, return_index=True)
    return archs[np.sort(first)].astype(np.int32)


def uniform_over(table) -> Callable[[jax.Array], jax.Array]:
    """`sampler(key) -> int32[1, D]`: one row of `table`, uniformly."""
    table = jnp.asarray(table, jnp.int32)
    return lambda key: table[jax.random.randint(key, (1,), 0, len(table))]


def sample_paths(space: Space, key: jax.Array, sandwich: bool) -> jax.Array:
    """One uniform architecture, or [largest, smallest, uniform] for the sandwich rule."""
    random_path = space.sample(key, 1)
    if not sandwich:
        return random_path
    fixed = jnp.stack([jnp.asarray(space.largest()), jnp.asarray(space.smallest())]).astype(jnp.int32)
    return jnp.concatenate([fixed, random_path])


def fair_paths(space: Space, key: jax.Array) -> jax.Array:
    """Strict fairness (Chu et al., "FairNAS", ICCV 2021): int32[K, D], K the most options of any
    decision, in which every option of every decision trains exactly once per step (decisions with
    fewer options fill the spare rows uniformly). Why: uniform sampling trains options unevenly
    within a stretch of steps, and the ones trained last are favoured when ranking."""
    most = max(space.num_choices)
    columns = []
    for d, (k, sub) in enumerate(zip(space.num_choices, jax.random.split(key, space.num_decisions))):
        spare = jax.random.randint(jax.random.fold_in(sub, d), (most - k,), 0, k)
        columns.append(jnp.concatenate([jax.random.permutation(sub, k), spare]))
    return jnp.stack(columns, axis=1).astype(jnp.int32)


def step_batches(split: data.Split, batch_size: int, seed: int, start_step: int) -> Iterator:
    """Endless (x, y) batches; the shuffle depends on (seed, epoch) only, so resuming at
    `start_step` yields exactly the batches the uninterrupted run would have seen."""
    data.check_split(split, batch_size=batch_size)
    per_epoch = len(split) // batch_size
    epoch, offset = divmod(start_step, per_epoch)
    while True:
        for i, batch in enumerate(data.epoch_batches(split, batch_size, seed, epoch)):
            if i >= offset:
                yield batch
        epoch, offset = epoch + 1, 0


BAR_DESC_CHARS = 60   # a longer progress-bar label (an architecture's string) would wrap every update


def shortened(desc: str) -> str:
    """`desc` cut to BAR_DESC_CHARS characters, ending in "..." when cut."""
    return desc if len(desc) <= BAR_DESC_CHARS else desc[:BAR_DESC_CHARS - 3] + "..."


def run_loop(step: Callable, state, *, steps: int, runtime: Runtime, start: int = 0, desc: str,
             stage: str | None = None, log_fields=None, log_every: int = 50, on_log: Callable | None = None,
             after_step: Callable | None = None, checkpoint_every: int = 0, snapshot: Callable | None = None):
    """The one training loop that the single-path, standalone, DARTS and GDAS steps plug into.

    For t in start..steps-1: `state, metrics = step(state, t)` (the step draws its own batch and
    randomness from t, so a resumed loop sees what an uninterrupted one would). Every `log_every`
    steps and at the end, the metrics since the last log are averaged, shown on the progress bar
    (`runtime.progress`) and written to `runtime.log` under `stage` (default `desc`) with `log_fields`,
    `step` and `seconds` (plain Python numbers among the metrics, such as a schedule's value, are
    reported as of the last step); `on_log(t + 1, state, summary)` may return True to stop early.
    `after_step(t + 1, state)` runs after every step.

    Resuming: the caller restores the state of step `start` (`resume`); the log's lines of this
    stage past `start` are dropped first, so none is written twice.
    Checkpoints: with a workdir, `snapshot(state)` (default: the state) is saved into
    `runtime.checkpoints(stage)` every `checkpoint.interval(steps, checkpoint_every)` steps, at the
    end and where `on_log` stops.
    Non-finite guard: a NaN/inf loss at a log, or NaN/inf parameters at a save, raise
    `checkpoint.NonFiniteError` naming the step, the stage and `runtime.hint(stage)` (what to
    change); the last good checkpoint stays. Returns (state, steps run up to).
    """
    stage = stage or desc
    log, checkpoints, hint = runtime.log, runtime.checkpoints(stage), runtime.hint(stage)
    if log:
        log.rewind(stage, start)
    every = checkpoint.interval(steps, checkpoint_every)
    bar = tqdm(range(start, steps), desc=shortened(desc), disable=not runtime.progress, initial=start, total=steps)
    tic, seen, t = time.perf_counter(), [], start - 1
    for t in bar:
        raise_pending_interrupt()
        state, metrics = step(state, t)
        seen.append(metrics)
        stop = False
        if (t + 1) % log_every == 0 or t + 1 == steps:
            summary = _summarise(seen)
            seen = []
            _check_losses(summary, stage, t + 1, hint, checkpoints)
            bar.set_postfix({k: f"{v:.3f}" for k, v in summary.items() if "loss" in k or "accuracy" in k})
            if log:
                log.write(stage, t + 1, **(log_fields or {}), seconds=time.perf_counter() - tic, **summary)
            stop = bool(on_log and on_log(t + 1, state, summary))
        if after_step:
            after_step(t + 1, state)
        if checkpoints and (stop or (t + 1) % every == 0 or t + 1 == steps):
            checkpoints.save(t + 1, snapshot(state) if snapshot else state, stage=stage, hint=hint)
        if stop:
            bar.close()
            return state, t + 1
    bar.close()
    return state, max(t + 1, start)


def _check_losses(summary: dict, stage: str, step: int, hint: str, checkpoints) -> None:
    for name, value in summary.items():
        if "loss" in name and not np.isfinite(value):
            last_good = checkpoints.latest_step() if checkpoints else None
            raise checkpoint.NonFiniteError(f"{name} ({value})", stage, step, hint, last_good)


def resume(checkpoints: checkpoint.Checkpoints | None, state, snapshot: Callable | None = None,
           restore: Callable | None = None):
    """(start step, state): the newest good checkpoint's, or (0, state) when there is none.
    `snapshot(state)` is what the loop saves; `restore(state, saved)` puts it back (default: the
    saved tree is the state)."""
    if checkpoints is None:
        return 0, state
    step, saved = checkpoints.restore_latest(snapshot(state) if snapshot else state)
    if step is None:
        return 0, state
    return step, restore(state, saved) if restore else saved


def _summarise(seen: list[dict]) -> dict:
    """Device metrics averaged over the steps since the last log; plain numbers as of the last step."""
    last = seen[-1]
    return {k: float(v) if isinstance(v, (int, float)) else float(np.mean([m[k] for m in seen]))
            for k, v in last.items()}


def train_supernet(space: Space, model, train: data.Split, *, steps: int, batch_size: int,
                   optimizer: optax.GradientTransformation, key: jax.Array, runtime: Runtime,
                   sampling: str = "uniform", checkpoint_every: int = 0, log_every: int = 50,
                   path_sampler: Callable[[jax.Array], jax.Array] | None = None, params: Any = None,
                   stage: str = "supernet", desc: str | None = None,
                   task: tasks.Task = tasks.CLASSIFICATION) -> TrainState:
    """Trains the supernet for `steps` steps on `runtime`'s mesh. With a workdir, the stage
    checkpoints into `workdir/checkpoints/<stage>` (every `checkpoint.interval(steps,
    checkpoint_every)` steps) and resumes from its newest good checkpoint.

    `params`: start from these weights (a warm start, e.g. a few-shot sub-supernet from the
    one-shot supernet) with a fresh optimiser state and schedule, instead of initialising.
    `path_sampler(key) -> int32[paths, D]`: which architectures train (default:
    `make_path_sampler(space, sampling)`). `task`: the loss trained (`supernet.task`).

    Randomness: the init key and, for step t, `fold_in(path_key, t)` for the path and
    `fold_in(fold_in(key, DROPOUT_STREAM), t)` for dropout masks (folded inside the step); the
    batch order comes from (seed of `key`, epoch), so a resumed run continues exactly where it
    stopped.
    """
    mesh = runtime.mesh
    sharding.check_batch_size(batch_size, mesh)
    data.check_split(train, batch_size=batch_size, input_shape=getattr(space, "input_shape", None),
                     num_classes=getattr(space, "num_classes", None) if task.labels else None)
    init_key, path_key = jax.random.split(key)
    dropout_key = jax.random.fold_in(key, DROPOUT_STREAM)
    if params is None:
        state = create_state(space, model, optimizer, init_key, train.x.shape[1:], train.x.dtype)
    else:
        params = jax.tree.map(jnp.array, params)  # a copy: the step donates its input
        state = TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=optimizer.init(params))
    _, state = resume(runtime.checkpoints(stage), state)
    state = sharding.replicate(mesh, state)
    train_step = make_train_step(space, model, optimizer, task)
    sampler = path_sampler or make_path_sampler(space, sampling)
    start = int(state.step)
    batch_seed = int(jax.random.randint(path_key, (), 0, 2**31 - 1))
    batches = sharding.prefetch(mesh, step_batches(train, batch_size, batch_seed, start))  # next batch in flight

    def step(state, t):
        x, y = next(batches)
        return train_step(state, x, y, sampler(jax.random.fold_in(path_key, t)), dropout_key)   # state.step is t

    state, _ = run_loop(step, state, steps=steps, runtime=runtime, start=start, desc=desc or stage, stage=stage,
                        log_every=log_every, checkpoint_every=checkpoint_every)
    return state
