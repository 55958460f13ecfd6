"""The NAS-Bench-201 search space and its weight-sharing supernet.

Decision k is the operation on edge k of the 4-node cell, edges in the benchmark's string order
(1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2); options `none, skip_connect, nor_conv_1x1, nor_conv_3x3,
avg_pool_3x3` (indices 0..4). Every cell of the network uses the same genotype, as in the benchmark.

Two ways to compute a single-path cell from the same weights (measured, README "Design notes"):

* `sparse=True` (the CPU default): each edge runs only its chosen operation through
  `jax.lax.switch` on the traced index, with a hand-written backward pass, and edges that cannot
  reach the cell's output are skipped, so a step costs about what the sampled cell costs
  standalone (`supernet.spaces.sparse_cell`).
* `sparse=False` (the default on GPU/TPU, and under `vmap` over architectures, where a switch
  would compute every branch): the two convolutions are *folded* into one, the 1x1 kernel
  zero-padded into the centre of the 3x3 slot and the kernels (and their BN affine parameters)
  mixed by the one-hot choice (see `SharedCell`); skip and pool are cheap elementwise terms
  weighted by their one-hot entries. Every edge then pays one 3x3 conv, whatever it picks.

Both are exactly the chosen operation for one-hot weights and share one parameter layout.
`mixed=True` instead computes every candidate separately and sums them with soft weights: the
continuous relaxation that DARTS needs.
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from supernet import backend
from supernet.spaces import sparse_cell
from supernet.layers import (STATS_COLLECTION, CalibratedBatchNorm, StoredStats, as_weights, avg_pool3,
                             check_channels, conv, nan_if_invalid)
from supernet.networks import (NB201_EDGES, NB201_OPS, ConvBN, Head, NasBench201Network,
                               ResidualReduction)
from supernet.spaces.base import Space
from strategies.archs import enumerate_all, radix_strides

NONE, SKIP, CONV1, CONV3, POOL = range(5)
DECISION_NAMES = tuple(f"edge{k}_{i}to{j}" for k, (i, j) in enumerate(NB201_EDGES))
NUM_CHOICES = (len(NB201_OPS),) * len(NB201_EDGES)


def _cell_expression(arch) -> tuple:
    """What a cell computes, written canonically: each node is the sorted tuple of its terms, a
    term being an operation applied to a source node's expression. Cells with equal expressions
    build the same network up to where each weight sits: `none` edges drop out, a skip passes its
    source's terms on (so the two middle nodes' order and a detour through a skip do not matter),
    and a node that receives nothing is zero, so a skip or pool of it vanishes and a convolution of
    it leaves only its BN bias, a learned constant (one is as good as several)."""
    nodes = [("input",)]
    for target in range(1, 4):
        terms = []
        for e, (source, to) in enumerate(NB201_EDGES):
            if to != target or arch[e] == NONE:
                continue
            op, value = int(arch[e]), nodes[source]
            if not value:
                if op in (CONV1, CONV3) and "bias" not in terms:
                    terms.append("bias")
            elif op == SKIP:
                terms.extend(value)
            else:
                terms.append((NB201_OPS[op], value))
        nodes.append(tuple(sorted(terms, key=repr)))
    return nodes[3]


@functools.cache
def _representatives() -> np.ndarray:
    """int32[15625, 6]: for each cell (by number), the lowest-numbered cell that computes the same
    function. 5,155 distinct functions (NAS-Bench-201 counts 6,466 with a stricter notion)."""
    cells = enumerate_all(NUM_CHOICES)
    first = {}
    return cells[[first.setdefault(_cell_expression(cell), number) for number, cell in enumerate(cells)]]


class EdgeParams(nn.Module):
    """The weights of one edge's two convolutions (and their BN affines); no computation."""
    features: int

    @nn.compact
    def __call__(self, cin: int, nd: int) -> dict:
        kaiming, ones, zeros = nn.initializers.kaiming_normal(), nn.initializers.ones, nn.initializers.zeros
        shapes = {"w_3x3": (kaiming, (3,) * nd + (cin, self.features)),
                  "w_1x1": (kaiming, (1,) * nd + (cin, self.features)),
                  "scale_3x3": (ones, (self.features,)), "bias_3x3": (zeros, (self.features,)),
                  "scale_1x1": (ones, (self.features,)), "bias_1x1": (zeros, (self.features,))}
        return {name: self.param(name, init, shape) for name, (init, shape) in shapes.items()}


