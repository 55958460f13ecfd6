"""Small building blocks shared by the supernets and the standalone networks.

Every layer works for any number of spatial dimensions (1-D signals such as MNIST-1D, 2-D images):
inputs are channels-last, `[batch, *spatial, channels]`, and kernels are `[*window, in, out]`.
"""

from __future__ import annotations

import itertools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import flax.linen as nn

_SPATIAL = "HWD"


def conv(x: jax.Array, kernel: jax.Array, stride: int = 1, groups: int = 1) -> jax.Array:
    """Convolution with symmetric `k // 2` padding (the PyTorch convention NAS-Bench-201 uses)."""
    nd = x.ndim - 2
    padding = [(k // 2, k // 2) for k in kernel.shape[:nd]]
    return jax.lax.conv_general_dilated(x, kernel, (stride,) * nd, padding, feature_group_count=groups,
                                        dimension_numbers=_channels_last(nd))


def _channels_last(nd: int) -> tuple[str, str, str]:
    """Dimension numbers for channels-last inputs/outputs and `[*window, in, out]` kernels."""
    letters = _SPATIAL[:nd]
    return f"N{letters}C", f"{letters}IO", f"N{letters}C"


def conv_grads(x: jax.Array, kernel: jax.Array, grad: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(input gradient, kernel gradient) of `conv(x, kernel)` (stride 1, odd window) given the
    output gradient, both written as forward-layout convolutions.

    Why: inside `lax.switch` / `lax.cond` branches XLA:CPU runs the transposed dimension layouts
    of JAX's own conv gradient 15-30x slower than outside, but forward-layout convolutions at full
    speed (measured: docs/design.md). `supernet.spaces.sparse_cell` uses this in its backward pass.
    """
    nd = x.ndim - 2
    # Input gradient: the same-padded conv of the output gradient with the flipped kernel, in/out swapped.
    grad_x = conv(grad, jnp.flip(kernel, tuple(range(nd))).swapaxes(-1, -2))
    # Kernel gradient: a conv that treats input channels as the batch and the batch as channels,
    # with the output gradient as a spatially full-size kernel: each output position is one tap.
    lhs = x.swapaxes(0, -1)              # [in, *spatial, B]
    rhs = jnp.moveaxis(grad, 0, -2)      # [*spatial, B, out]
    pads = [(k // 2, k // 2) for k in kernel.shape[:nd]]
    taps = jax.lax.conv_general_dilated(lhs, rhs, (1,) * nd, pads, dimension_numbers=_channels_last(nd))
    return grad_x, jnp.moveaxis(taps, 0, -2)  # [in, *window, out] -> [*window, in, out]


@jax.custom_vjp
def conv_in_branch(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """`conv(x, kernel)` (stride 1, odd window) whose gradients are forward-layout convolutions
    (`conv_grads`): for convolutions inside `lax.switch` / `lax.cond` branches, where XLA:CPU runs
    JAX's own conv gradient 15-30x slower."""
    return conv(x, kernel)


def _conv_in_branch_forward(x, kernel):
    return conv(x, kernel), (x, kernel)


def _conv_in_branch_backward(residuals, grad):
    return conv_grads(*residuals, grad)


conv_in_branch.defvjp(_conv_in_branch_forward, _conv_in_branch_backward)


def _shifted(x: jax.Array, window: tuple, stride: int = 1):
    """Yields (tap, slice): for each kernel tap, the input cells that tap sees at every output
    position, for a `k // 2`-padded window (the building block of `depthwise_conv` and the 3x3
    pool, which XLA:CPU runs several times faster as sums of slices than as grouped convs or
    `reduce_window`)."""
    nd = x.ndim - 2
    padded = jnp.pad(x, [(0, 0)] + [(k // 2, k // 2) for k in window] + [(0, 0)])
    out_size = [(n + 2 * (k // 2) - k) // stride + 1 for n, k in zip(x.shape[1:-1], window)]
    for tap in itertools.product(*(range(k) for k in window)):
        limit = (x.shape[0], *(t + stride * (o - 1) + 1 for t, o in zip(tap, out_size)), x.shape[-1])
        yield tap, jax.lax.slice(padded, (0, *tap, 0), limit, (1, *(stride,) * nd, 1))


def depthwise_conv(x: jax.Array, kernel: jax.Array, stride: int = 1, *, grouped: bool = False) -> jax.Array:
    """Depthwise convolution, kernel `[*window, 1, C]`, symmetric `k // 2` padding.

    `grouped=False`: the same result as `conv(x, kernel, stride, groups=C)`, computed as a sum of
    shifted, scaled copies of the input. Why: XLA:CPU runs grouped convolutions very slowly
    (measured on a 32x16x16x96 input with a 7x7 kernel: ~50x slower forward, ~4x slower forward +
    backward than this form). `grouped=True`: the grouped convolution, which GPUs and TPUs run
    natively. The spaces pass their backend policy's choice (`backend.Policy.depthwise`), taken
    once when the space is built."""
    if grouped:
        return conv(x, kernel, stride, groups=x.shape[-1])
    window = kernel.shape[:x.ndim - 2]
    return sum(shifted * kernel[tap + (0,)] for tap, shifted in _shifted(x, window, stride))


def _window_counts(spatial: tuple, window: int, stride: int, padding) -> np.ndarray:
    """How many real (unpadded) cells each pooling window covers. Computed on the host: letting XLA
    constant-fold a pool over ones took seconds of compile time per pool."""
    counts = np.ones((), np.float32)
    for size, (lo, hi) in zip(spatial, padding):
        ones = np.pad(np.ones(size, np.float32), (lo, hi))
        per_axis = np.array([ones[i:i + window].sum() for i in range(0, len(ones) - window + 1, stride)])
        counts = np.multiply.outer(counts, per_axis)
    return counts[..., None]


def _average_pool(x: jax.Array, window: int, stride: int, padding) -> jax.Array:
    nd = x.ndim - 2
    total = jax.lax.reduce_window(x, 0.0, jax.lax.add, (1,) + (window,) * nd + (1,),
                                  (1,) + (stride,) * nd + (1,), [(0, 0)] + list(padding) + [(0, 0)])
    return total / _window_counts(x.shape[1:-1], window, stride, padding).astype(x.dtype)


def avg_pool3(x: jax.Array) -> jax.Array:
    """3-wide average pool, stride 1, padding 1, padded cells not counted (NAS-Bench-201's pool)."""
    return _average_pool(x, 3, 1, [(1, 1)] * (x.ndim - 2))


def sum_pool3(x: jax.Array) -> jax.Array:
    """Sum over every 3-wide window, stride 1, zero padding 1, as shifted slices: a symmetric
    linear map (its own transpose). `avg_pool3(x) == sum_pool3(x) / pool3_counts(x)`.
    Inside a `lax.switch` branch this ran ~5x faster than `reduce_window` on 2 CPU cores; in a
    plain network XLA fuses the slices with their neighbours and the step got 4x slower, so the
    networks use `avg_pool3` and only `supernet.spaces.sparse_cell` uses this."""
    return sum(shifted for _, shifted in _shifted(x, (3,) * (x.ndim - 2)))


def pool3_counts(x: jax.Array) -> np.ndarray:
    """How many real cells each window of `avg_pool3` averages, shaped to broadcast against x."""
    return _window_counts(x.shape[1:-1], 3, 1, [(1, 1)] * (x.ndim - 2)).astype(x.dtype)  # keeps bfloat16 bfloat16


def downsample_pool(x: jax.Array) -> jax.Array:
    """2-wide average pool with stride 2; odd sizes round up, like a stride-2 3x3 conv with padding 1."""
    return _average_pool(x, 2, 2, [(0, d % 2) for d in x.shape[1:-1]])


def global_pool(x: jax.Array) -> jax.Array:
    """The mean over every spatial axis: float[N, ..., C] -> float[N, C]."""
    return x.mean(axis=tuple(range(1, x.ndim - 1)))


class ConvKernel(nn.Module):
    """Just a conv kernel parameter named like `nn.Conv`'s, so weights copy between networks."""
    window: int
    features: int
    stride: int = 1

    @nn.compact
    def __call__(self, x):
        nd = x.ndim - 2
        kernel = self.param("kernel", nn.initializers.kaiming_normal(),
                            (self.window,) * nd + (x.shape[-1], self.features))
        return conv(x, kernel, self.stride)


def batch_moments(x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Per-channel mean and (biased) variance over every axis but the last."""
    axes = tuple(range(x.ndim - 1))
    mean = x.mean(axes)
    return mean, jnp.maximum((x * x).mean(axes) - mean * mean, 0.0)


def normalize(x: jax.Array, mean: jax.Array, var: jax.Array, epsilon: float = 1e-5) -> jax.Array:
    """x standardised per channel by the given moments (no scale or bias)."""
    return (x - mean) * jax.lax.rsqrt(var + epsilon)


# The variable collection of the supernet's per-architecture BN statistics. Not `batch_stats`, so
# that a user's model holding a supernet keeps its own `nn.BatchNorm` running averages apart: a
# calibration makes only this collection mutable (`evaluation.calibrate_variables`).
STATS_COLLECTION = "supernet_stats"


class StoredStats(nn.Module):
    """Per-architecture BN statistics under `supernet_stats/{mean,var}` (`STATS_COLLECTION`):
    `put` writes them when that collection is mutable, `get` reads them back for evaluation.
    `CalibratedBatchNorm` builds on it; the sparse cell uses it directly for statistics computed
    inside `lax.switch` branches, where Flax variables cannot be written."""

    def put(self, mean: jax.Array, var: jax.Array) -> None:
        """Stores per-channel mean and var float[C] when the statistics collection is mutable."""
        if self.is_mutable_collection(STATS_COLLECTION):
            self.put_variable(STATS_COLLECTION, "mean", mean)
            self.put_variable(STATS_COLLECTION, "var", var)

    def get(self) -> tuple[jax.Array, jax.Array]:
        """The stored (mean, var); a clear error when this architecture was never calibrated."""
        mean, var = self.get_variable(STATS_COLLECTION, "mean"), self.get_variable(STATS_COLLECTION, "var")
        if mean is None:
            raise ValueError(f"no supernet statistics ('{STATS_COLLECTION}') for this architecture: calibrate "
                             "it first with supernet.evaluation.calibrate_variables(model, variables, arch, x), "
                             "or run with train=True.")
        return mean, var


class CalibratedBatchNorm(StoredStats):
    """Batch norm for weight-sharing supernets; same variable names as `nn.BatchNorm`.

    Training normalises with the batch's own statistics and keeps no running average: in a
    supernet the statistics differ per architecture, so they are recalibrated per architecture
    before evaluation. With `use_running_average=False` and `supernet_stats` mutable, the batch's
    statistics are *written* (not averaged), which is what calibration uses. While a model is
    initialised, evaluation mode has no statistics to read yet, so it uses (and stores) the batch's:
    `model.init(key, x, arch, train=False)` works.
    """
    use_running_average: bool = False
    use_scale: bool = True
    epsilon: float = 1e-5

    @nn.compact
    def __call__(self, x, scale=None, bias=None):
        features = x.shape[-1]
        if self.use_running_average and not self.is_initializing():
            mean, var = self.get()
        else:
            mean, var = batch_moments(x)
            self.put(mean, var)
        y = normalize(x, mean, var, self.epsilon)
        if self.use_scale:
            y = y * self.param("scale", nn.initializers.ones, (features,))
            y = y + self.param("bias", nn.initializers.zeros, (features,))
        if scale is not None:
            y = y * scale + bias
        return y


def as_weights(arch_or_weights, num_choices: Sequence[int], names: Sequence[str] | None = None) -> jax.Array:
    """A supernet's architecture argument as float[D, K] weights, K = max(num_choices).

    Takes an architecture int[D] (one choice per decision, turned into one-hot rows) or float[D, K]
    weights (one-hot for a path, soft for DARTS), passed through. A wrong shape raises a ValueError
    at trace time. A concrete architecture (not a jax tracer) with a choice outside
    0..num_choices[d] - 1 raises a ValueError naming decision d. A traced one cannot raise, and a
    one-hot row of an out-of-range index would silently be all zeros (or land in a padded slot),
    so its row becomes NaN instead: under jit an out-of-range choice yields NaN outputs (the
    supernets pass their output through `nan_if_invalid`, so this holds however a row is used).
    """
    d, k = len(num_choices), max(num_choices)
    w = arch_or_weights if isinstance(arch_or_weights, jax.Array) else np.asarray(arch_or_weights)
    if not jnp.issubdtype(w.dtype, jnp.integer):
        if w.shape != (d, k):
            raise ValueError(f"supernet weights must be float[{d}, {k}] (decisions x largest number of options) "
                             f"or an architecture int32[{d}]; got {w.dtype} of shape {w.shape}.")
        return jnp.asarray(w)
    if w.shape != (d,):
        raise ValueError(f"a supernet architecture must be int32[{d}] (one choice per decision) or float[{d}, {k}] "
                         f"weights; got {w.dtype} of shape {w.shape}.")
    if not isinstance(w, jax.core.Tracer):
        a = np.asarray(w)
        for i in np.flatnonzero((a < 0) | (a >= np.asarray(num_choices))):
            label = f" ({names[i]!r})" if names else ""
            raise ValueError(f"decision {i}{label} has choice {a[i]}, valid range is 0..{num_choices[i] - 1}.")
    valid = (w >= 0) & (w < jnp.asarray(num_choices))
    return jnp.where(valid[:, None], jax.nn.one_hot(w, k, dtype=jnp.float32), jnp.nan)


def nan_if_invalid(y: jax.Array, weights: jax.Array) -> jax.Array:
    """`y`, or NaN everywhere when `weights` holds a NaN (what `as_weights` makes of an
    out-of-range choice under jit). Needed because some paths never multiply by a row: the
    sparse cell takes its argmax (a NaN row picks `none`, whose output ignores the weight), and
    a one-block stage's depth row gates nothing."""
    return jnp.where(jnp.isnan(weights).any(), jnp.nan, y)


def check_channels(x: jax.Array, expected: int, what: str) -> None:
    """Without its stem a supernet's first layers are shaped for `expected` input channels."""
    if x.shape[-1] != expected:
        raise ValueError(f"{what} built with stem=False takes inputs with {expected} channels (its first "
                         f"stage's), got shape {x.shape}; map your features to {expected} channels, or "
                         f"keep the stem (stem=True) to accept any number of channels.")
