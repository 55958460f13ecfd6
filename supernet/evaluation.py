"""Scoring architectures with shared weights: per-architecture BN recalibration, then accuracy.

A supernet keeps no running BN averages (they differ per architecture): `calibrate` computes an
architecture's statistics into the `supernet_stats` collection (`layers.STATS_COLLECTION`) and
`predict` evaluates with them; `calibrate_variables` does the same for a user's model that embeds
a supernet (`space.body()`), leaving the model's own `batch_stats` alone.

`evaluate_population` scores a whole batch of architectures on the same data in one jitted call
per data batch (vmapped over the architectures on accelerators, a `lax.map` loop on the CPU): the
architectures are data, so one compilation serves every population of the same size.
"""

from __future__ import annotations

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh
from tqdm.auto import tqdm

from supernet import backend, records, sharding
from supernet import task as tasks
from supernet.layers import STATS_COLLECTION
from supernet.runtime import Runtime
from supernet.spaces.base import Space
from supernet.training import DROPOUT_STREAM, TrainState, apply_train, make_train_step, one_hot, step_batches


def calibrate_variables(model, variables, arch_or_weights, x: jax.Array, **apply_kwargs):
    """`variables` with the supernet statistics (the `supernet_stats` collection) recomputed for
    one architecture on calibration inputs `x`; every other collection is returned untouched.

    `model` is a supernet or any Linen model that contains one (e.g. `space.body()` inside your
    own network), called as `model.apply(variables, x, arch_or_weights, train=True, **apply_kwargs)`
    (`apply_kwargs` may override `train`). Dropout is off (`training.apply_train`). In train mode
    the supernet's batch norms write the batch's statistics when `supernet_stats` is mutable. The
    model's other state collections (your `nn.BatchNorm`'s `batch_stats`, which it updates in
    train mode) are made mutable so the call can run, but their updates are thrown away: your
    running averages stay as they were. Your own layers do run in train mode, so a BatchNorm of
    yours *before* the supernet normalises the calibration batch with its own statistics.
    Jittable. For NNX (`nnx.bridge.ToNNX(space.body())`), call the wrapped body on its input with
    `train=True, mutable=["supernet_stats"]`: that writes only the supernet statistics.
    """
    state = [c for c in variables if c != "params"]
    mutable = list(dict.fromkeys(state + [STATS_COLLECTION]))
    _, mutated = apply_train(model, variables, x, arch_or_weights, mutable=mutable, **apply_kwargs)
    if STATS_COLLECTION not in mutated:
        raise ValueError(f"calibration wrote no '{STATS_COLLECTION}': does the model contain a supernet, "
                         f"and does it pass train=True (and the architecture) on to it?")
    return {**variables, STATS_COLLECTION: mutated[STATS_COLLECTION]}


def calibrate(model, params, arch_or_weights, x: jax.Array):
    """A bare supernet's statistics (its `supernet_stats` collection) for an architecture (int32[D]
    or weights float[D, K]) on calibration inputs `x` (a train-mode forward). For a model that
    contains a supernet, use `calibrate_variables`."""
    return calibrate_variables(model, {"params": params}, arch_or_weights, x)[STATS_COLLECTION]


def predict(model, params, stats, arch_or_weights, x: jax.Array) -> jax.Array:
    """Evaluation-mode outputs of a bare supernet with the statistics `calibrate` returned."""
    return model.apply({"params": params, STATS_COLLECTION: stats}, x, arch_or_weights, train=False)


def _over_archs(fn, xs, vmap_archs: int | None):
    """fn mapped over the leading axis of xs: all vmapped (None), or `vmap_archs` at a time in a
    `lax.map` loop inside the same compiled call. One at a time is a plain loop, not a vmap of
    size 1: under vmap the sparse supernet's `lax.switch` would compute every branch."""
    if vmap_archs is None:
        return jax.vmap(fn)(xs)
    return jax.lax.map(fn, xs, batch_size=None if vmap_archs == 1 else vmap_archs)


@functools.lru_cache(maxsize=32)
def _population_fns(space: Space, model, vmap_archs: int | None):
    """Jitted (calibrate, score) over a population for this space/model; cached so repeated calls
    with the same population size reuse one compilation."""

    def calibrate_all(params, archs, x):
        return _over_archs(lambda a: calibrate(model, params, one_hot(space, a), x), archs, vmap_archs)

    def score_all(params, stats, archs, x, y, mask):
        def score(stats_and_arch):
            s, a = stats_and_arch
            logits = predict(model, params, s, one_hot(space, a), x)
            losses = optax.softmax_cross_entropy_with_integer_labels(logits, y)
            # NaN logits would argmax to class 0 and score a plausible accuracy: make it NaN.
            finite = (jnp.isfinite(logits).all(-1) | (mask == 0)).all()
            return jnp.where(finite, ((logits.argmax(-1) == y) * mask).sum(), jnp.nan), (losses * mask).sum()
        return _over_archs(score, (stats, archs), vmap_archs)

    return jax.jit(calibrate_all), jax.jit(score_all)


