"""User-defined chain spaces: pick one operation per position of a simple chain network.

    space = spaces.get("chain", choices={"block1": ["conv", "maxpool"], "block2": ["residual"],
                                         "block3": ["linear", "mlp"]}, channels=16)

The network is a stem (3x3 conv to `channels`, BN, ReLU), then one block per decision in the dict's
order, then global average pool and a dense classifier. Every operation maps
[batch, *spatial, channels] to the same shape (stride 1, same channels), so any sequence is valid,
for 1-D, 2-D or 3-D inputs. The operations (the `OPERATIONS` registry; "C" is `channels`):

    conv       3x3 conv, BN, ReLU
    conv1x1    1x1 conv, BN, ReLU
    conv5x5    5x5 conv, BN, ReLU
    sepconv    depthwise 3x3 conv, pointwise 1x1 conv, BN, ReLU
    residual   ResNet basic block: 3x3 conv, BN, ReLU, 3x3 conv, BN, identity skip, ReLU
    maxpool    3x3 max pool, stride 1
    avgpool    3x3 average pool, stride 1 (padding not counted)
    identity   the input unchanged
    linear     pointwise dense layer (a 1x1 conv with bias), no norm, no activation
    mlp        pointwise dense to 2C, ReLU, pointwise dense back to C (with biases)

There is no `zero` operation: in a chain it would cut the signal and leave a constant network.

The network is an ordinary Linen module (`ChainModule`) with one `nas.Choice` per decision, so
the supernet, the extraction and the layout of its variables are `supernet.nas`'s: a path under
the sparse `nas_path` (the CPU's) runs only the chosen candidate; the masked supernet (the
accelerators' default, and the mixed one of DARTS) computes *every* candidate and returns
`sum_k w_k * op_k(x)`, a step costing the sum of all candidates' costs, unlike NAS-Bench-201's
folded edge, which costs one convolution whatever it picks. With one-hot weights the output is exactly
the chosen path; with soft weights it is the DARTS mixture. The candidates' batch norms are plain
`nn.BatchNorm`s, calibrated per architecture in the supernet (`supernet.nas.space`).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, Mapping

import flax.linen as nn
import numpy as np

from supernet import backend
from supernet.layers import ConvKernel, avg_pool3, check_channels, depthwise_conv, global_pool
from supernet.networks import batch_norm
from supernet.spaces.base import Space


class ConvOp(nn.Module):
    """k x k conv (same channels), BN, ReLU."""
    window: int

    @nn.compact
    def __call__(self, x, train: bool):
        x = ConvKernel(self.window, x.shape[-1], name="conv")(x)
        return nn.relu(batch_norm(False, train, "bn")(x))


class SepConvOp(nn.Module):
    """Depthwise 3x3, pointwise 1x1, BN, ReLU."""
    grouped: bool = False  # the backend policy's depthwise choice (`layers.depthwise_conv`)

    @nn.compact
    def __call__(self, x, train: bool):
        nd, c = x.ndim - 2, x.shape[-1]
        depthwise = self.param("w_depthwise", nn.initializers.kaiming_normal(), (3,) * nd + (1, c))  # w_: host_init draws it as a kernel
        x = ConvKernel(1, c, name="pointwise")(depthwise_conv(x, depthwise, grouped=self.grouped))
        return nn.relu(batch_norm(False, train, "bn")(x))


class ResidualOp(nn.Module):
    """A ResNet basic block with an identity skip."""

    @nn.compact
    def __call__(self, x, train: bool):
        c = x.shape[-1]
        y = nn.relu(batch_norm(False, train, "bn_a")(ConvKernel(3, c, name="conv_a")(x)))
        y = batch_norm(False, train, "bn_b")(ConvKernel(3, c, name="conv_b")(y))
        return nn.relu(x + y)


class MLPOp(nn.Module):
    """Two pointwise dense layers, C -> 2C -> C, ReLU between."""

    @nn.compact
    def __call__(self, x, train: bool):
        c = x.shape[-1]
        return nn.Dense(c, name="fc2")(nn.relu(nn.Dense(2 * c, name="fc1")(x)))


class LinearOp(nn.Module):
    """A pointwise dense layer with bias, no norm or activation."""

    @nn.compact
    def __call__(self, x, train: bool):
        return nn.Dense(x.shape[-1], name="dense")(x)


def _max_pool3(x):
    nd = x.ndim - 2
    return nn.max_pool(x, (3,) * nd, strides=(1,) * nd, padding=[(1, 1)] * nd)


@dataclasses.dataclass(frozen=True)
class Operation:
    """A named block: `make(grouped)` returns a callable `(x, train) -> y` (an unbound Flax module
    for ops with weights, adopted by the `nas.Choice` that holds it; `grouped`: the backend's
    depthwise choice); `params(c, nd)` its trainable parameters; `macs(c, nd)` its multiply-adds
    per spatial position, for `c` channels and `nd` spatial dims."""
    description: str
    make: Callable
    params: Callable[[int, int], int]
    macs: Callable[[int, int], int]


def _stateless(fn):
    def make(grouped):
        def op(x, train):
            return fn(x)
        op.__name__ = fn.__name__
        return op
    return make


def _conv_op(window):
    return Operation(f"{window}x{window} conv, BN, ReLU",
                     lambda grouped: ConvOp(window, parent=None),
                     lambda c, nd: window ** nd * c * c + 2 * c,
                     lambda c, nd: window ** nd * c * c)


OPERATIONS: dict[str, Operation] = {
    "conv": _conv_op(3),
    "conv1x1": _conv_op(1),
    "conv5x5": _conv_op(5),
    "sepconv": Operation("depthwise 3x3 conv, pointwise 1x1 conv, BN, ReLU",
                         lambda grouped: SepConvOp(grouped, parent=None),
                         lambda c, nd: 3 ** nd * c + c * c + 2 * c,
                         lambda c, nd: 3 ** nd * c + c * c),
    "residual": Operation("3x3 conv, BN, ReLU, 3x3 conv, BN, identity skip, ReLU",
                          lambda grouped: ResidualOp(parent=None),
                          lambda c, nd: 2 * (3 ** nd * c * c + 2 * c),
                          lambda c, nd: 2 * 3 ** nd * c * c),
    "maxpool": Operation("3x3 max pool, stride 1", _stateless(_max_pool3), lambda c, nd: 0, lambda c, nd: 0),
    "avgpool": Operation("3x3 average pool, stride 1", _stateless(avg_pool3), lambda c, nd: 0, lambda c, nd: 0),
    "identity": Operation("the input unchanged", _stateless(lambda x: x), lambda c, nd: 0, lambda c, nd: 0),
    "linear": Operation("pointwise dense layer with bias, no norm or activation",
                        lambda grouped: LinearOp(parent=None),
                        lambda c, nd: c * c + c, lambda c, nd: c * c),
    "mlp": Operation("pointwise dense C->2C, ReLU, dense 2C->C",
                     lambda grouped: MLPOp(parent=None),
                     lambda c, nd: 4 * c * c + 3 * c, lambda c, nd: 4 * c * c),
}

RESERVED_NAMES = ("stem", "stem_bn", "head")  # module names of the fixed layers


class ChainModule(nn.Module):
    """The chain as a Linen module: stem, one `nas.Choice` per decision (its candidates the
    operations, labelled by name), global pool and classifier. `head=False` leaves out the pool and
    the classifier and returns the feature map [batch, *spatial, channels]; `stem=False` also
    leaves out the stem, so inputs must already have `channels` channels. Called as (x, train)."""
    decisions: tuple  # (decision name, option names) per decision
    channels: int
    num_classes: int = 10
    head: bool = True
    stem: bool = True
    grouped: bool = False  # the backend's depthwise choice, for `sepconv`

    @nn.compact
    def __call__(self, x, train: bool = False):
        if self.stem:
            x = ConvKernel(3, self.channels, name="stem")(x)
            x = nn.relu(batch_norm(False, train, "stem_bn")(x))
        else:
            check_channels(x, self.channels, "the chain supernet")
        from supernet.nas import Choice   # see ChainSpace.__init__
        for name, options in self.decisions:
            candidates = [OPERATIONS[op].make(self.grouped) for op in options]
            x = Choice(candidates, labels=options, name=name)(x, train)
        if self.head:
            x = nn.Dense(self.num_classes, name="head")(global_pool(x))
        return x


def check_choices(choices) -> list[tuple[str, tuple[str, ...]]]:
    """The user's {decision: [operation, ...]} as a list of pairs; ValueError naming the problem."""
    valid = ", ".join(OPERATIONS)
    example = '{"block1": ["conv", "maxpool"], "block2": ["residual"]}'
    if not isinstance(choices, Mapping):
        raise ValueError(f"chain: `choices` must be a dict of decision name -> list of operations, "
                         f"e.g. {example}; got {type(choices).__name__}.")
    if not choices:
        raise ValueError(f"chain: `choices` is empty; give at least one decision, e.g. {example}.")
    decisions = []
    for name, options in choices.items():
        if not isinstance(name, str) or not name or any(ch in name for ch in ",=/"):
            raise ValueError(f"chain: decision name {name!r} must be a non-empty string without ',', '=' or '/'.")
        if name in RESERVED_NAMES:
            raise ValueError(f"chain: decision name {name!r} is reserved for a fixed layer "
                             f"({', '.join(RESERVED_NAMES)}); rename it, e.g. 'block_{name}'.")
        if not isinstance(options, (list, tuple)):
            raise ValueError(f"chain: decision {name!r} must map to a list of operation names, got "
                             f"{type(options).__name__} {options!r}; write e.g. {name!r}: ['conv'].")
        if not options:
            raise ValueError(f"chain: decision {name!r} has an empty list; give at least one of: {valid}.")
        for op in options:
            if not isinstance(op, str):
                raise ValueError(f"chain: decision {name!r} has a non-string option {op!r}; "
                                 f"options are operation names: {valid}.")
            if op not in OPERATIONS:
                raise ValueError(f"chain: decision {name!r} has unknown operation {op!r}; valid operations: {valid}.")
        if len(set(options)) != len(options):
            raise ValueError(f"chain: decision {name!r} lists an operation twice ({list(options)}); "
                             f"list each operation once.")
        decisions.append((name, tuple(options)))
    return decisions


