"""A MobileNet-style, hardware-aware chain space (ProxylessNAS / Once-for-All style).

The network: a stem conv (3x3, BN, ReLU6), then stages of MBConv blocks, then a 1x1 head conv
(BN, ReLU6), global pool and a dense classifier. An MBConv block is a 1x1 expand conv + BN +
ReLU6, a depthwise k x k conv + BN + ReLU6 and a 1x1 project conv + BN, with an identity shortcut
when its stride is 1 and its input and output channels are equal.

Decisions, in this order:
  for each stage s = 1, 2, ...:  `stage{s}_depth`  (options "min_depth" .. "max_depth")
      for each block b = 1 .. max_depth:  `stage{s}_block{b}_kernel` ("3", "5", "7")
                                          `stage{s}_block{b}_expand`  ("3", "4", "6")
  `width` (a global width multiplier, e.g. "0.75", "1"), only when `width_mults` has > 1 option.
Choices of blocks beyond a stage's depth do not change the network (see `canonical`).

Weight sharing (one set of largest-shape weights, masks pick the sub-network):
  * kernel size: each block owns one depthwise kernel of the largest size; a smaller kernel is its
    centre (the outer ring is masked to zero). With soft weights the mask is the weighted sum of
    the per-size masks: Single-Path NAS's "superkernel".
  * expansion: the hidden channels are the first e*C of the largest expand conv, via a channel
    mask (soft: the weighted sum of per-ratio masks) applied *after* BN + ReLU6, so masked
    channels are exactly zero.
  * depth: the first block of a stage always runs; block i > 0 outputs x + p_i * F(x), p_i being
    the total weight of the depth options that include it (exactly 0 or 1 for one-hot weights).
  * width: a channel mask on the stem, every block output and the head conv, applied after the
    BN / activation so masked channels are zero and stay zero through the residual additions.
The depthwise conv is computed as a sum of shifted copies (`depthwise_conv`), because XLA:CPU's
grouped convolutions are very slow.
The price of one compilation serving every architecture: the supernet always costs as much as the
*largest* subnet (masks, not smaller shapes). `standalone(arch)` builds the genuinely smaller
network (only the active blocks, real kernel sizes and widths), and `extract_variables` crops the
shared weights into it.
"""

from __future__ import annotations

import math
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from supernet import backend
from supernet.layers import (STATS_COLLECTION, ConvKernel, as_weights, check_channels, depthwise_conv, global_pool,
                             nan_if_invalid)
from supernet.networks import batch_norm
from supernet.spaces.base import Space

DEFAULT_STAGES = ((16, 2, 1), (24, 3, 2), (32, 3, 2))


def _label(value) -> str:
    return f"{value:g}"


def scaled(channels: int, mult: float) -> int:
    """Channels under a width multiplier (rounded, at least 1)."""
    return max(1, int(channels * mult + 0.5))


def hidden_width(channels: int, ratio: float) -> int:
    """Hidden channels of an MBConv block with `channels` inputs and expansion `ratio`."""
    return max(1, int(channels * ratio + 0.5))


def prefix_masks(sizes: Sequence[int], full: int) -> np.ndarray:
    """float32[len(sizes), full]: row j keeps the first sizes[j] channels."""
    return (np.arange(full)[None, :] < np.asarray(sizes)[:, None]).astype(np.float32)


