"""Training-free proxies: score a whole population of architectures at initialisation, in one
jitted call, through the supernet (each architecture a single path of the same weights).

    params = training.init_params(space, model, key, input_shape)
    scores = proxies.score(space, model, params, archs, x, y, "synflow")   # float[P], higher = better

The proxies (every one is "higher is better"):

* `synflow` (Tanaka et al. 2020, as Abdelfattah et al. 2021's zero-cost-proxies code computes it): the network
  linearised (every parameter replaced by its absolute value, biases by 0, and batch norm by its
  affine part, statistics mean 0 and variance 1, as the benchmark builds the network without BN for
  synflow), R = sum of its output for one all-ones input, score = sum over the conv/dense kernels
  of theta * dR/dtheta. The paper recommends double precision because R grows like the product of
  the layers' gains (float32 overflowed at NAS-Bench-201's full size); we stay in float32 and
  return the *log* of the score, with every top-level block's output rescaled to a maximum of 1 and
  the log of the factors added back (exact, since the linearised blocks are linear maps; see
  `_synflow`). An architecture through which no flow passes (no path of non-`none` edges through
  the cell) gets the floor log(float32 tiny) ~ -87.3, the lowest finite score.
* `naswot` (Mellor et al. 2021, "NAS without training", the Hamming-kernel version): the binary
  ReLU pattern c of each example on a batch, read at the outputs of the supernet's top-level blocks
  (stem, cells, reductions: each feeds a ReLU, the last cell through the head's BN; the logits are
  left out), the kernel K[i, j] = number of units where examples i and j agree, and
  score = log det(K / units + 1e-3 I).
  The ridge keeps the score finite when two examples share a pattern (a cell of `none`s makes every
  pattern after it identical); dividing by the number of units is the same for every architecture
  of a space, so it does not change the ranking.
* `snip` (Lee et al. 2019): |dL/dtheta * theta| summed over the conv/dense kernels, L the mean
  cross-entropy of the batch (BN in training mode, as the supernet trains). Kernels that the
  architecture does not use get exactly zero gradient (the one-hot choice multiplies them by 0), so
  the sum covers the parameters the architecture uses.

All three are invariant to the order of the examples in the batch (BN statistics, the loss and the
determinant are). NAS-Bench-201's sparse supernet is swapped for its folded path (same parameters,
same outputs; `space.supernet(sparse=False)`), which is exact under `vmap` over architectures.
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from supernet.evaluation import _over_archs, calibrate, default_vmap_archs, predict
from supernet.training import apply_train, one_hot

PROXIES = ("synflow", "naswot", "snip")


def _leaf_name(path) -> str:
    return str(getattr(path[-1], "key", path[-1]))


def _is_kernel(path) -> bool:
    """Conv and dense kernels (`kernel`, the supernet's `w_3x3` / `w_1x1`): the connection weights
    that synflow and snip score, as the zero-cost-proxies code does (biases and BN affines left out)."""
    name = _leaf_name(path)
    return name == "kernel" or name.startswith("w_")


def _kernel_sum(fn, params, grads) -> jax.Array:
    terms = jax.tree_util.tree_map_with_path(lambda p, w, g: jnp.sum(fn(w, g)) if _is_kernel(p) else 0.0,
                                             params, grads)
    return sum(jax.tree_util.tree_leaves(terms))


def _synflow(model, params, weights, x, y):
    ones = jnp.ones((1, *x.shape[1:]), jnp.float32)
    tiny = jnp.finfo(jnp.float32).tiny
    # BN statistics mean 0, variance 1 (each BN is its affine), biases 0 and every other parameter
    # |theta|: on the all-ones input every activation is >= 0, ReLUs are identities and each
    # top-level block is a linear map of its input.
    shapes = jax.eval_shape(lambda: calibrate(model, params, weights, ones))
    identity = jax.tree_util.tree_map_with_path(
        lambda p, s: jnp.full(s.shape, 0.0 if _leaf_name(p) == "mean" else 1.0, s.dtype), shapes)
    positive = jax.tree_util.tree_map_with_path(
        lambda p, v: jnp.zeros_like(v) if _leaf_name(p).startswith("bias") else jnp.abs(v), params)

    def log_flow(p):
        """log R, as log(R / prod c) + sum log c: each top-level block's output is divided by its
        largest value c (a constant to autodiff), which by linearity divides R by c. Why: R grows
        like the product of the layers' gains and overflowed float32 at NAS-Bench-201's full size
        (C=16, 5 cells per stage) for cells of convolutions."""
        logs = []

        def rescale(next_fun, args, kwargs, context):
            out = next_fun(*args, **kwargs)
            if context.method_name == "__call__" and len(context.module.path) == 1 and getattr(out, "ndim", 0) >= 3:
                c = jax.lax.stop_gradient(jnp.maximum(out.max(), tiny))
                logs.append(jnp.log(c))
                out = out / c
            return out

        with nn.intercept_methods(rescale):
            total = jnp.sum(predict(model, p, identity, weights, ones))
        return jnp.log(jnp.maximum(total, tiny)), (total, sum(logs))

    # d(log R)/dtheta = (dR/dtheta) / R is what the rescaled network's gradient gives (the
    # constants cancel), and log(sum theta dR/dtheta) = log R + log(sum theta d(log R)/dtheta).
    (log_scaled, (total, log_c)), grads = jax.value_and_grad(log_flow, has_aux=True)(positive)
    per_flow = _kernel_sum(lambda w, g: w * g, positive, grads)
    floor = jnp.log(tiny)
    score = log_scaled + log_c + jnp.log(jnp.maximum(per_flow, tiny))
    return jnp.where((total > 0) & (per_flow > 0), jnp.maximum(score, floor), floor)


def _feature_maps(model, params, weights, x) -> list:
    """The outputs of rank >= 3 (feature maps, not logits) of the supernet's direct children (its
    cells), or, where its only child is a module of yours (`supernet.nas`), of that module's
    children; every method's outputs count."""
    for depth in (1, 2):
        _, state = apply_train(model, {"params": params}, x, weights, mutable=["intermediates"],
                               capture_intermediates=lambda module, method: len(module.path) == depth)
        outputs = [o for o in jax.tree.leaves(state["intermediates"]) if getattr(o, "ndim", 0) >= 3]
        if outputs:   # known at trace time: shapes are static
            return outputs
    raise ValueError(f"naswot found no feature maps (outputs of rank >= 3) in {type(model).__name__}'s layers.")


