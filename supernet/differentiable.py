"""Differentiable architecture search on the weight-sharing supernet: DARTS and GDAS.

The architecture parameters ("alphas") are their own pytree, one logit vector per decision stored
as a float32[D, K] array (K = the most options of any decision; the padded slots are masked out of
every softmax), with their own optax optimiser next to the supernet weights':

    alphas = init_alphas(space, key)
    weights = arch_weights(space, alphas)        # float32[D, K], rows sum to 1, padded slots 0

Both methods are bilevel: the supernet weights take a step on the `train` split, the alphas a step
on the `val` split.

* DARTS (Liu et al., 2019) feeds the softmax weights to the *mixed* supernet, which computes every
  candidate and sums them (the continuous relaxation). First order uses the alphas' gradient at the
  current weights; second order differentiates through one virtual weight step
  `w' = w - xi * grad_w L_train(w, a)`, with the mixed second derivative applied to a vector by
  forward-over-reverse differentiation (`jax.jvp` of `jax.grad`) instead of DARTS's finite
  difference.
* GDAS (Dong & Yang, 2019) draws a Gumbel-softmax sample per decision and uses its hard one-hot
  with a straight-through gradient through the sampled option, on the *single-path* supernet:
  every step runs one path only. On NAS-Bench-201 that path is the backend's single-path cell
  (`supernet.backend`): the sparse cell on the CPU, which runs only the sampled operation per edge,
  and the folded cell on GPUs and TPUs, which costs one 3x3-sized conv per edge whatever was
  sampled.

`derive` turns the weights into the discrete architecture (argmax per decision, never an option
labelled `none`, as NAS-Bench-201's reference code does). DARTS tends to collapse onto
parameter-free operations; the share of them in the derived architecture is logged over time, and
two published remedies are options: `early_stop` (DARTS+, Liang et al., 2019: stop once the share
passes a limit) and `aux_skip` (DARTS-, Chu et al., 2021: an auxiliary skip branch whose strength
decays from 1 to 0 over the search). A weights-only warm-up (`warmup_fraction`, as in PC-DARTS)
is a third option, for either method.

Data parallelism works as in single-path training: everything is replicated, batches are split over
the mesh, and jit averages both gradients across devices, so every device holds the same alphas.

`run_differentiable_search(space, dataset, Recipe(...), key=...)` runs a whole search through the
one training loop (`training.run_loop`) and returns the derived architecture with its history;
the `differentiable` job (`supernet.jobs.differentiable`) writes it, draws the weights and retrains
the result against random architectures. `strategies.distribution` exposes a finished search to
the strategy registry (ask returns the derived architecture first, then samples from the learned
distribution).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable, Literal

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax

from strategies.distribution import EXCLUDED_LABELS, derive, excluded_options
from supernet import sharding, training
from supernet.runtime import InvalidSetting, Runtime, check_choice, check_int, check_real
from supernet.training import cross_entropy, init_params, make_optimizer, step_batches

METHODS = ("darts", "gdas")
REMEDIES = ("none", "early_stop", "aux_skip")
# Options that the DARTS- auxiliary branch strengthens: the identity in each space's vocabulary.
SKIP_LABELS = ("skip_connect", "skip", "identity")


# -- architecture parameters ------------------------------------------------------------------------

def init_alphas(space, key: jax.Array | None = None, scale: float = 1e-3) -> jax.Array:
    """float32[D, K] logits, small random values (DARTS's 1e-3 * N(0, 1)); padded slots are 0."""
    shape = space.option_mask().shape
    if key is None:
        return jnp.zeros(shape, jnp.float32)
    return scale * jax.random.normal(key, shape, jnp.float32) * space.option_mask()


def masked_softmax(logits: jax.Array, mask) -> jax.Array:
    """Softmax over the last axis that gives masked-out slots exactly zero weight (and no gradient)."""
    mask = jnp.asarray(mask, bool)
    logits = jnp.where(mask, logits, -jnp.inf)
    # The max is over real slots only; `where` keeps NaN/inf gradients out of the padded slots.
    shifted = logits - jax.lax.stop_gradient(jnp.max(logits, axis=-1, keepdims=True))
    exp = jnp.where(mask, jnp.exp(jnp.where(mask, shifted, 0.0)), 0.0)
    return exp / exp.sum(axis=-1, keepdims=True)


def arch_weights(space, alphas: jax.Array) -> jax.Array:
    """The softmax weights of the alphas, float32[D, K]."""
    return masked_softmax(alphas, space.option_mask())


def make_alpha_optimizer(learning_rate: float = 3e-4, weight_decay: float = 1e-3,
                         b1: float = 0.5, b2: float = 0.999) -> optax.GradientTransformation:
    """Adam with L2 decay added to the gradient, DARTS's and GDAS's recipe for the alphas."""
    return optax.chain(optax.add_decayed_weights(weight_decay), optax.adam(learning_rate, b1=b1, b2=b2))


def make_weight_optimizer(learning_rate: float, momentum: float, weight_decay: float, steps: int,
                          grad_clip: float) -> optax.GradientTransformation:
    """The single-path recipe (SGD, Nesterov, cosine) with DARTS's gradient-norm clipping in front."""
    base = make_optimizer(learning_rate, momentum, weight_decay, steps)
    return optax.chain(optax.clip_by_global_norm(grad_clip), base) if grad_clip else base


def parameter_free_share(space, arch) -> float | None:
    """Share of decisions whose chosen operation has no weights (DARTS's collapse signal), for
    spaces that can tell (`space.parameter_free`); None for the others."""
    if not hasattr(space, "parameter_free"):
        return None
    return float(np.mean(space.parameter_free(arch)))


def skip_options(space) -> np.ndarray:
    """float32[D, K]: 1 at each skip / identity option, for the DARTS- auxiliary branch."""
    skip = np.zeros(space.option_mask().shape, np.float32)
    for d, options in enumerate(space.options):
        for k, label in enumerate(options):
            skip[d, k] = label in SKIP_LABELS
    return skip


# -- search state and steps -------------------------------------------------------------------------

@flax.struct.dataclass
class SearchState:
    """A differentiable search's state: the step, the weights and architecture parameters (alphas)
    and their optimisers' states."""
    step: jax.Array
    params: Any
    opt_state: Any
    alphas: jax.Array
    alpha_opt_state: Any


def make_loss(model) -> Callable:
    """`loss(params, weights, x, y) -> (mean cross-entropy, accuracy)`; the supernet is linear in
    `weights` per decision, so soft (DARTS), hard (GDAS) and shifted (DARTS-) weights all work.
    Dropout is off: the architecture gradient compares options on the network evaluation runs."""

    def loss(params, weights, x, y):
        logits = training.apply_train(model, {"params": params}, x, weights)
        return cross_entropy(logits, y), (logits.argmax(-1) == y).mean()

    return loss


def unrolled_alpha_grad(loss, params, alphas, to_weights, train_batch, val_batch, xi: float):
    """DARTS's second-order architecture gradient of L_val(w - xi * grad_w L_train(w, a), a).

    d/da = grad_a L_val(w', a) - xi * (d^2 L_train / da dw) . grad_w' L_val(w', a); the mixed
    second derivative times that vector is the forward-mode derivative (jvp), along the vector,
    of the reverse-mode gradient in `a`: forward-over-reverse, exact and one extra pass.
    Returns (gradient, (val loss, val accuracy) at w').
    """
    def scalar(p, a, batch):
        return loss(p, to_weights(a), *batch)[0]

    grad_w_train = jax.grad(scalar)(params, alphas, train_batch)
    virtual = jax.tree.map(lambda w, g: w - xi * g, params, grad_w_train)
    (val_loss, val_acc), (g_w, g_a) = jax.value_and_grad(
        lambda p, a: loss(p, to_weights(a), *val_batch), argnums=(0, 1), has_aux=True)(virtual, alphas)
    grad_a_train = lambda p: jax.grad(scalar, argnums=1)(p, alphas, train_batch)
    _, mixed = jax.jvp(grad_a_train, (params,), (g_w,))
    return g_a - xi * mixed, (val_loss, val_acc)


def update_alphas(alpha_optimizer, grads, state: SearchState, alpha_on):
    """One optimiser step on the alphas, or (alpha_on = 0, during a warm-up) no change at all,
    optimiser state included, so the search starts from fresh moments after the warm-up."""
    updates, new_opt_state = alpha_optimizer.update(grads, state.alpha_opt_state, state.alphas)
    alphas = optax.apply_updates(state.alphas, jax.tree.map(lambda u: alpha_on * u, updates))
    keep = lambda new, old: jnp.where(alpha_on > 0, new, old)
    return alphas, jax.tree.map(keep, new_opt_state, state.alpha_opt_state)


def weight_step(loss, weight_optimizer, state: SearchState, alphas, alpha_opt_state, weights, x, y,
                val_loss, val_acc):
    """The second half of a DARTS or GDAS step: the supernet weights step on the train batch with
    the (already updated) architecture `weights`; returns the new state and the step's metrics."""
    (train_loss, train_acc), g_w = jax.value_and_grad(lambda p: loss(p, weights, x, y), has_aux=True)(state.params)
    updates, opt_state = weight_optimizer.update(g_w, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    new = SearchState(state.step + 1, params, opt_state, alphas, alpha_opt_state)
    return new, {"train_loss": train_loss, "train_accuracy": train_acc, "val_loss": val_loss, "val_accuracy": val_acc}


def make_darts_step(space, model, weight_optimizer, alpha_optimizer, *, order: int = 1,
                    xi: float = 0.0):
    """`step(state, train_x, train_y, val_x, val_y, beta, alpha_on=1.0) -> (state, metrics)`, jitted.

    The alphas step first (on val), then the weights (on train, with the updated alphas), as in
    DARTS. `beta` is the DARTS- auxiliary skip strength (0 without that remedy): it is added to
    the skip options' weights, which for a supernet linear in the weights is exactly `+ beta * x`.
    `alpha_on` 0 freezes the alphas (warm-up: weights only).
    """
    if order not in (1, 2):
        raise ValueError(f"DARTS order must be 1 (first order) or 2 (unrolled), got {order!r}.")
    loss = make_loss(model)
    skip = jnp.asarray(skip_options(space))

    def step(state: SearchState, train_x, train_y, val_x, val_y, beta, alpha_on=1.0):
        to_weights = lambda a: arch_weights(space, a) + beta * skip
        if order == 1:
            (val_loss, val_acc), g_a = jax.value_and_grad(
                lambda a: loss(state.params, to_weights(a), val_x, val_y), has_aux=True)(state.alphas)
        else:
            g_a, (val_loss, val_acc) = unrolled_alpha_grad(
                loss, state.params, state.alphas, to_weights, (train_x, train_y), (val_x, val_y), xi)
        alphas, alpha_opt_state = update_alphas(alpha_optimizer, g_a, state, alpha_on)

        weights = jax.lax.stop_gradient(to_weights(alphas))
        return weight_step(loss, weight_optimizer, state, alphas, alpha_opt_state, weights, train_x, train_y,
                           val_loss, val_acc)

    return jax.jit(step, donate_argnums=0)


def gumbel_hard(space, key: jax.Array, alphas: jax.Array, tau, sampled_only: bool = True) -> jax.Array:
    """A Gumbel-softmax sample per decision: exactly one-hot forward, gradient to the logits
    through the soft sample (straight-through). Padded slots are never drawn.

    `sampled_only` (GDAS): the gradient flows through the sampled option's weight alone, i.e.
    dL/dalpha = <dL/dout, op_sampled(x)> * dsoft_sampled/dalpha, the quantity GDAS's
    implementation back-propagates. Otherwise every option's weight carries gradient (the plain
    straight-through estimator); on a single-path supernet the derivatives for options not
    computed are then only what the folded path exposes (for a 1x1/3x3 conv not sampled, little
    more than its BN bias; the sparse NAS-Bench-201 cell exposes none), which biases the search
    toward parameter-free options: on MNIST-1D that version collapsed to all-pooling within 20
    steps.
    """
    gumbel = jax.random.gumbel(key, alphas.shape, alphas.dtype)
    soft = masked_softmax((alphas + gumbel) / tau, space.option_mask())
    hard = jax.nn.one_hot(soft.argmax(-1), soft.shape[-1], dtype=soft.dtype)
    # soft - stop_gradient(soft) is exactly 0, so the forward value is exactly the one-hot.
    if sampled_only:
        return hard * (1.0 + (soft - jax.lax.stop_gradient(soft)))
    return hard + (soft - jax.lax.stop_gradient(soft))


def make_gdas_step(space, model, weight_optimizer, alpha_optimizer):
    """`step(state, train_x, train_y, val_x, val_y, key, tau, alpha_on=1.0) -> (state, metrics)`, jitted.

    `model` should be the single-path supernet: with a hard one-hot it computes only the sampled
    operation per decision. The weights step with one sample on train, the alphas with another on
    val (their gradient reaches the logits through the sampled option's soft weight).
    """
    loss = make_loss(model)

    def step(state: SearchState, train_x, train_y, val_x, val_y, key, tau, alpha_on=1.0):
        key_a, key_w = jax.random.split(key)
        (val_loss, val_acc), g_a = jax.value_and_grad(
            lambda a: loss(state.params, gumbel_hard(space, key_a, a, tau), val_x, val_y),
            has_aux=True)(state.alphas)
        alphas, alpha_opt_state = update_alphas(alpha_optimizer, g_a, state, alpha_on)

        path = jax.lax.stop_gradient(gumbel_hard(space, key_w, alphas, tau))
        return weight_step(loss, weight_optimizer, state, alphas, alpha_opt_state, path, train_x, train_y,
                           val_loss, val_acc)

    return jax.jit(step, donate_argnums=0)


def create_search_state(space, model, weight_optimizer, alpha_optimizer, key: jax.Array,
                        input_shape) -> SearchState:
    """A fresh `SearchState`: weights initialised for `input_shape` from `key`, alphas near zero,
    both optimisers initialised."""
    init_key, alpha_key = jax.random.split(key)
    params = init_params(space, model, init_key, input_shape)
    alphas = init_alphas(space, alpha_key)
    return SearchState(jnp.zeros((), jnp.int32), params, weight_optimizer.init(params), alphas,
                       alpha_optimizer.init(alphas))


# -- schedules ----------------------------------------------------------------------------------------

def gdas_temperature(step: int, steps: int, tau_max: float, tau_min: float) -> float:
    """GDAS's temperature, linear from tau_max to tau_min over the search."""
    return tau_max - (tau_max - tau_min) * step / max(steps - 1, 1)


def aux_skip_beta(step: int, steps: int) -> float:
    """DARTS-'s auxiliary skip strength, linear from 1 to 0 over the search."""
    return 1.0 - step / max(steps - 1, 1)


# -- the whole search ---------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Recipe:
    """Everything a differentiable search is set up with (a config's `search` section maps onto it).

    method: "darts" (mixed supernet, `order` 1 or 2) or "gdas" (single path, Gumbel temperature
      linear from `tau_max` to `tau_min`).
    xi: the virtual step size of second-order DARTS (None: `weight_lr`, as in DARTS).
    remedy: "none"; "early_stop" stops once the derived architecture's share of parameter-free
      operations exceeds `max_param_free_share` (checked every `log_every` steps after
      `min_stop_fraction` of the steps) and keeps the last architecture within the limit;
      "aux_skip" adds DARTS-'s decaying skip branch.
    warmup_fraction: the first steps train the weights only, alphas frozen (PC-DARTS warms up
      for 15 of 50 epochs), so untrained convolutions do not lose to parameter-free options
      before they learned anything.
    """
    method: Literal["darts", "gdas"] = "darts"
    order: Literal[1, 2] = 1
    steps: int = 200
    batch_size: int = 64
    val_batch_size: int | None = None
    weight_lr: float = 0.025
    weight_momentum: float = 0.9
    weight_decay: float = 3e-4
    grad_clip: float = 5.0
    alpha_lr: float = 3e-4
    alpha_weight_decay: float = 1e-3
    xi: float | None = None
    tau_max: float = 10.0
    tau_min: float = 0.1
    remedy: Literal["none", "early_stop", "aux_skip"] = "none"
    max_param_free_share: float = 0.5
    min_stop_fraction: float = 0.25
    warmup_fraction: float = 0.0
    log_every: int = 10

    def __post_init__(self):
        check_choice("method", self.method, METHODS)
        check_choice("remedy", self.remedy, REMEDIES)
        if self.order not in (1, 2) or isinstance(self.order, bool):
            raise InvalidSetting("order", f"order must be 1 (first order) or 2 (unrolled), got {self.order!r}.")
        for field in ("steps", "batch_size", "log_every"):
            check_int(field, getattr(self, field))
        if self.val_batch_size is not None:
            check_int("val_batch_size", self.val_batch_size)
        for field in ("weight_lr", "alpha_lr", "tau_max", "tau_min"):
            check_real(field, getattr(self, field))
        check_real("grad_clip", self.grad_clip, low_open=False)  # 0: no clipping
        if self.xi is not None:
            check_real("xi", self.xi, low_open=False)
        check_real("weight_momentum", self.weight_momentum, high=1.0, low_open=False)
        for field in ("weight_decay", "alpha_weight_decay"):
            check_real(field, getattr(self, field), low_open=False)
        for field in ("max_param_free_share", "min_stop_fraction", "warmup_fraction"):
            check_real(field, getattr(self, field), high=1.0, low_open=False, high_open=False)

    def check(self, space) -> None:
        """Errors for settings that cannot work on `space`, before any compilation (the space-free
        ones are refused when the recipe is built)."""
        if self.remedy == "early_stop" and parameter_free_share(space, space.largest()) is None:
            raise ValueError(f"remedy 'early_stop' needs `parameter_free` on the {space.name} space.")
        if self.remedy == "aux_skip" and not skip_options(space).any():
            raise ValueError(f"remedy 'aux_skip' needs a skip option ({', '.join(SKIP_LABELS)}); "
                             f"the {space.name} space has none.")


def _make_step(space, model, recipe: Recipe, weight_optimizer, alpha_optimizer, mesh, dataset, step_key, data_key,
               start: int = 0):
    """`step(state, t) -> (state, metrics)` for the training loop (t from `start`): draws step t's
    train and val batches and randomness, and the schedules' values at t."""
    seed = int(jax.random.randint(data_key, (), 0, 2**31 - 2))
    train_batches = step_batches(dataset.train, recipe.batch_size, seed, start)
    val_batches = step_batches(dataset.val, recipe.val_batch_size or recipe.batch_size, seed + 1, start)
    if recipe.method == "darts":
        xi = recipe.weight_lr if recipe.xi is None else recipe.xi
        darts = make_darts_step(space, model, weight_optimizer, alpha_optimizer, order=recipe.order, xi=xi)
    else:
        gdas = make_gdas_step(space, model, weight_optimizer, alpha_optimizer)

    def step(state, t):
        tx, ty = sharding.shard_batch(mesh, *next(train_batches))
        vx, vy = sharding.shard_batch(mesh, *next(val_batches))
        alpha_on = jnp.float32(t >= recipe.warmup_fraction * recipe.steps)
        if recipe.method == "darts":
            beta = aux_skip_beta(t, recipe.steps) if recipe.remedy == "aux_skip" else 0.0
            state, metrics = darts(state, tx, ty, vx, vy, jnp.float32(beta), alpha_on)
            return state, {**metrics, "beta": beta}
        tau = gdas_temperature(t, recipe.steps, recipe.tau_max, recipe.tau_min)
        state, metrics = gdas(state, tx, ty, vx, vy, jax.random.fold_in(step_key, t), jnp.float32(tau), alpha_on)
        return state, {**metrics, "tau": tau}

    return step


def run_differentiable_search(space, dataset, recipe: Recipe, *, key: jax.Array, runtime: Runtime | None = None,
                              checkpoint_every: int = 0) -> dict:
    """Searches `space` on `dataset` (weights on `train`, alphas on `val`) and derives the result,
    on `runtime`'s mesh (default: `Runtime()`, every local device, no workdir).

    With a workdir, the search logs to its metrics.jsonl, checkpoints its state and history into
    `workdir/checkpoints/<method>` (at least 4 times, at most `checkpoint_every` steps apart) and
    resumes from there; an early stop is a checkpoint too, so a rerun does not search on.

    Returns a JSON-friendly dict: `arch` (int list), `arch_string`, `weights` (final softmax,
    [D][K]), `alphas`, `param_free_share`, timing (`search_seconds`, `step_seconds`), `history`
    (per logged step: the softmax weights, derived architecture and parameter-free share).
    """
    recipe.check(space)
    runtime = runtime or Runtime()
    mesh, log = runtime.mesh, runtime.log
    sharding.check_batch_size(recipe.batch_size, mesh)
    sharding.check_batch_size(recipe.val_batch_size or recipe.batch_size, mesh, "val batch size")
    model = space.supernet(mixed=(recipe.method == "darts"))
    weight_optimizer = make_weight_optimizer(recipe.weight_lr, recipe.weight_momentum, recipe.weight_decay,
                                             recipe.steps, recipe.grad_clip)
    alpha_optimizer = make_alpha_optimizer(recipe.alpha_lr, recipe.alpha_weight_decay)
    init_key, step_key, data_key = jax.random.split(key, 3)
    state = create_search_state(space, model, weight_optimizer, alpha_optimizer, init_key, dataset.input_shape)
    stage = recipe.method
    history = {"step": [], "weights": [], "arch": [], "param_free_share": []}
    start, state = training.resume(runtime.checkpoints(stage), state, snapshot=lambda s: lambda t: _snapshot(space, s, _empty_history(space, recipe, t)),
                                   restore=lambda _, saved: _restored(space, saved, history))
    state = sharding.replicate(mesh, state)
    step = _make_step(space, model, recipe, weight_optimizer, alpha_optimizer, mesh, dataset, step_key, data_key,
                      start)

    def should_stop(t, share) -> bool:
        """The early-stop remedy's rule at a logged step t (share: the derived architecture's)."""
        return (recipe.remedy == "early_stop" and share > recipe.max_param_free_share
                and t >= max(recipe.min_stop_fraction, recipe.warmup_fraction) * recipe.steps)

    def on_log(t, state, summary):
        weights = np.asarray(arch_weights(space, state.alphas))
        arch = derive(space, weights)
        share = parameter_free_share(space, arch)
        for name, value in (("step", t), ("weights", weights), ("arch", arch), ("param_free_share", share)):
            history[name].append(value)
        if log:
            log.write(f"{stage}/arch", t, param_free_share=share, arch=arch, arch_string=space.to_string(arch),
                      weights=weights)
        return should_stop(t, share)

    stopped_before = bool(history["step"]) and history["step"][-1] == start and \
        should_stop(start, history["param_free_share"][-1])
    if log:
        log.rewind(f"{stage}/arch", start)
    tic = time.perf_counter()
    first = {}

    def time_first_step(t, state):
        if t == start + 1:
            jax.block_until_ready(state)
            first["seconds"] = time.perf_counter() - tic  # mostly compilation

    state, steps_run = training.run_loop(
        step, state, steps=start if stopped_before else recipe.steps, runtime=runtime, start=start, desc=recipe.method,
        stage=stage, log_every=recipe.log_every, on_log=on_log, after_step=time_first_step,
        checkpoint_every=checkpoint_every, snapshot=lambda s: _snapshot(space, s, history))
    jax.block_until_ready(state)
    seconds = time.perf_counter() - tic
    stopped_at = steps_run if steps_run < recipe.steps else None
    weights = np.asarray(arch_weights(space, state.alphas))
    arch = derive(space, weights)
    # Early stop keeps the last architecture within the limit (none: the final one).
    kept = [i for i, share in enumerate(history["param_free_share"]) if share <= recipe.max_param_free_share] \
        if stopped_at else []
    kept_step = history["step"][kept[-1]] if kept else None
    if kept:
        arch, weights = history["arch"][kept[-1]], history["weights"][kept[-1]]
    first_step_seconds = first.get("seconds", seconds)
    return {
        "method": recipe.method, "order": recipe.order if recipe.method == "darts" else None,
        "remedy": recipe.remedy, "warmup_steps": int(np.ceil(recipe.warmup_fraction * recipe.steps)),
        "space": space.describe(), "dataset": getattr(dataset, "name", None),
        "arch": np.asarray(arch).tolist(), "arch_string": space.to_string(arch),
        "weights": np.asarray(weights).tolist(), "alphas": np.asarray(state.alphas).tolist(),
        "param_free_share": parameter_free_share(space, arch),
        "params": _maybe(space.params, arch), "flops": _maybe(space.flops, arch),
        "steps": recipe.steps, "steps_run": steps_run, "stopped_early_at": stopped_at,
        "kept_step": kept_step,
        "search_seconds": seconds, "first_step_seconds": first_step_seconds,
        # Steady-state time per step (weights + alphas), compilation excluded.
        "step_seconds": (seconds - first_step_seconds) / max(steps_run - start - 1, 1),
        "devices": int(mesh.devices.size),
        "history": {"step": history["step"], "param_free_share": history["param_free_share"],
                    "arch": [np.asarray(a).tolist() for a in history["arch"]],
                    "weights": [np.asarray(w).tolist() for w in history["weights"]]},
    }


def _logs_up_to(t: int, recipe: Recipe) -> int:
    """How many logged steps (every `log_every` and the last) the loop has passed at step t."""
    return t // recipe.log_every + (t == recipe.steps and t % recipe.log_every != 0)


def _empty_history(space, recipe: Recipe, t: int) -> dict:
    n, shape = _logs_up_to(t, recipe), space.option_mask().shape
    return {"step": [0] * n, "weights": np.zeros((n, *shape), np.float32),
            "arch": np.zeros((n, shape[0]), np.int32), "param_free_share": [-1.0] * n}


def _snapshot(space, state: SearchState, history: dict) -> dict:
    """What a checkpoint holds: the search state and the history so far (a None share as -1: the
    checkpoint refuses NaN); before the first log the state alone, as orbax refuses zero-size arrays."""
    n, shape = len(history["step"]), space.option_mask().shape
    if n == 0:
        return {"state": state}
    return {"state": state, "history": {
        "step": np.asarray(history["step"], np.int32).reshape(n),
        "weights": np.asarray(history["weights"], np.float32).reshape(n, *shape),
        "arch": np.asarray(history["arch"], np.int32).reshape(n, shape[0]),
        "param_free_share": np.asarray([-1.0 if v is None else v for v in history["param_free_share"]],
                                       np.float32).reshape(n)}}


def _restored(space, saved: dict, history: dict) -> SearchState:
    """Puts a checkpoint's history back into `history` and returns its search state. The shares are
    recomputed from the architectures: the checkpoint's float32 copies would not equal the floats
    an uninterrupted run reports."""
    if "history" not in saved:  # saved before the first log: nothing logged yet
        return saved["state"]
    h = jax.device_get(saved["history"])
    history["step"][:] = [int(v) for v in h["step"]]
    history["weights"][:] = list(np.asarray(h["weights"]))
    history["arch"][:] = list(np.asarray(h["arch"]))
    history["param_free_share"][:] = [parameter_free_share(space, arch) for arch in history["arch"]]
    return saved["state"]


def _maybe(fn, arch):
    try:
        return int(fn(arch))
    except NotImplementedError:
        return None
