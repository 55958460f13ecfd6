"""A small CNN search space for signals, written with `supernet.nas` primitives (registered as "cnn1d").

    space = spaces.get("cnn1d", input_shape=(40, 1), num_classes=10)   # MNIST-1D

The network (every convolution follows the input's spatial rank: 1-D for [L, C] signals, 2-D for
[H, W, C] images):

    stem      3-wide conv to `stem_channels`, BN, ReLU, 2-wide max pool (stride 2)
    op        a layer choice: 3-wide average pool, 1-wide conv or 3-wide conv      (decision `op`)
    stage     1 to 3 residual blocks (decision `stage.depth`); block b is a conv of searched width
              and kernel (`stage.block{b}.conv.features`, `stage.block{b}.conv.kernel_size`), BN,
              ReLU and a 3-wide conv back to `stem_channels`, added to its input
    skip      a connection: the stage's output alone ("0"), or plus the stem's ("1")  (decision `skip`)
    head      global average pool, dense of searched width (`fc.features`), ReLU, dense classifier

Decisions of blocks past the chosen depth do not change the network (`space.canonical` zeroes
them), so the defaults' 26,244 encodings are 9,828 distinct networks; `space.is_degenerate(arch)`
is True for an encoding that is not its network's canonical one, so a ground-truth sample
(`supernet.ground_truth.sample_architectures`) draws distinct networks uniformly (most of them 3
blocks deep: 8,748 of the 9,828). The space is the CNN of
`experiments/own_cnn.py` (layer choice, depth, width, kernel, connection), for any input rank.
"""

from __future__ import annotations

import functools
from typing import Sequence

import flax.linen as nn
import numpy as np


def _nas():
    """`supernet.nas`, imported on first use: it imports modules that import this package."""
    from supernet import nas
    return nas


class AvgPool3(nn.Module):
    """3-wide average pool, stride 1, along every spatial axis: the weight-free layer candidate."""

    @nn.compact
    def __call__(self, x):
        return nn.avg_pool(x, (3,) * (x.ndim - 2), padding="SAME")


class Block(nn.Module):
    """Conv (searched width and kernel), BN, ReLU, 3-wide conv back to the input's width, plus the
    input (a block must keep its input's shape to be skippable inside `nas.Repeat`)."""
    widths: Sequence[int]
    kernel_sizes: Sequence[int]

    @nn.compact
    def __call__(self, x, train=False):
        nas = _nas()
        h = nas.Conv(features=tuple(self.widths), kernel_size=tuple(self.kernel_sizes), name="conv")(x)
        h = nn.relu(nn.BatchNorm(use_running_average=not train)(h))
        return x + nas.Conv(features=x.shape[-1], kernel_size=3, name="proj")(h)


class CNN(nn.Module):
    """The searched CNN (module docstring); takes float[N, *spatial, C], returns logits [N, num_classes]."""
    num_classes: int = 10
    stem_channels: int = 16
    widths: Sequence[int] = (8, 16, 32)
    kernel_sizes: Sequence[int] = (3, 5, 7)
    depths: Sequence[int] = (1, 2, 3)
    head_widths: Sequence[int] = (32, 64)

    @nn.compact
    def __call__(self, x, train=False):
        nas, rank, c = _nas(), x.ndim - 2, self.stem_channels
        x = nn.relu(nn.BatchNorm(use_running_average=not train)(nas.Conv(c, 3, name="stem")(x)))
        x = stem = nn.max_pool(x, (2,) * rank, strides=(2,) * rank)
        # The weight-free pool first: `space.smallest()` takes a layer choice's option 0.
        x = nas.Choice([AvgPool3(name="avgpool3"), nn.Conv(c, (1,) * rank, name="conv1"),
                        nn.Conv(c, (3,) * rank, name="conv3")], name="op")(x)
        block = functools.partial(Block, tuple(self.widths), tuple(self.kernel_sizes))
        x = nas.Repeat(block, depth=tuple(self.depths), name="stage")(x, train)
        x = nas.InputChoice(n_chosen=1, name="skip")([x, x + stem])   # with or without a long skip
        h = x.mean(axis=tuple(range(1, x.ndim - 1)))
        h = nn.relu(nas.Dense(features=tuple(self.head_widths), name="fc")(h))
        return nn.Dense(self.num_classes)(h)


def _options(name: str, values, *, odd: bool = False) -> tuple[int, ...]:
    values = tuple(int(v) for v in values)
    if len(values) < 2 or min(values) < 1 or (odd and any(v % 2 == 0 for v in values)):
        what = "odd ints >= 1" if odd else "ints >= 1"
        raise ValueError(f"cnn1d {name} must be at least two {what} (a decision), got {values}; e.g. "
                         f"{name}={CNN.__dataclass_fields__[name].default}.")
    return values


def cnn1d(num_classes: int = 10, input_shape=(40, 1), stem_channels: int = 16, widths=(8, 16, 32),
          kernel_sizes=(3, 5, 7), depths=(1, 2, 3), head_widths=(32, 64)):
    """The CNN space (module docstring) for inputs of `input_shape` (channels last, e.g. (40, 1)
    for MNIST-1D).

    Args:
      num_classes: classifier outputs; stem_channels: the stem's and every block's output width.
      widths, kernel_sizes: each block's searched conv width and (odd) kernel size options.
      depths: the number of blocks to choose from; head_widths: the dense head's width options.
    Returns:
      a `nas.NasSpace` named "cnn1d" (a `supernet.spaces.Space`), with `input_shape` and
      `num_classes` set.
    """
    module = CNN(num_classes=int(num_classes), stem_channels=int(stem_channels), widths=_options("widths", widths),
                 kernel_sizes=_options("kernel_sizes", kernel_sizes, odd=True), depths=_options("depths", depths),
                 head_widths=_options("head_widths", head_widths))
    shape = tuple(int(d) for d in input_shape)
    space = _nas().space(module, np.zeros((1, *shape), np.float32))
    space.name, space.input_shape, space.num_classes = "cnn1d", shape, int(num_classes)
    space.is_degenerate = functools.partial(_redundant, space)
    return space


def _redundant(space, arch) -> bool:
    """True when `arch` sets a decision of a block past the chosen depth: it names a network that
    the encoding with zeros there names too. Sampled tables (`ground_truth.sample_architectures`)
    skip it, to hold each network once. (`space.canonical` on the host, without dispatch.)"""
    a = np.asarray(arch)
    index = {n: i for i, n in enumerate(space.decision_names)}
    for d, name in enumerate(space.decision_names):
        for repeat, block in space.records[name]["enclosing"]:
            if space.records[repeat]["values"][a[index[repeat]]] <= block and a[d] != 0:
                return True
    return False