class ChainSpace(Space):
    """A chain of user-chosen operations; see the module docstring for the operation library.
    The networks and the extraction are those of `ChainModule` traced by `supernet.nas`; the
    counts, the extremes and which options are parameter-free come from the operation table
    (exact and instant). A decision with one operation is a decision here (one option)."""

    name = "chain"

    def __init__(self, choices, channels: int = 16, num_classes: int = 10, input_shape=(32, 32, 3)):
        # Imported here: supernet.nas.space imports supernet.spaces.base, which loads this package.
        from supernet.nas.space import listed
        decisions = check_choices(choices)
        super().__init__(decisions)
        if channels < 1 or num_classes < 2:
            raise ValueError(f"chain: need channels >= 1 and num_classes >= 2, got {channels}, {num_classes}.")
        self.channels = int(channels)
        self.num_classes = int(num_classes)
        self.input_shape = tuple(int(d) for d in input_shape)
        self.grouped = backend.current().depthwise == "grouped"  # the policy, taken once
        self.module = ChainModule(tuple(decisions), self.channels, self.num_classes, grouped=self.grouped)
        self.traced = listed(self.module, np.zeros((1, *self.input_shape), np.float32), decisions)

    def describe(self) -> dict:
        """The space's description, with its channel count."""
        return {**super().describe(), "channels": self.channels}

    def _op_params(self) -> np.ndarray:
        """float[D, K]: parameters of each candidate (inf in padded slots)."""
        nd = len(self.input_shape) - 1
        table = np.full((self.num_decisions, max(self.num_choices)), np.inf)
        for d, opts in enumerate(self.options):
            table[d, :len(opts)] = [OPERATIONS[op].params(self.channels, nd) for op in opts]
        return table

    def largest(self) -> np.ndarray:
        """Per decision the candidate with the most parameters (first on ties)."""
        table = self._op_params()
        return np.where(np.isinf(table), -1, table).argmax(1).astype(np.int32)

    def smallest(self) -> np.ndarray:
        """Per decision the candidate with the fewest parameters (first on ties)."""
        return self._op_params().argmin(1).astype(np.int32)

    def parameter_free(self, arch) -> np.ndarray:
        """Per decision: True where the chosen operation has no weights (pool, identity)."""
        a = self.validate(arch)
        return self._op_params()[np.arange(self.num_decisions), a] == 0  # broadcasts over [n, D]

    def supernet(self, mixed: bool = False, head: bool = True, stem: bool = True):
        """The weight-sharing chain (`supernet.nas.NasSupernet`, called as (x, arch or weights,
        train)). `mixed=False` (a path: one-hot rows) runs only the chosen operations where the
        backend's `nas_path` is sparse (the CPU's), else every candidate weighted by its row;
        `mixed=True` (DARTS's soft rows) always sums them. `head=False` returns features,
        `stem=False` takes `channels`-channel features (`ChainModule`); `body()` is
        `supernet(head=False)`."""
        from supernet.nas.space import NasSupernet   # see __init__
        return NasSupernet(self.module.clone(head=head, stem=stem), self.decision_names, self.num_choices,
                           grouped=self.grouped, sparse=self.traced.sparse and not mixed)

    def standalone(self, arch):
        """The chain with every decision fixed (`supernet.nas.standalone_network`, called as (x, train)):
        the chosen operations only."""
        self._ops(arch)
        return self.traced.standalone(arch)

    def extract_variables(self, variables, arch):
        """Supernet variables (calibrated for `arch`) -> the standalone network's: the fixed layers
        as they are, and of each decision only the chosen candidate's; the supernet's
        `supernet_stats` become the standalone BN's `batch_stats`."""
        return self.traced.extract_variables(variables, arch)

    def _ops(self, arch):
        a = self.validate(arch)
        if a.ndim != 1:
            raise ValueError(f"{self.name}: expected one architecture, got shape {a.shape}.")
        return tuple((name, opts[c]) for name, opts, c in zip(self.decision_names, self.options, a))

    # -- analytic cost ---------------------------------------------------------------------------
    def params(self, arch) -> int:
        """Trainable parameters of the standalone network (BN running statistics excluded)."""
        nd, c, cin = len(self.input_shape) - 1, self.channels, self.input_shape[-1]
        stem = 3 ** nd * cin * c + 2 * c
        head = c * self.num_classes + self.num_classes
        return stem + head + sum(OPERATIONS[op].params(c, nd) for _, op in self._ops(arch))

    def flops(self, arch) -> int:
        """Forward FLOPs per example: 2 x multiply-adds of convs and dense layers (pooling,
        identity, BN, activations and additions count 0)."""
        nd, c, cin = len(self.input_shape) - 1, self.channels, self.input_shape[-1]
        positions = math.prod(self.input_shape[:-1])
        macs = positions * (3 ** nd * cin * c + sum(OPERATIONS[op].macs(c, nd) for _, op in self._ops(arch)))
        return 2 * (macs + c * self.num_classes)
