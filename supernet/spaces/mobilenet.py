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

The network is an ordinary Linen module (`MobileNetModule`) written with `supernet.nas`
primitives, so the supernet, the extraction and the layout of its variables are nas's:
  * a stage is a `nas.Repeat` of blocks (its depth a `nas.Value`; the first block, which changes
    the stride or channels, always runs; block i > 0 outputs x + p_i * F(x), p_i the weight of the
    depths that include it);
  * a block's kernel is a `nas.DepthwiseConv` kernel size (a smaller kernel is the centre of the
    largest: Single-Path NAS's superkernel with soft weights);
  * its hidden width follows two decisions, the width multiplier and its expansion ratio
    (`nas.derive`): the first channels of the largest expand conv, zero past the chosen width;
  * the width multiplier is one `nas.Value` shared by the stem, every block output and the head.
The plain `nn.BatchNorm`s are calibrated per architecture in the supernet (`supernet.nas.space`).
The price of one compilation serving every architecture: the supernet always costs as much as the
*largest* subnet (masks, not smaller shapes). `standalone(arch)` builds the genuinely smaller
network, and `extract_variables` crops the shared weights into it. Params and FLOPs are counted
analytically from the stage plan (exact, instant).
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import numpy as np

from supernet import backend
from supernet.layers import check_channels, global_pool
from supernet.networks import batch_norm
from supernet.spaces.base import Space

DEFAULT_STAGES = ((16, 2, 1), (24, 3, 2), (32, 3, 2))


def scaled(channels: int, mult: float) -> int:
    """Channels under a width multiplier (rounded, at least 1)."""
    return max(1, int(channels * mult + 0.5))


def hidden_width(channels: int, ratio: float) -> int:
    """Hidden channels of an MBConv block with `channels` inputs and expansion `ratio`."""
    return max(1, int(channels * ratio + 0.5))


class MBConv(nn.Module):
    """An inverted-residual block; `kernel`, `expand` and `width` are `nas.Value`s (the block's
    kernel size and expansion ratio, the network's width multiplier)."""
    in_channels: int
    channels: int
    stride: int
    kernel: object
    expand: object
    width: object

    @nn.compact
    def __call__(self, x, train: bool = False):
        from supernet import nas   # see MobileNetSpace.__init__
        cin, cout = self.in_channels, self.channels
        hidden = nas.derive(lambda m, e: hidden_width(scaled(cin, m), e), self.width, self.expand)
        h = nas.Conv(features=hidden, kernel_size=1, use_bias=False, name="expand")(x)
        h = nn.relu6(batch_norm(False, train, "expand_bn")(h))
        h = nas.DepthwiseConv(kernel_size=self.kernel, strides=self.stride, name="depthwise")(h)
        h = nn.relu6(batch_norm(False, train, "depthwise_bn")(h))
        h = nas.Conv(features=self.width.map(lambda m: scaled(cout, m)), kernel_size=1, use_bias=False,
                     name="project")(h)
        h = batch_norm(False, train, "project_bn")(h)
        return x + h if self.stride == 1 and cin == cout else h


class MobileNetModule(nn.Module):
    """The MobileNet as a Linen module (`space`: its configuration). `head=False` leaves out the head
    (1x1 conv, BN, ReLU6, global pool, classifier) and returns the last block's feature map;
    `stem=False` also leaves out the stem, so inputs must already have `space.full(stem_channels)`
    channels (those past the chosen width are zeroed, as the stem's would be). Called as (x, train)."""
    space: "MobileNetSpace"
    head: bool = True
    stem: bool = True

    @nn.compact
    def __call__(self, x, train: bool = False):
        from supernet import nas   # see MobileNetSpace.__init__
        from supernet.nas.primitives import Prefix
        sp = self.space
        width = nas.Value("width", sp.width_mults)
        stem_width = width.map(lambda m: scaled(sp.stem_channels, m))
        if self.stem:
            x = nas.Conv(features=stem_width, kernel_size=3, strides=sp.stem_stride, use_bias=False, name="stem")(x)
            x = nn.relu6(batch_norm(False, train, "stem_bn")(x))
        else:
            check_channels(x, sp.full(sp.stem_channels), "the mobilenet supernet")
            x = Prefix(stem_width, name="stem_width")(x)
        cin = sp.stem_channels
        for s, (channels, max_depth, stride) in enumerate(sp.stages, start=1):
            def block(i, s=s, cin=cin, channels=channels, stride=stride):
                return MBConv(cin if i == 0 else channels, channels, stride if i == 0 else 1,
                              nas.Value(f"stage{s}_block{i + 1}_kernel", sp.kernel_sizes),
                              nas.Value(f"stage{s}_block{i + 1}_expand", sp.expand_ratios), width)
            depth = nas.Value(f"stage{s}_depth", sp.depth_options[s - 1])
            x = nas.Repeat(block, depth=depth, name=f"stage{s}")(x, train)
            cin = channels
        if self.head:
            x = nas.Conv(features=width.map(lambda m: scaled(sp.head_channels, m)), kernel_size=1, use_bias=False,
                         name="head")(x)
            x = nn.relu6(batch_norm(False, train, "head_bn")(x))
            x = nn.Dense(sp.num_classes, name="classifier")(global_pool(x))
        return x


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
                decisions.append((f"stage{s}_block{b}_expand", [f"{e:g}" for e in self.expand_ratios]))
        if len(self.width_mults) > 1:
            decisions.append(("width", [f"{w:g}" for w in self.width_mults]))
        super().__init__(decisions)
        self.width_index = self.decision_names.index("width") if len(self.width_mults) > 1 else None
        self.num_classes = int(num_classes)
        self.input_shape = tuple(int(d) for d in input_shape)
        self.min_depth = int(min_depth)
        self.stem_channels = int(stem_channels)
        self.stem_stride = int(stem_stride)
        self.head_channels = int(head_channels)
        # Imported here: supernet.nas.space imports supernet.spaces.base, which loads this package.
        from supernet.nas.space import listed
        self.module = MobileNetModule(self)
        self.traced = listed(self.module, np.zeros((1, *self.input_shape), np.float32),
                             list(zip(self.decision_names, self.options)))

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
        return self.traced.canonical(archs)

    # -- networks ------------------------------------------------------------------------------
    def supernet(self, mixed: bool = False, head: bool = True, stem: bool = True):
        """The weight-sharing MobileNet (`supernet.nas.NasSupernet`, called as (x, arch or weights,
        train)). `mixed` changes nothing: soft weights already give the superkernel / soft-mask
        relaxation. `head=False` returns features, `stem=False` takes `full(stem_channels)`-channel
        features (`MobileNetModule`); `body()` is `supernet(head=False)`."""
        from supernet.nas.space import NasSupernet   # see __init__
        del mixed
        return NasSupernet(self.module.clone(head=head, stem=stem), self.decision_names, self.num_choices,
                           grouped=self.grouped)

    def standalone(self, arch):
        """The MobileNet of one architecture (`supernet.nas.standalone_network`, called as (x, train)):
        the active blocks with their real kernel sizes and widths."""
        self._plan(arch)
        return self.traced.standalone(arch)

    def extract_variables(self, variables, arch):
        """Supernet variables (calibrated for `arch`) -> the standalone network's: every array a crop
        of the supernet's (kernel centres, leading channels); `supernet_stats` become `batch_stats`."""
        return self.traced.extract_variables(variables, arch)

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
