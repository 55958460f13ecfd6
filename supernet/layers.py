"""Small building blocks shared by the supernets and the standalone networks.

Every layer works for any number of spatial dimensions (1-D signals such as MNIST-1D, 2-D images):
inputs are channels-last, `[batch, *spatial, channels]`, and kernels are `[*window, in, out]`.
"""

from __future__ import annotations

import itertools

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
    speed (measured, README Design notes). `supernet.sparse_cell` uses this in its backward pass.
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


def depthwise_conv(x: jax.Array, kernel: jax.Array, stride: int = 1) -> jax.Array:
    """Depthwise convolution, kernel `[*window, 1, C]`, symmetric `k // 2` padding: the same
    result as `conv(x, kernel, stride, groups=C)`, computed as a sum of shifted, scaled copies of
    the input. Why: XLA:CPU runs grouped convolutions very slowly (measured on a 32x16x16x96
    input with a 7x7 kernel: ~50x slower forward, ~4x slower forward + backward than this form)."""
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
    return total / _window_counts(x.shape[1:-1], window, stride, padding)


def avg_pool3(x: jax.Array) -> jax.Array:
    """3-wide average pool, stride 1, padding 1, padded cells not counted (NAS-Bench-201's pool)."""
    return _average_pool(x, 3, 1, [(1, 1)] * (x.ndim - 2))


def sum_pool3(x: jax.Array) -> jax.Array:
    """Sum over every 3-wide window, stride 1, zero padding 1, as shifted slices: a symmetric
    linear map (its own transpose). `avg_pool3(x) == sum_pool3(x) / pool3_counts(x)`.
    Inside a `lax.switch` branch this ran ~5x faster than `reduce_window` on 2 CPU cores; in a
    plain network XLA fuses the slices with their neighbours and the step got 4x slower, so the
    networks use `avg_pool3` and only `supernet.sparse_cell` uses this."""
    return sum(shifted for _, shifted in _shifted(x, (3,) * (x.ndim - 2)))


def pool3_counts(x: jax.Array) -> np.ndarray:
    """How many real cells each window of `avg_pool3` averages, shaped to broadcast against x."""
    return _window_counts(x.shape[1:-1], 3, 1, [(1, 1)] * (x.ndim - 2))


def downsample_pool(x: jax.Array) -> jax.Array:
    """2-wide average pool with stride 2; odd sizes round up, like a stride-2 3x3 conv with padding 1."""
    return _average_pool(x, 2, 2, [(0, d % 2) for d in x.shape[1:-1]])


def global_pool(x: jax.Array) -> jax.Array:
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
    return (x - mean) * jax.lax.rsqrt(var + epsilon)


class StoredStats(nn.Module):
    """Per-architecture BN statistics under `batch_stats/{mean,var}`: `put` writes them when
    `batch_stats` is mutable, `get` reads them back for evaluation. `CalibratedBatchNorm` builds
    on it; the sparse cell uses it directly for statistics computed inside `lax.switch` branches,
    where Flax variables cannot be written."""

    def put(self, mean: jax.Array, var: jax.Array) -> None:
        if self.is_mutable_collection("batch_stats"):
            self.put_variable("batch_stats", "mean", mean)
            self.put_variable("batch_stats", "var", var)

    def get(self) -> tuple[jax.Array, jax.Array]:
        mean, var = self.get_variable("batch_stats", "mean"), self.get_variable("batch_stats", "var")
        if mean is None:
            raise ValueError("no batch statistics for this architecture: calibrate it first "
                             "(supernet.calibrate) or evaluate with train=True.")
        return mean, var


class CalibratedBatchNorm(StoredStats):
    """Batch norm for weight-sharing supernets; same variable names as `nn.BatchNorm`.

    Training normalises with the batch's own statistics and keeps no running average: in a
    supernet the statistics differ per architecture, so they are recalibrated per architecture
    before evaluation. With `use_running_average=False` and `batch_stats` mutable, the batch's
    statistics are *written* (not averaged), which is what calibration uses.
    """
    use_running_average: bool = False
    use_scale: bool = True
    epsilon: float = 1e-5

    @nn.compact
    def __call__(self, x, scale=None, bias=None):
        features = x.shape[-1]
        if self.use_running_average:
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



def host_init(abstract_variables, key: jax.Array) -> dict:
    """Concrete variables for an abstract tree (`jax.eval_shape(module.init, ...)`), drawn with numpy.

    Conv and dense kernels get He-normal values (std sqrt(2 / fan_in)), BN scales and variances
    ones, biases and means zeros. Why not `module.init`: on the CPU, compiling Flax's truncated-normal
    initialisers took ~20 s even for a six-edge supernet, eagerly or under jit; this takes
    milliseconds and is just as deterministic (the numpy generator is seeded from `key`).
    """
    rng = np.random.default_rng(np.asarray(jax.random.key_data(key)).ravel().tolist())

    def draw(path, leaf):
        name = str(getattr(path[-1], "key", path[-1]))
        if name == "kernel" or name.startswith("w_"):
            fan_in = int(np.prod(leaf.shape[:-1]))
            return jnp.asarray(rng.standard_normal(leaf.shape, np.float32) * np.sqrt(2.0 / fan_in), leaf.dtype)
        fill = 1.0 if name in ("scale", "var") or name.startswith("scale_") else 0.0
        return jnp.full(leaf.shape, fill, leaf.dtype)

    return jax.tree_util.tree_map_with_path(draw, abstract_variables)
