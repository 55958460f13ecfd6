"""Plain standalone networks, one per search space, and the fixed blocks the supernets share.

A standalone network is an ordinary Flax module built for one architecture (its structure is a
static Python tuple, so it compiles per architecture like any hand-written network). `extract`
fills it with a supernet's weights; `module.init` gives it fresh weights to retrain from scratch.
Apply with `module.apply(variables, x, train=..., mutable=["batch_stats"] if train else False)`.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from supernet.layers import (CalibratedBatchNorm, ConvKernel, avg_pool3, downsample_pool,
                             global_pool)


# Running-average momentum of the standalone networks' batch norm (`retrain.recalibrate_batch_norm`
# relies on every standalone BN layer using it).
BN_MOMENTUM = 0.9


def batch_norm(calibrated: bool, train: bool, name: str):
    """A BN layer: per-architecture calibrated statistics in a supernet (`calibrated`), else a plain
    `nn.BatchNorm` with running averages, as in a standalone network."""
    if calibrated:
        return CalibratedBatchNorm(use_running_average=not train, name=name)
    return nn.BatchNorm(use_running_average=not train, momentum=BN_MOMENTUM, epsilon=1e-5, name=name)


class ConvBN(nn.Module):
    """Conv then batch norm, optionally preceded by ReLU (NAS-Bench-201's ReLUConvBN)."""
    features: int
    window: int
    stride: int = 1
    pre_relu: bool = True
    calibrated: bool = False

    @nn.compact
    def __call__(self, x, train: bool):
        if self.pre_relu:
            x = nn.relu(x)
        x = ConvKernel(self.window, self.features, self.stride, name="conv")(x)
        return batch_norm(self.calibrated, train, "bn")(x)


class ResidualReduction(nn.Module):
    """NAS-Bench-201's reduction: a stride-2 ResNet basic block with a pool + 1x1 shortcut."""
    features: int
    calibrated: bool = False

    @nn.compact
    def __call__(self, x, train: bool):
        y = ConvBN(self.features, 3, 2, calibrated=self.calibrated, name="conv_a")(x, train)
        y = ConvBN(self.features, 3, 1, calibrated=self.calibrated, name="conv_b")(y, train)
        shortcut = ConvKernel(1, self.features, name="shortcut")(downsample_pool(x))
        return shortcut + y


class Head(nn.Module):
    """Batch norm, ReLU, global average pool, linear classifier."""
    num_classes: int
    calibrated: bool = False

    @nn.compact
    def __call__(self, x, train: bool):
        x = nn.relu(batch_norm(self.calibrated, train, "bn")(x))
        return nn.Dense(self.num_classes, name="classifier")(global_pool(x))


NB201_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
# The 6 edges of the 4-node cell as (from_node, to_node), in the benchmark's string order.
NB201_EDGES = ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))


class NasBench201Network(nn.Module):
    """The NAS-Bench-201 network for one cell: stem, 3 stages of N cells, 2 residual reductions."""
    cell: Sequence[str]  # one op name per edge, in NB201_EDGES order
    num_classes: int = 10
    channels: int = 16
    cells_per_stage: int = 5
    stages: int = 3

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = ConvBN(self.channels, 3, pre_relu=False, name="stem")(x, train)
        for stage in range(self.stages):
            width = self.channels * 2 ** stage
            if stage:
                x = ResidualReduction(width, name=f"reduce{stage}")(x, train)
            for i in range(self.cells_per_stage):
                x = self._cell(x, width, train, f"stage{stage}_cell{i}")
        return Head(self.num_classes, name="head")(x, train)

    def _cell(self, x, width, train, prefix):
        nodes = [x]
        for target in range(1, 4):
            total = jnp.zeros_like(x)
            for edge, (source, to) in enumerate(NB201_EDGES):
                if to == target:
                    total = total + self._edge(self.cell[edge], nodes[source], width, train, f"{prefix}_edge{edge}")
            nodes.append(total)
        return nodes[-1]

    @staticmethod
    def _edge(op, x, width, train, name):
        if op == "none":
            return jnp.zeros_like(x)
        if op == "skip_connect":
            return x
        if op == "avg_pool_3x3":
            return avg_pool3(x)
        window = 1 if op == "nor_conv_1x1" else 3
        return ConvBN(width, window, name=name)(x, train)