def _edges_from(source: int) -> list[int]:
    return [e for e, (i, _) in enumerate(NB201_EDGES) if i == source]


class SharedCell(nn.Module):
    """One cell holding every candidate of its 6 edges; `weights` float[6, 5] picks or mixes them.

    `sparse=True`: each edge computes only its chosen (argmax) operation in a `lax.switch`.
    Folded single path (`sparse=False, mixed=False`): per edge the 1x1 kernel is zero-padded into
    the 3x3 slot and the two kernels, and their BN affines, are mixed by the weights; the edges
    leaving the same node share one BN over their concatenated outputs (BN is per channel, so this
    equals per-edge BN). A cell then costs 6 convolutions whatever it picks; skip and pool add
    cheap weighted terms. With one-hot weights both are exactly the chosen operation and store
    their BN statistics in the same layout.
    `mixed=True`: every candidate computed separately and summed with the weights (DARTS).
    """
    features: int
    mixed: bool = False
    sparse: bool = False

    @nn.compact
    def __call__(self, x, weights, train: bool):
        if self.mixed and self.sparse:
            raise ValueError("SharedCell: mixed=True (DARTS) computes every candidate; it cannot be sparse.")
        nd = x.ndim - 2
        params = [EdgeParams(self.features, name=f"edge{e}")(x.shape[-1], nd) for e in range(6)]
        if self.sparse:
            return self._switched(x, params, weights, train)
        contributions = {}
        nodes = [x]
        for source in range(3):
            h = nodes[source]
            edges = _edges_from(source)
            outs = self._mixed(h, edges, params, weights, train) if self.mixed else \
                self._folded(h, source, edges, params, weights, train)
            pooled = avg_pool3(h)
            for e, out in zip(edges, outs):
                contributions[e] = out + weights[e, SKIP] * h + weights[e, POOL] * pooled
            target = source + 1
            nodes.append(sum(contributions[e] for e, (_, j) in enumerate(NB201_EDGES) if j == target))
        return nodes[-1]

    def _switched(self, x, params, weights, train):
        """The `sparse` cell (`supernet.spaces.sparse_cell`); BN statistics stored per source node in
        the folded path's layout."""
        chosen = jnp.argmax(weights, axis=-1)
        scales = jnp.take_along_axis(weights, chosen[:, None], axis=-1)[:, 0]
        ops = sparse_cell.prune_dead_edges(chosen)
        stores = [StoredStats(name=f"norm_from{source}") for source in range(3)]
        if train or self.is_initializing():  # an initialising eval call stores the batch's statistics
            out, means, variances = sparse_cell.train_cell(x, ops, scales, params)
            for source, store in enumerate(stores):
                edges = _edges_from(source)
                store.put(jnp.concatenate([means[e] for e in edges]), jnp.concatenate([variances[e] for e in edges]))
            return out
        stats = {}
        for source, store in enumerate(stores):
            edges = _edges_from(source)
            mean, var = store.get()
            stats.update(zip(edges, zip(jnp.split(mean, len(edges)), jnp.split(var, len(edges)))))
        return sparse_cell.forward(x, ops, scales, params, [stats[e] for e in range(6)])[0][-1]

    def _folded(self, h, source, edges, params, weights, train):
        nd = h.ndim - 2
        pad = [(1, 1)] * nd + [(0, 0), (0, 0)]
        mix = lambda e, name: weights[e, CONV3] * params[e][f"{name}_3x3"] + weights[e, CONV1] * (
            jnp.pad(params[e]["w_1x1"], pad) if name == "w" else params[e][f"{name}_1x1"])
        # One conv per edge, not one over the concatenated kernels: on 2 CPU cores XLA's conv
        # with 3x the output channels cost 4.4x one edge's (C=16, 32x32, batch 64), and the full
        # training step was 16% faster this way.
        activated = nn.relu(h)
        y = jnp.concatenate([conv(activated, mix(e, "w")) for e in edges], axis=-1)
        scale = jnp.concatenate([mix(e, "scale") for e in edges])
        bias = jnp.concatenate([mix(e, "bias") for e in edges])
        y = CalibratedBatchNorm(not train, use_scale=False, name=f"norm_from{source}")(y, scale, bias)
        return jnp.split(y, len(edges), axis=-1)

    def _mixed(self, h, edges, params, weights, train):
        outs = []
        for e in edges:
            out = 0.0
            for op, tag in ((CONV1, "1x1"), (CONV3, "3x3")):
                y = conv(nn.relu(h), params[e][f"w_{tag}"])
                y = CalibratedBatchNorm(not train, use_scale=False, name=f"edge{e}_norm_{tag}")(
                    y, params[e][f"scale_{tag}"], params[e][f"bias_{tag}"])
                out = out + weights[e, op] * y
            outs.append(out)
        return outs