def _naswot(model, params, weights, x, y):
    outputs = _feature_maps(model, params, weights, x)
    codes = jnp.concatenate([(o > 0).reshape(len(x), -1).astype(jnp.float32) for o in outputs], axis=1)
    agree = codes @ codes.T + (1 - codes) @ (1 - codes).T  # units - Hamming distance
    kernel = agree / codes.shape[1] + 1e-3 * jnp.eye(len(x))
    return jnp.linalg.slogdet(kernel)[1]


def _snip(model, params, weights, x, y):
    def loss(p):
        logits = apply_train(model, {"params": p}, x, weights)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
    grads = jax.grad(loss)(params)
    return _kernel_sum(lambda w, g: jnp.abs(w * g), params, grads)


_FUNCTIONS = {"synflow": _synflow, "naswot": _naswot, "snip": _snip}


def _check(proxy: str) -> None:
    if proxy not in _FUNCTIONS:
        raise ValueError(f"unknown proxy {proxy!r}; valid: {', '.join(PROXIES)}.")


def _single_path(model):
    """The folded NAS-Bench-201 supernet for a sparse one (identical variables and outputs): under
    vmap over architectures the sparse cell's `lax.switch` would compute every branch anyway."""
    return model.clone(sparse=False) if getattr(model, "sparse", False) else model


@functools.lru_cache(maxsize=32)
def _population_fn(space, model, proxy: str, vmap_archs):
    """Jitted `(params, archs, x, y) -> float32[P]`, cached: one compilation per population shape."""
    fn = _FUNCTIONS[proxy]

    def scores(params, archs, x, y):
        return _over_archs(lambda a: fn(model, params, one_hot(space, a), x, y).astype(jnp.float32),
                           archs, vmap_archs)

    return jax.jit(scores)


def score(space, model, params, archs, x, y, proxy: str, *, vmap_archs="auto") -> np.ndarray:
    """Proxy `proxy` (one of `PROXIES`) of every architecture in `archs` (int32[P, D]) at the
    supernet weights `params`, on the batch (x, y); float32[P], higher is better. synflow uses only
    the shape of x. One jitted call for the population: `vmap_archs` as in
    `evaluation.evaluate_population` ("auto": all vmapped on GPU/TPU, a `lax.map` loop on the CPU).
    """
    _check(proxy)
    if vmap_archs == "auto":
        vmap_archs = default_vmap_archs()
    archs = space.validate(archs).reshape(-1, space.num_decisions)
    fn = _population_fn(space, _single_path(model), proxy, vmap_archs)
    # numpy in, not jnp.asarray: staging a new shape onto the device would be a compilation of its own.
    return np.asarray(fn(params, archs, np.asarray(x, np.float32), np.asarray(y, np.int32)))


def as_objective(space, model, params, x, y, proxy: str):
    """`objective(archs int32[n, D]) -> float32[n]`: the proxy as a strategy's fitness, the same
    shape as `one_shot.supernet_objective` and the tabular objectives."""
    _check(proxy)
    return lambda archs: score(space, model, params, archs, x, y, proxy).astype(np.float32)


def prefilter(space, scores, archs, keep: int) -> np.ndarray:
    """The `keep` architectures of `archs` with the highest proxy `scores`, best first (ties keep
    their order): a cheap filter before the supernet evaluates the survivors."""
    archs = space.validate(archs).reshape(-1, space.num_decisions)
    scores = np.asarray(scores)
    if scores.shape != (len(archs),):
        raise ValueError(f"scores has shape {scores.shape} for {len(archs)} architectures.")
    if not 1 <= keep <= len(archs):
        raise ValueError(f"keep must lie in 1..{len(archs)}, got {keep}.")
    return archs[np.argsort(-scores, kind="stable")[:keep]]