def centre_masks(kernel_sizes: Sequence[int], full: int, nd: int) -> np.ndarray:
    """float32[len(kernel_sizes), full, ..., full]: row j keeps the centre k_j^nd window."""
    masks = []
    for k in kernel_sizes:
        line = np.abs(np.arange(full) - full // 2) <= k // 2
        grid = line
        for _ in range(nd - 1):
            grid = np.multiply.outer(grid, line)
        masks.append(grid.astype(np.float32))
    return np.stack(masks)


def _mix(weights_row, masks: np.ndarray):
    """Weighted sum of the first len(masks) masks (padded weight slots are ignored)."""
    return jnp.tensordot(weights_row[:len(masks)], jnp.asarray(masks), axes=1)


class Depthwise(nn.Module):
    """A depthwise conv kernel `[*window, 1, C]`, optionally multiplied by a mask before use."""
    window: int
    stride: int = 1
    grouped: bool = False  # the backend policy's depthwise choice (`layers.depthwise_conv`)

    @nn.compact
    def __call__(self, x, mask=None):
        nd = x.ndim - 2
        kernel = self.param("kernel", nn.initializers.kaiming_normal(), (self.window,) * nd + (1, x.shape[-1]))
        if mask is not None:
            kernel = kernel * mask[..., None, None]
        return depthwise_conv(x, kernel, self.stride, grouped=self.grouped)


class MBConv(nn.Module):
    """An inverted-residual block. In the supernet, the masks select channels / kernel size and
    `gate` scales the residual branch (elastic depth); a standalone block passes none of them."""
    hidden: int
    features: int
    window: int
    stride: int
    residual: bool
    calibrated: bool = False
    grouped: bool = False

    @nn.compact
    def __call__(self, x, train: bool, kernel_mask=None, hidden_mask=None, out_mask=None, gate=1.0):
        h = ConvKernel(1, self.hidden, name="expand")(x)
        h = _masked(nn.relu6(batch_norm(self.calibrated, train, "expand_bn")(h)), hidden_mask)
        h = Depthwise(self.window, self.stride, self.grouped, name="depthwise")(h, kernel_mask)
        h = _masked(nn.relu6(batch_norm(self.calibrated, train, "depthwise_bn")(h)), hidden_mask)
        h = ConvKernel(1, self.features, name="project")(h)
        h = _masked(batch_norm(self.calibrated, train, "project_bn")(h), out_mask)
        return x + gate * h if self.residual else h


def _masked(x, mask):
    return x if mask is None else x * mask


class MobileNetNetwork(nn.Module):
    """The standalone network of one architecture.

    `blocks`: (name, hidden, features, window, stride, residual) per active block."""
    stem_channels: int
    stem_stride: int
    blocks: tuple
    head_channels: int
    num_classes: int = 10
    grouped: bool = False

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = ConvKernel(3, self.stem_channels, self.stem_stride, name="stem")(x)
        x = nn.relu6(batch_norm(False, train, "stem_bn")(x))
        for name, hidden, features, window, stride, residual in self.blocks:
            x = MBConv(hidden, features, window, stride, residual, grouped=self.grouped, name=name)(x, train)
        x = ConvKernel(1, self.head_channels, name="head")(x)
        x = nn.relu6(batch_norm(False, train, "head_bn")(x))
        return nn.Dense(self.num_classes, name="classifier")(global_pool(x))


class MobileNetSupernet(nn.Module):
    """The supernet: `model.apply(variables, x, arch, train=...)` with `arch` an architecture
    int32[D] or weights float[D, K] (one-hot rows: a single path; soft rows: the masked
    relaxation); see `layers.as_weights` for the checks (a concrete out-of-range choice raises;
    under jit an out-of-range choice yields NaN outputs).

    `space` supplies the configuration and the decision layout; all shapes are the largest ones.
    `head=False` leaves out the head (1x1 conv, BN, ReLU6, global pool, classifier) and returns
    the last block's feature map [batch, *spatial, full(last stage channels)] (channels beyond the
    chosen width are zero); `stem=False` also leaves out the stem, so inputs must already have
    `full(stem_channels)` channels (those beyond the chosen width are masked off, as the stem's
    would be)."""
    space: "MobileNetSpace"
    head: bool = True
    stem: bool = True

    @nn.compact
    def __call__(self, x, weights, train: bool = False):
        sp = self.space
        weights = as_weights(weights, sp.num_choices, sp.decision_names)
        nd = x.ndim - 2
        width_w = weights[sp.width_index] if sp.width_index is not None else jnp.ones((1,))

        def width_mask(channels):
            if len(sp.width_mults) == 1:
                return None  # nothing to choose: every channel is always on
            return _mix(width_w, prefix_masks([scaled(channels, m) for m in sp.width_mults], sp.full(channels)))

        if self.stem:
            x = ConvKernel(3, sp.full(sp.stem_channels), sp.stem_stride, name="stem")(x)
            x = nn.relu6(batch_norm(True, train, "stem_bn")(x))
        else:
            check_channels(x, sp.full(sp.stem_channels), "the mobilenet supernet")
        x = _masked(x, width_mask(sp.stem_channels))
        kernel_masks = centre_masks(sp.kernel_sizes, max(sp.kernel_sizes), nd)
        for block in sp.block_layout():
            cin = block["in_channels"]
            full_hidden = hidden_width(sp.full(cin), max(sp.expand_ratios))
            # hidden width depends on (width option, expand option): mix over both
            hidden_masks = np.stack([prefix_masks([hidden_width(scaled(cin, m), e) for e in sp.expand_ratios],
                                                  full_hidden) for m in sp.width_mults])  # [W, E, full]
            expand_w = weights[block["expand_index"]][:len(sp.expand_ratios)]
            hidden_mask = jnp.einsum("w,e,wec->c", width_w[:len(sp.width_mults)], expand_w, hidden_masks)
            depth_w = weights[block["depth_index"]]
            depths = sp.depth_options[block["stage"]]
            # probability that this block is in the network: weight of the depths that reach it
            gate = sum(depth_w[j] for j, d in enumerate(depths) if d > block["position"])
            x = MBConv(full_hidden, sp.full(block["channels"]), max(sp.kernel_sizes), block["stride"],
                       block["residual"], calibrated=True, grouped=sp.grouped, name=block["name"])(
                x, train, kernel_mask=_mix(weights[block["kernel_index"]], kernel_masks),
                hidden_mask=hidden_mask, out_mask=width_mask(block["channels"]),
                gate=gate if block["position"] > 0 else 1.0)
        if self.head:
            x = ConvKernel(1, sp.full(sp.head_channels), name="head")(x)
            x = _masked(nn.relu6(batch_norm(True, train, "head_bn")(x)), width_mask(sp.head_channels))
            x = nn.Dense(sp.num_classes, name="classifier")(global_pool(x))
        return nan_if_invalid(x, weights)


class MobileNetSpace(Space):
    """Elastic depth, kernel size, expansion ratio and (optionally) width of an MBConv network.

    Options: `stages` as (channels, max_depth, stride) per stage; `min_depth` (each stage's depth
    choices are min_depth..max_depth, capped at max_depth); `kernel_sizes` (odd); `expand_ratios`;
    `width_mults` (more than one adds the `width` decision); `stem_channels`, `stem_stride`,
    `head_channels`, `num_classes`, `input_shape` (channels-last, any number of spatial dims).
    """

    name = "mobilenet"

    def __init__(self, num_classes: int = 10, input_shape=(32, 32, 3), stages=DEFAULT_STAGES,
                 min_depth: int = 1, kernel_sizes=(3, 5, 7), expand_ratios=(3, 4, 6),
                 width_mults=(1.0,), stem_channels: int = 16, stem_stride: int = 1,
                 head_channels: int = 128):
        self.stages = tuple((int(c), int(d), int(s)) for c, d, s in stages)
        self.grouped = backend.current().depthwise == "grouped"  # the policy, taken once
        self.kernel_sizes = tuple(int(k) for k in kernel_sizes)
        self.expand_ratios = tuple(float(e) for e in expand_ratios)
        self.width_mults = tuple(float(w) for w in width_mults)
        self._check(num_classes, min_depth, stem_channels, stem_stride, head_channels)
        self.depth_options = tuple(tuple(range(min(int(min_depth), d), d + 1)) for _, d, _ in self.stages)
        decisions = []
        for s, (_, max_depth, _) in enumerate(self.stages, start=1):
            decisions.append((f"stage{s}_depth", [str(d) for d in self.depth_options[s - 1]]))
            for b in range(1, max_depth + 1):
                decisions.append((f"stage{s}_block{b}_kernel", [str(k) for k in self.kernel_sizes]))
                decisions.append((f"stage{s}_block{b}_expand", [_label(e) for e in self.expand_ratios]))
        if len(self.width_mults) > 1:
            decisions.append(("width", [_label(w) for w in self.width_mults]))
        super().__init__(decisions)
        self.width_index = self.decision_names.index("width") if len(self.width_mults) > 1 else None
        self.num_classes = int(num_classes)
        self.input_shape = tuple(int(d) for d in input_shape)
        self.min_depth = int(min_depth)
        self.stem_channels = int(stem_channels)
        self.stem_stride = int(stem_stride)
        self.head_channels = int(head_channels)

    def _check(self, num_classes, min_depth, stem_channels, stem_stride, head_channels):
        problems = []
        if not self.stages:
            problems.append("`stages` is empty; give at least one (channels, max_depth, stride)")
        if any(c < 1 or d < 1 or s < 1 for c, d, s in self.stages):
            problems.append(f"every stage needs channels >= 1, max_depth >= 1, stride >= 1, got {self.stages}")
        if not self.kernel_sizes or any(k < 1 or k % 2 == 0 for k in self.kernel_sizes):
            problems.append(f"`kernel_sizes` must be odd and positive (smaller kernels are centre crops), "
                            f"got {self.kernel_sizes}")
        if not self.expand_ratios or any(e <= 0 for e in self.expand_ratios):
            problems.append(f"`expand_ratios` must be positive, got {self.expand_ratios}")
        if not self.width_mults or any(w <= 0 for w in self.width_mults):
            problems.append(f"`width_mults` must be positive, got {self.width_mults}")
        for opt, values in (("kernel_sizes", self.kernel_sizes), ("expand_ratios", self.expand_ratios),
                            ("width_mults", self.width_mults)):
            if len(set(values)) != len(values):
                problems.append(f"`{opt}` has repeated values {values}")
        if num_classes < 2 or min_depth < 1 or stem_channels < 1 or stem_stride < 1 or head_channels < 1:
            problems.append("need num_classes >= 2, min_depth >= 1, stem_channels >= 1, stem_stride >= 1, "
                            "head_channels >= 1")
        if problems:
            raise ValueError(f"{self.name}: " + "; ".join(problems) + ".")

    def describe(self) -> dict:
        """The space's description, with its stage plan and options."""
        config = dict(stages=self.stages, min_depth=self.min_depth, kernel_sizes=self.kernel_sizes,
                      expand_ratios=self.expand_ratios, width_mults=self.width_mults,
                      stem_channels=self.stem_channels, stem_stride=self.stem_stride,
                      head_channels=self.head_channels)
        return {**super().describe(), **config}

    # -- layout ----------------------------------------------------------------------------------
    def full(self, channels: int) -> int:
        """Channels of a layer in the supernet: its base width under the largest multiplier."""
        return scaled(channels, max(self.width_mults))

    def block_layout(self) -> list[dict]:
        """Static description of every block slot: channels, stride, shortcut and decision indices."""
        blocks, cin = [], self.stem_channels
        for s, (channels, max_depth, stride) in enumerate(self.stages):
            depth_index = self.decision_names.index(f"stage{s + 1}_depth")
            for i in range(max_depth):
                name = f"stage{s + 1}_block{i + 1}"
                block_stride = stride if i == 0 else 1
                blocks.append(dict(name=name, stage=s, position=i, in_channels=cin, channels=channels,
                                   stride=block_stride, residual=block_stride == 1 and cin == channels,
                                   depth_index=depth_index,
                                   kernel_index=self.decision_names.index(f"{name}_kernel"),
                                   expand_index=self.decision_names.index(f"{name}_expand")))
                cin = channels
        return blocks

    def _width(self, arch) -> float:
        return self.width_mults[arch[self.width_index]] if self.width_index is not None else self.width_mults[0]

    def _plan(self, arch):
        """The standalone network's static structure for one architecture: (stem channels,
        blocks as (name, in, hidden, out, window, stride, residual), head channels)."""
        a = self.validate(arch)
        if a.ndim != 1:
            raise ValueError(f"{self.name}: expected one architecture, got shape {a.shape}.")
        mult = self._width(a)
        blocks = []
        for b in self.block_layout():
            if b["position"] >= self.depth_options[b["stage"]][a[b["depth_index"]]]:
                continue
            cin, cout = scaled(b["in_channels"], mult), scaled(b["channels"], mult)
            hidden = hidden_width(cin, self.expand_ratios[a[b["expand_index"]]])
            blocks.append((b["name"], cin, hidden, cout, self.kernel_sizes[a[b["kernel_index"]]],
                           b["stride"], b["residual"]))
        return scaled(self.stem_channels, mult), blocks, scaled(self.head_channels, mult)

    def largest(self) -> np.ndarray:
        """Every decision at its last (largest) option."""
        return np.asarray([n - 1 for n in self.num_choices], np.int32)

    def smallest(self) -> np.ndarray:
        """Every decision at its first (smallest) option."""
        return np.zeros(self.num_decisions, np.int32)

    def parameter_free(self, arch) -> np.ndarray:
        """No choice here removes all of a block's weights, so none is parameter-free."""
        return np.zeros(self.validate(arch).shape, bool)

    def canonical(self, archs) -> jax.Array:
        """`archs` with the (irrelevant) choices of blocks beyond each stage's depth set to 0, so
        architectures that build the same network compare equal. Jittable."""
        a = jnp.asarray(archs, jnp.int32)
        for b in self.block_layout():
            depth = jnp.asarray(self.depth_options[b["stage"]], jnp.int32)[a[..., b["depth_index"]]]
            inactive = b["position"] >= depth
            for index in (b["kernel_index"], b["expand_index"]):
                a = a.at[..., index].set(jnp.where(inactive, 0, a[..., index]))
        return a

    # -- networks ------------------------------------------------------------------------------
    def supernet(self, mixed: bool = False, head: bool = True, stem: bool = True) -> MobileNetSupernet:
        """The masked supernet. `mixed` is accepted for interface compatibility: soft weights
        already give the superkernel / soft-mask relaxation, so there is no separate mixed mode.
        `head=False` returns features, `stem=False` takes `full(stem_channels)`-channel features
        (`MobileNetSupernet`); `body()` is `supernet(head=False)`."""
        del mixed
        return MobileNetSupernet(space=self, head=head, stem=stem)

    def standalone(self, arch) -> MobileNetNetwork:
        """The plain MobileNet of one architecture."""
        stem, blocks, head = self._plan(arch)
        return MobileNetNetwork(stem_channels=stem, stem_stride=self.stem_stride,
                                blocks=tuple((name, hidden, cout, k, stride, res)
                                             for name, _, hidden, cout, k, stride, res in blocks),
                                head_channels=head, num_classes=self.num_classes, grouped=self.grouped)

    def extract_variables(self, variables, arch):
        """Supernet variables (path mode, calibrated for `arch`) -> the standalone network's.

        Every standalone array is a crop of the supernet array with the same name: conv kernels
        keep the centre of their window (the smaller depthwise kernel) and the first channels of
        every channel axis; BN and dense arrays keep their first channels. The supernet's
        `supernet_stats` become the standalone network's `batch_stats`."""
        net = self.standalone(arch)
        x = jax.ShapeDtypeStruct((1, *self.input_shape), jnp.float32)
        shapes = jax.eval_shape(lambda: net.init(jax.random.PRNGKey(0), x, train=False))
        result = {"params": _crop_tree(variables["params"], shapes["params"])}
        if STATS_COLLECTION in variables:  # the supernet's statistics become the standalone BN's
            result["batch_stats"] = _crop_tree(variables[STATS_COLLECTION], shapes["batch_stats"])
        return result

    # -- analytic cost ---------------------------------------------------------------------------
    def _layers(self, arch):
        """(in_per_group, out_channels, window_size, output_positions, other_params) per conv /
        dense layer of the standalone network; other_params is its BN affine or bias."""
        stem, blocks, head = self._plan(arch)
        nd = len(self.input_shape) - 1
        size = [math.ceil(d / self.stem_stride) for d in self.input_shape[:-1]]
        layers = [(self.input_shape[-1], stem, 3 ** nd, math.prod(size), 2 * stem)]
        for _, cin, hidden, cout, k, stride, _ in blocks:
            layers.append((cin, hidden, 1, math.prod(size), 2 * hidden))           # expand + BN
            size = [math.ceil(d / stride) for d in size]
            layers.append((1, hidden, k ** nd, math.prod(size), 2 * hidden))      # depthwise + BN
            layers.append((hidden, cout, 1, math.prod(size), 2 * cout))            # project + BN
        cin = blocks[-1][3] if blocks else stem
        layers.append((cin, head, 1, math.prod(size), 2 * head))                   # head conv + BN
        layers.append((head, self.num_classes, 1, 1, self.num_classes))           # classifier
        return layers

    def params(self, arch) -> int:
        """Trainable parameters of the standalone network (BN running statistics excluded)."""
        return sum(cin * cout * window + other for cin, cout, window, _, other in self._layers(arch))

    def flops(self, arch) -> int:
        """Forward FLOPs per example: 2 x multiply-adds of the convs and the classifier
        (BN, activations, additions and pooling are not counted)."""
        return sum(2 * cin * cout * window * pos for cin, cout, window, pos, _ in self._layers(arch))


def _crop(array, shape):
    """Leading channels on every axis, except the spatial axes of a conv kernel (all but the
    last two of a >= 3-d array), which keep their centre."""
    array = jnp.asarray(array)
    index = []
    spatial = array.ndim - 2 if array.ndim >= 3 else 0
    for axis, (have, want) in enumerate(zip(array.shape, shape)):
        start = (have - want) // 2 if axis < spatial else 0
        index.append(slice(start, start + want))
    return array[tuple(index)]


def _crop_tree(tree, shapes):
    """Crops each array of `tree` that the standalone network has (`shapes`) to its shape."""
    if not hasattr(shapes, "shape"):
        return {name: _crop_tree(tree[name], sub) for name, sub in shapes.items()}
    return _crop(tree, shapes.shape)