class NasBench201Supernet(nn.Module):
    """The supernet: `model.apply(variables, x, arch, train=...)`.

    `arch` is an architecture int32[6] (one operation index per edge) or weights float[6, 5]: a
    one-hot architecture (single path) or mixture weights (DARTS); see `layers.as_weights` for the
    checks (a concrete out-of-range choice raises; under jit an out-of-range choice yields NaN
    outputs). `sparse` computes only the argmax operation per edge (see the module docstring).
    `head=False` leaves out the final BN, ReLU, global pool and classifier and returns the feature
    map [batch, *spatial, channels * 2 ** (stages - 1)], a body for a user's model;
    `stem=False` also leaves out the stem conv, so inputs must already have `channels` channels.
    """
    num_classes: int = 10
    channels: int = 16
    cells_per_stage: int = 5
    stages: int = 3
    mixed: bool = False
    sparse: bool = False
    head: bool = True
    stem: bool = True

    @nn.compact
    def __call__(self, x, weights, train: bool = False):
        weights = as_weights(weights, NUM_CHOICES, DECISION_NAMES)
        if self.stem:
            x = ConvBN(self.channels, 3, pre_relu=False, calibrated=True, name="stem")(x, train)
        else:
            check_channels(x, self.channels, "the nas_bench_201 supernet")
        for stage in range(self.stages):
            width = self.channels * 2 ** stage
            if stage:
                x = ResidualReduction(width, calibrated=True, name=f"reduce{stage}")(x, train)
            for i in range(self.cells_per_stage):
                x = SharedCell(width, self.mixed, self.sparse, name=f"stage{stage}_cell{i}")(x, weights, train)
        if self.head:
            x = Head(self.num_classes, calibrated=True, name="head")(x, train)
        return nan_if_invalid(x, weights)