@functools.lru_cache(maxsize=32)
def _output_fn(space: Space, model, vmap_archs: int | None):
    """Jitted: every architecture's evaluation-mode outputs on one batch, [P, batch, ...]."""
    def outputs_all(params, stats, archs, x):
        return _over_archs(lambda sa: predict(model, params, sa[0], one_hot(space, sa[1]), x), (stats, archs),
                           vmap_archs)
    return jax.jit(outputs_all)


@functools.lru_cache(maxsize=16)
def _task_scores(task: tasks.Task):
    """Jitted: (loss, metric) of one architecture's outputs on the whole split; NaN for non-finite
    outputs, which would otherwise score a plausible number."""
    def both(outputs, y):
        finite = jnp.isfinite(outputs).all()
        return (jnp.where(finite, task.loss(outputs, y), jnp.nan), jnp.where(finite, task.metric(outputs, y), jnp.nan))
    return jax.jit(both)


def default_vmap_archs() -> int | None:
    """The backend policy's choice (`backend.current().vmap_archs`): all architectures vmapped
    together on GPU/TPU; one at a time (a `lax.map` loop inside the call) on the CPU, where
    vmapping turns every convolution into a grouped one that XLA:CPU runs several times slower
    than the plain convolutions of a loop (see README, Benchmark)."""
    return backend.current().vmap_archs


def evaluate_population(space: Space, model, params, archs, calib_x: np.ndarray, x: np.ndarray,
                        y: np.ndarray, *, mesh: Mesh, batch_size: int = 256,
                        chunk_size: int | None = None, vmap_archs: int | None | str = "auto",
                        task: tasks.Task = tasks.CLASSIFICATION) -> dict:
    """Accuracy and mean loss of every architecture in `archs` (int32[P, D]) on all of (x, y).

    Each architecture's BN statistics are first recalibrated on `calib_x` (training inputs), then
    the data are scored in batches of `batch_size` (the last one padded and masked). `chunk_size`
    bounds how many architectures share one call, to bound memory. Within a call, `vmap_archs`
    architectures are vmapped together and the rest loop in `lax.map` (None: all vmapped;
    "auto": `default_vmap_archs()`). Returns {"accuracy": float[P], "loss": float[P], "metric":
    float[P]} as numpy arrays ("metric" is the accuracy). With another `task` (`supernet.task`), the
    outputs of each architecture on the whole split go to `task.loss` and `task.metric` (so any
    metric is exact, not a mean of batch means): {"metric", "loss"}, plus "accuracy" when the
    task's metric is accuracy.
    """
    if vmap_archs == "auto":
        vmap_archs = default_vmap_archs()
    if vmap_archs is not None and (not isinstance(vmap_archs, int) or vmap_archs < 1):
        raise ValueError(f"vmap_archs must be a positive int, None (all) or 'auto', got {vmap_archs!r}.")
    archs = jnp.asarray(space.validate(archs).reshape(-1, space.num_decisions))
    if not len(archs):
        raise ValueError("evaluate_population got an empty population; pass at least one architecture "
                         f"(int32[n, {space.num_decisions}], n >= 1).")
    sharding.check_batch_size(batch_size, mesh, "evaluation batch size")
    sharding.check_batch_size(len(calib_x), mesh, "calibration batch size")
    calibrate_all, score_all = _population_fns(space, model, vmap_archs)
    calib = sharding.shard_batch(mesh, np.asarray(calib_x))
    if task != tasks.CLASSIFICATION:
        return _task_population(space, model, params, archs, calib, x, y, mesh, batch_size, chunk_size, vmap_archs,
                                task)
    batches = [sharding.shard_batch(mesh, *_padded(x, y, i, batch_size)) for i in range(0, len(x), batch_size)]
    chunk = chunk_size or len(archs)
    correct, loss = [], []
    for start in range(0, len(archs), chunk):
        part = archs[start:start + chunk]
        stats = calibrate_all(params, part, calib)
        totals = sharding.fetch([score_all(params, stats, part, *batch) for batch in batches])
        correct.append(sum(c for c, _ in totals))
        loss.append(sum(l for _, l in totals))
    accuracy = np.concatenate(correct) / len(x)
    return {"accuracy": accuracy, "loss": np.concatenate(loss) / len(x), "metric": accuracy}


def _task_population(space, model, params, archs, calib, x, y, mesh, batch_size, chunk_size, vmap_archs,
                     task) -> dict:
    """`evaluate_population` for any task: outputs gathered per architecture, then scored whole."""
    calibrate_all, _ = _population_fns(space, model, vmap_archs)
    outputs_all, scores_of = _output_fn(space, model, vmap_archs), _task_scores(task)
    batches = [sharding.shard_batch(mesh, _padded(x, y, i, batch_size)[0])
               for i in range(0, len(x), batch_size)]
    targets, loss, metric = jnp.asarray(y), [], []
    chunk = chunk_size or len(archs)
    for start in range(0, len(archs), chunk):
        part = archs[start:start + chunk]
        stats = calibrate_all(params, part, calib)
        outputs = np.concatenate(sharding.fetch([outputs_all(params, stats, part, b) for b in batches]), axis=1)
        for one in outputs[:, :len(x)]:
            l, m = scores_of(jnp.asarray(one), targets)
            loss.append(float(l))
            metric.append(float(m))
    found = {"metric": np.asarray(metric), "loss": np.asarray(loss)}
    return {**found, "accuracy": found["metric"]} if task.metric_name == "accuracy" else found


