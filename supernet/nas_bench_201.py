"""The NAS-Bench-201 search space and its weight-sharing supernet.

Decision k is the operation on edge k of the 4-node cell, edges in the benchmark's string order
(1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2); options `none, skip_connect, nor_conv_1x1, nor_conv_3x3,
avg_pool_3x3` (indices 0..4). Every cell of the network uses the same genotype, as in the benchmark.

Why the edge is written the way it is (measured, see README "Design"): picking an operation with
`jax.lax.switch` or `lax.cond` on a traced index makes the CPU backward pass many times slower, and
computing all five candidates costs ~3-5x. Here the two convolutions are *folded* into one: the 1x1
kernel is zero-padded into the centre of the 3x3 slot and the two kernels (and their BN affine
parameters) are mixed by the one-hot choice, so an edge costs one conv whatever it picks; skip and
pool are cheap elementwise terms weighted by their one-hot entries. With a one-hot choice this is
exactly the chosen operation. `mixed=True` instead computes every candidate separately and sums them
with soft weights: the continuous relaxation that DARTS needs.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from supernet.layers import CalibratedBatchNorm, ConvKernel, avg_pool3, conv
from supernet.networks import (NB201_EDGES, NB201_OPS, ConvBN, Head, NasBench201Network,
                               ResidualReduction)
from supernet.space import Space

NONE, SKIP, CONV1, CONV3, POOL = range(5)


class SharedEdge(nn.Module):
    """All five candidate operations of one edge, with shared-shape conv weights."""
    features: int
    mixed: bool = False

    @nn.compact
    def __call__(self, x, weights, train: bool):
        nd = x.ndim - 2
        cin = x.shape[-1]
        init = nn.initializers.kaiming_normal()
        w3 = self.param("w_3x3", init, (3,) * nd + (cin, self.features))
        w1 = self.param("w_1x1", init, (1,) * nd + (cin, self.features))
        affine = {f"{p}_{k}": self.param(f"{p}_{k}", i, (self.features,))
                  for k in ("1x1", "3x3") for p, i in (("scale", nn.initializers.ones), ("bias", nn.initializers.zeros))}
        h = nn.relu(x)
        if self.mixed:
            out1 = CalibratedBatchNorm(not train, use_scale=False, name="norm_1x1")(
                conv(h, w1), affine["scale_1x1"], affine["bias_1x1"])
            out3 = CalibratedBatchNorm(not train, use_scale=False, name="norm_3x3")(
                conv(h, w3), affine["scale_3x3"], affine["bias_3x3"])
            conv_part = weights[CONV1] * out1 + weights[CONV3] * out3
        else:
            kernel = weights[CONV3] * w3 + weights[CONV1] * jnp.pad(w1, [(1, 1)] * nd + [(0, 0), (0, 0)])
            scale = weights[CONV3] * affine["scale_3x3"] + weights[CONV1] * affine["scale_1x1"]
            bias = weights[CONV3] * affine["bias_3x3"] + weights[CONV1] * affine["bias_1x1"]
            conv_part = CalibratedBatchNorm(not train, use_scale=False, name="norm")(conv(h, kernel), scale, bias)
        return conv_part + weights[SKIP] * x + weights[POOL] * avg_pool3(x)


class NasBench201Supernet(nn.Module):
    """Takes `weights` float[6, 5]: a one-hot architecture (single path) or mixture weights."""
    num_classes: int = 10
    channels: int = 16
    cells_per_stage: int = 5
    mixed: bool = False

    @nn.compact
    def __call__(self, x, weights, train: bool = False):
        x = ConvBN(self.channels, 3, pre_relu=False, calibrated=True, name="stem")(x, train)
        for stage in range(3):
            width = self.channels * 2 ** stage
            if stage:
                x = ResidualReduction(width, calibrated=True, name=f"reduce{stage}")(x, train)
            for i in range(self.cells_per_stage):
                nodes = [x]
                for target in range(1, 4):
                    total = 0.0
                    for edge, (source, to) in enumerate(NB201_EDGES):
                        if to == target:
                            op = SharedEdge(width, self.mixed, name=f"stage{stage}_cell{i}_edge{edge}")
                            total = total + op(nodes[source], weights[edge], train)
                    nodes.append(total)
                x = nodes[-1]
        return Head(self.num_classes, calibrated=True, name="head")(x, train)


class NasBench201Space(Space):
    """NAS-Bench-201: 6 edges x 5 operations = 15,625 cells in the benchmark's macro skeleton."""

    name = "nas_bench_201"

    def __init__(self, num_classes: int = 10, input_shape=(32, 32, 3), channels: int = 16,
                 cells_per_stage: int = 5):
        super().__init__([(f"edge{k}_{i}to{j}", NB201_OPS) for k, (i, j) in enumerate(NB201_EDGES)])
        if channels < 1 or cells_per_stage < 0 or num_classes < 2:
            raise ValueError(f"nas_bench_201: need channels >= 1, cells_per_stage >= 0, num_classes >= 2; "
                             f"got {channels}, {cells_per_stage}, {num_classes}.")
        self.num_classes = int(num_classes)
        self.input_shape = tuple(int(d) for d in input_shape)
        self.channels = int(channels)
        self.cells_per_stage = int(cells_per_stage)

    # -- the benchmark's official strings --------------------------------------------------------
    def to_string(self, arch) -> str:
        a = self.validate(arch)
        if a.ndim != 1:
            raise ValueError(f"{self.name}: to_string takes one architecture, got shape {a.shape}.")
        nodes = []
        for target in range(1, 4):
            parts = [f"{NB201_OPS[a[k]]}~{i}" for k, (i, j) in enumerate(NB201_EDGES) if j == target]
            nodes.append("|" + "|".join(parts) + "|")
        return "+".join(nodes)

    def from_string(self, text: str) -> np.ndarray:
        nodes = str(text).strip().split("+")
        ops = {}
        if len(nodes) != 3:
            raise ValueError(f"{self.name}: expected 3 '+'-separated nodes like "
                             f"'|nor_conv_3x3~0|+|none~0|skip_connect~1|+|...~0|...~1|...~2|', got {text!r}.")
        for target, node in enumerate(nodes, start=1):
            for part in (p for p in node.split("|") if p):
                op, _, source = part.partition("~")
                if op not in NB201_OPS or not source.isdigit() or (int(source), target) not in NB201_EDGES:
                    raise ValueError(f"{self.name}: bad edge {part!r} into node {target} in {text!r}; "
                                     f"operations are {NB201_OPS}, sources 0..{target - 1}.")
                ops[(int(source), target)] = NB201_OPS.index(op)
        if len(ops) != len(NB201_EDGES):
            raise ValueError(f"{self.name}: {text!r} names {len(ops)} distinct edges, expected 6.")
        return np.asarray([ops[e] for e in NB201_EDGES], np.int32)

    def largest(self) -> np.ndarray:
        return np.full(6, CONV3, np.int32)

    def smallest(self) -> np.ndarray:
        """All skip connections: no cell parameters, yet information still flows (unlike `none`)."""
        return np.full(6, SKIP, np.int32)

    def parameter_free(self, arch) -> np.ndarray:
        """Per decision: True where the chosen op has no weights (for DARTS's collapse guard)."""
        return np.isin(self.validate(arch), (NONE, SKIP, POOL))

    # -- networks ----------------------------------------------------------------------------------
    def _net_args(self):
        return dict(num_classes=self.num_classes, channels=self.channels, cells_per_stage=self.cells_per_stage)

    def supernet(self, mixed: bool = False) -> NasBench201Supernet:
        return NasBench201Supernet(mixed=mixed, **self._net_args())

    def standalone(self, arch) -> NasBench201Network:
        a = self.validate(arch)
        return NasBench201Network(cell=tuple(NB201_OPS[c] for c in a), **self._net_args())

    def extract_variables(self, variables, arch):
        """Supernet variables (path mode, calibrated for `arch`) -> the standalone network's."""
        a = self.validate(arch)
        params, stats = dict(variables["params"]), dict(variables.get("batch_stats", {}))
        out_params, out_stats = {}, {}
        for name, value in params.items():
            if "_edge" not in name:
                out_params[name] = value
                if name in stats:
                    out_stats[name] = stats[name]
                continue
            op = a[int(name.rsplit("_edge", 1)[1])]
            if op in (CONV1, CONV3):
                tag = "1x1" if op == CONV1 else "3x3"
                out_params[name] = {"conv": {"kernel": value[f"w_{tag}"]},
                                    "bn": {"scale": value[f"scale_{tag}"], "bias": value[f"bias_{tag}"]}}
                if name in stats:
                    out_stats[name] = {"bn": stats[name]["norm"]}
        result = {"params": out_params}
        if stats:
            result["batch_stats"] = out_stats
        return result

    # -- analytic cost -------------------------------------------------------------------------------
    def _layers(self, arch):
        """(in_ch, out_ch, window, output_positions, other_params) per conv / dense layer, where
        other_params counts the BN affine or bias that belongs to it."""
        a = self.validate(arch)
        nd = len(self.input_shape) - 1
        size = list(self.input_shape[:-1])
        c = self.channels
        layers = [(self.input_shape[-1], c, 3 ** nd, int(np.prod(size)), 2 * c)]  # stem conv + BN
        for stage in range(3):
            width = c * 2 ** stage
            if stage:
                size = [(d + 1) // 2 for d in size]
                layers += [(width // 2, width, 3 ** nd, int(np.prod(size)), 2 * width),  # conv_a + BN
                           (width, width, 3 ** nd, int(np.prod(size)), 2 * width),       # conv_b + BN
                           (width // 2, width, 1, int(np.prod(size)), 0)]                # 1x1 shortcut
            cell = [(width, width, 3 ** nd if op == CONV3 else 1, int(np.prod(size)), 2 * width)
                    for op in a if op in (CONV1, CONV3)]
            layers += cell * self.cells_per_stage
        layers.append((4 * c, self.num_classes, 1, 1, self.num_classes + 2 * 4 * c))  # head BN + dense
        return layers

    def params(self, arch) -> int:
        """Trainable parameters of the architecture's standalone network (BN running stats excluded)."""
        return sum(cin * cout * window + other for cin, cout, window, _, other in self._layers(arch))

    def flops(self, arch) -> int:
        """Forward FLOPs for one example: 2 x multiply-adds of every conv and dense layer
        (element-wise work such as BN, ReLU, pooling and additions is not counted)."""
        return sum(2 * cin * cout * window * pos for cin, cout, window, pos, _ in self._layers(arch))