class NasBench201Space(Space):
    """NAS-Bench-201: 6 edges x 5 operations = 15,625 cells in the benchmark's macro skeleton."""

    name = "nas_bench_201"

    def __init__(self, num_classes: int = 10, input_shape=(32, 32, 3), channels: int = 16,
                 cells_per_stage: int = 5, stages: int = 3):
        super().__init__([(name, NB201_OPS) for name in DECISION_NAMES])
        if channels < 1 or cells_per_stage < 1 or num_classes < 2 or not 1 <= stages <= 3:
            raise ValueError(f"nas_bench_201: need channels >= 1, cells_per_stage >= 1, num_classes >= 2 and "
                             f"1 <= stages <= 3; got {channels}, {cells_per_stage}, {num_classes}, {stages}.")
        self.num_classes = int(num_classes)
        self.input_shape = tuple(int(d) for d in input_shape)
        self.channels = int(channels)
        self.cells_per_stage = int(cells_per_stage)
        self.stages = int(stages)  # the benchmark has 3; fewer make tiny test networks

    # -- the benchmark's official strings --------------------------------------------------------
    def to_string(self, arch) -> str:
        """One cell in NAS-Bench-201's own notation, `|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`."""
        a = self.validate(arch)
        if a.ndim != 1:
            raise ValueError(f"{self.name}: to_string takes one architecture, got shape {a.shape}.")
        nodes = []
        for target in range(1, 4):
            parts = [f"{NB201_OPS[a[k]]}~{i}" for k, (i, j) in enumerate(NB201_EDGES) if j == target]
            nodes.append("|" + "|".join(parts) + "|")
        return "+".join(nodes)

    def from_string(self, text: str) -> np.ndarray:
        """The int32[6] cell of a NAS-Bench-201 string; names what it cannot read."""
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
        """Every edge a 3x3 convolution."""
        return np.full(6, CONV3, np.int32)

    def smallest(self) -> np.ndarray:
        """All skip connections: no cell parameters, yet information still flows (unlike `none`)."""
        return np.full(6, SKIP, np.int32)

    def is_degenerate(self, arch) -> bool:
        """True when no path of non-`none` edges joins the cell's input to its output: the
        network's output then ignores its input (a constant classifier)."""
        a = self.validate(arch)
        reached = {0}
        for k, (i, j) in enumerate(NB201_EDGES):  # edges are ordered by target node
            if a[k] != NONE and i in reached:
                reached.add(j)
        return 3 not in reached

    def canonical(self, archs: jax.Array) -> jax.Array:
        """Each cell's representative among the cells that compute the same function
        (`_cell_expression`): strategies evaluate one cell per function. Jittable; a numpy array
        in gives one out, computed on the host (no op compiled)."""
        xp = np if isinstance(archs, np.ndarray) else jnp
        numbers = xp.asarray(archs, xp.int32) @ xp.asarray(radix_strides(NUM_CHOICES), xp.int32)
        return xp.asarray(_representatives())[numbers]

    def parameter_free(self, arch) -> np.ndarray:
        """Per decision: True where the chosen op has no weights (for DARTS's collapse guard)."""
        return np.isin(self.validate(arch), (NONE, SKIP, POOL))

    # -- networks ----------------------------------------------------------------------------------
    def _net_args(self):
        return dict(num_classes=self.num_classes, channels=self.channels, cells_per_stage=self.cells_per_stage,
                    stages=self.stages)

    def supernet(self, mixed: bool = False, sparse: bool | None = None, head: bool = True,
                 stem: bool = True) -> NasBench201Supernet:
        """The weight-sharing supernet. `sparse` (single path only): compute just the chosen
        operation per edge; None follows the backend policy (`backend.current().cell`: sparse on
        the CPU, where it is fastest, folded on GPU/TPU; see the module docstring). Both give the same outputs from the same variables.
        `head=False` returns features instead of logits and `stem=False` takes `channels`-channel
        features as input (`NasBench201Supernet`); `body()` is `supernet(head=False)`."""
        if sparse is None:
            sparse = not mixed and backend.current().sparse_cell
        return NasBench201Supernet(mixed=mixed, sparse=sparse, head=head, stem=stem, **self._net_args())

    def standalone(self, arch) -> NasBench201Network:
        """The plain NAS-Bench-201 network of one cell."""
        a = self.validate(arch)
        return NasBench201Network(cell=tuple(NB201_OPS[c] for c in a), **self._net_args())

    def extract_variables(self, variables, arch):
        """Supernet variables (path mode, calibrated for `arch`: their `supernet_stats`) -> the
        standalone network's (`params`, and the statistics as its BN's `batch_stats`)."""
        a = self.validate(arch)
        params, stats = variables["params"], variables.get(STATS_COLLECTION, {})
        out_params, out_stats = {}, {}
        for name, value in params.items():
            if "_cell" not in name:
                out_params[name] = value
                if name in stats:
                    out_stats[name] = stats[name]
                continue
            for e, op in enumerate(a):
                if op not in (CONV1, CONV3):
                    continue
                tag = "1x1" if op == CONV1 else "3x3"
                edge = value[f"edge{e}"]
                out_params[f"{name}_edge{e}"] = {"conv": {"kernel": edge[f"w_{tag}"]},
                                                 "bn": {"scale": edge[f"scale_{tag}"], "bias": edge[f"bias_{tag}"]}}
                if name in stats:
                    out_stats[f"{name}_edge{e}"] = {"bn": self._edge_stats(stats[name], e)}
        result = {"params": out_params}
        if stats:
            result["batch_stats"] = out_stats
        return result

    @staticmethod
    def _edge_stats(cell_stats, edge):
        """Edge `edge`'s slice of the grouped BN statistics of its source node."""
        source = NB201_EDGES[edge][0]
        group = _edges_from(source)
        chunks = {k: jnp.split(v, len(group)) for k, v in cell_stats[f"norm_from{source}"].items()}
        return {k: v[group.index(edge)] for k, v in chunks.items()}

    # -- analytic cost -------------------------------------------------------------------------------
    def _layers(self, arch):
        """(in_ch, out_ch, window, stride, input_size, other_params) per conv / dense layer, where
        other_params counts the BN affine or bias that belongs to it."""
        a = self.validate(arch)
        size = tuple(self.input_shape[:-1])
        c = self.channels
        layers = [(self.input_shape[-1], c, 3, 1, size, 2 * c)]  # stem conv + BN
        for stage in range(self.stages):
            width = c * 2 ** stage
            if stage:
                half = tuple((d + 1) // 2 for d in size)
                layers += [(width // 2, width, 3, 2, size, 2 * width),  # conv_a + BN
                           (width, width, 3, 1, half, 2 * width),       # conv_b + BN
                           (width // 2, width, 1, 1, half, 0)]          # 1x1 shortcut after the pool
                size = half
            cell = [(width, width, 3 if op == CONV3 else 1, 1, size, 2 * width) for op in a if op in (CONV1, CONV3)]
            layers += cell * self.cells_per_stage
        top = c * 2 ** (self.stages - 1)
        layers.append((top, self.num_classes, 1, 1, (), self.num_classes + 2 * top))  # head BN + dense
        return layers

    def params(self, arch) -> int:
        """Trainable parameters of the architecture's standalone network (BN running stats excluded)."""
        return sum(cin * cout * window ** len(size) + other
                   for cin, cout, window, _, size, other in self._layers(arch))

    def flops(self, arch) -> int:
        """Forward FLOPs for one example: 2 x the multiply-adds of every conv and dense layer, counting
        only taps that fall on real (not zero-padded) inputs, as XLA's cost analysis does.
        Element-wise work (BN, ReLU, pooling, additions) is not counted."""
        return sum(2 * cin * cout * conv_taps(size, window, stride)
                   for cin, cout, window, stride, size, _ in self._layers(arch))


def conv_taps(size: tuple, window: int, stride: int) -> int:
    """Multiply-adds per (input, output) channel pair of a conv with padding window // 2: the number
    of (output position, kernel tap) pairs that land inside the input. A dense layer has size ()."""
    total = 1
    pad = window // 2
    for n in size:
        outputs = (n + 2 * pad - window) // stride + 1
        total *= sum(1 for o in range(outputs) for t in range(window) if 0 <= o * stride - pad + t < n)
    return total