def evaluate_fine_tuned(space: Space, model, params, archs, train, calib_x: np.ndarray, x: np.ndarray,
                        y: np.ndarray, *, runtime: Runtime, steps: int, optimizer: optax.GradientTransformation,
                        batch_size: int = 128, seed: int = 0, eval_batch_size: int = 256,
                        record: str | None = None) -> dict:
    """`evaluate_population` after each architecture has trained its inherited weights alone for
    `steps` steps (a fresh `optimizer` state each, the same `batch_size` batches of `train` for all,
    shuffled by `seed`, which also draws any dropout masks): the weights lose some of the
    compromise they strike between all the paths that share them, at the cost of `steps` training
    steps per architecture. One compiled step serves every architecture (the architecture is
    data); `params` are not changed. Runs on `runtime`'s mesh, with a progress bar over the
    architectures when it asks for one.

    `record`: a JSON-lines file that gets each architecture's scores as soon as they are known;
    architectures already in it are not fine-tuned again, so a killed pass resumes where it stopped
    (the file must come from the same supernet weights and settings, e.g. live in the run's workdir)."""
    if not isinstance(steps, int) or steps < 0:
        raise ValueError(f"fine-tuning steps must be an int >= 0 (0: the inherited weights as they are), got {steps!r}.")
    archs = np.asarray(space.validate(archs)).reshape(-1, space.num_decisions)
    mesh = runtime.mesh
    done = {tuple(line["arch"]): line for line in records.read_lines(record)} if record else {}
    step = make_train_step(space, model, optimizer)
    dropout_key = jax.random.fold_in(jax.random.key(seed), DROPOUT_STREAM)
    batches = [sharding.shard_batch(mesh, bx, by) for bx, by in itertools.islice(
        step_batches(train, batch_size, seed, 0), steps)]
    scored = []
    for arch in tqdm(archs, desc="fine-tuning", disable=not runtime.progress):
        key = tuple(int(v) for v in arch)
        if key not in done:
            own = jax.tree.map(jnp.array, params)  # a copy: the step donates its state
            state = sharding.replicate(mesh, TrainState(step=jnp.zeros((), jnp.int32), params=own,
                                                        opt_state=optimizer.init(own)))
            path = jnp.asarray(arch)[None]  # the step's int32[paths=1, D]
            for bx, by in batches:
                state, _ = step(state, bx, by, path, dropout_key)
            scores = evaluate_population(space, model, state.params, arch[None], calib_x, x, y, mesh=mesh,
                                         batch_size=eval_batch_size)
            done[key] = {"arch": list(key), "accuracy": float(scores["accuracy"][0]), "loss": float(scores["loss"][0])}
            if record:
                records.append_line(record, done[key])
        scored.append(done[key])
    return {name: np.asarray([s[name] for s in scored], np.float64) for name in ("accuracy", "loss")}


def _padded(x, y, start, batch_size):
    """Batch `start` of (x, y), zero-padded to `batch_size`, with a 0/1 mask of real examples."""
    bx, by = x[start:start + batch_size], y[start:start + batch_size]
    pad = batch_size - len(bx)
    mask = np.concatenate([np.ones(len(bx), np.float32), np.zeros(pad, np.float32)])
    return (np.concatenate([bx, np.zeros((pad, *bx.shape[1:]), bx.dtype)]),
            np.concatenate([by, np.zeros((pad, *by.shape[1:]), by.dtype)]), mask)


def extract(space: Space, params, arch, calib_x: np.ndarray | None = None, model=None):
    """(supernet weights, architecture) -> (standalone Flax module, its variables).

    The architecture's BN statistics are first calibrated on `calib_x` (a few hundred training
    inputs), so the standalone network reproduces the supernet's evaluation outputs. The module is
    a plain network (`supernet.networks`); `module.init` gives fresh weights to retrain it from scratch.
    """
    if calib_x is None:
        raise ValueError("extract needs calib_x, a few hundred training inputs (e.g. dataset.train.x[:256]), to "
                         "calibrate the architecture's batch-norm statistics; without them the network cannot "
                         "evaluate. To train it from scratch instead, use space.standalone(arch).")
    arch = space.validate(arch)
    model = model or space.supernet()
    variables = {"params": params,
                 STATS_COLLECTION: calibrate(model, params, one_hot(space, jnp.asarray(arch)), jnp.asarray(calib_x))}
    return space.standalone(arch), space.extract_variables(variables, arch)
