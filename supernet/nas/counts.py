"""Parameters and FLOPs of a `nas.space`'s extracted network, for any architecture.

A probe runs the user's module once at fixed sizes, with every candidate and every block run, and
each layer records its cost terms with the branches (Repeat blocks, Choice candidates) it sits
in: its parameter tensors, and FLOPs per example from per-layer formulas over the traced shapes.
An architecture's count is the sum of the terms whose branches it takes.

Probing costs a trace of the module, so after `PROBED` distinct architectures the
terms become formulas: each term is a product of one factor per decision (a width, a kernel's taps,
a length: one size per axis), fitted from a probe at the largest architecture and one probe per
other option, and checked against direct probes of the smallest and a few random architectures.
Where a term is not such a product (an axis whose size follows two decisions, e.g. a concatenation
of two searched widths chosen by an input choice), the check fails and every count stays a probe.

FLOPs rule: 2 x multiply-adds of `nas.Conv`, `nas.DepthwiseConv`, `nas.Dense`, `nn.Conv`, `nn.Dense` and
`nn.DenseGeneral` (kernel taps that fall on padding excluded, as XLA does), plus one per output
element for a bias and `NORM_FLOPS` per element for `nn.BatchNorm`, `nn.LayerNorm` (and
`nas.LayerNorm`) and `nn.GroupNorm` (the BN of the supernet becomes a plain `nn.BatchNorm` when extracted), and of an
`nn.MultiHeadDotProductAttention` or a `nas.MultiHeadAttention` besides its dense projections
(`primitives.attention_flops`): 2 x multiply-adds of its two score einsums, `SCORE_FLOPS` per
attention score (softmax) and one per query element (the scaling).
Other work of the user's code (activations, pooling, residual adds) is not counted.
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import numpy as np

from supernet.nas.primitives import (LAYER_NORM_FLOPS, SIZE_KINDS, Conv, DepthwiseConv, _Context, active_context,
                                     attention_flops, conv_taps)

PROBED = 32      # distinct architectures counted by probing before the formulas are fitted
# FLOPs per element of a normalisation at evaluation, as XLA's cost analysis counts them.
NORM_FLOPS = {nn.BatchNorm: 3, nn.LayerNorm: LAYER_NORM_FLOPS, nn.GroupNorm: 6}


def _record(ctx: _Context, next_fun, args, kwargs, context):
    """Interceptor: the branches of every module, and the cost terms of plain Flax layers."""
    m = context.module
    if context.method_name == "__call__":
        ctx.branches.setdefault(tuple(m.scope.path), ctx.where())
        if isinstance(m, (nn.Conv, Conv, DepthwiseConv)):
            ctx.convs.add(tuple(m.scope.path))
    y = next_fun(*args, **kwargs)
    if context.method_name != "__call__" or not isinstance(y, jax.Array | jax.ShapeDtypeStruct | jax.core.Tracer):
        return y
    out = int(np.prod(y.shape[1:]))
    if isinstance(m, (nn.Conv, nn.Dense, nn.DenseGeneral)):
        kernel = m.get_variable("params", "kernel")
        ctx.count(m, "macs", 2 * _macs(m, args[0], y, kernel))
        if getattr(m, "use_bias", False):
            ctx.count(m, "bias", out)
    elif type(m) in NORM_FLOPS:
        ctx.count(m, "norm", NORM_FLOPS[type(m)] * out)
    elif isinstance(m, nn.MultiHeadDotProductAttention):
        ctx.count(m, "scores", _attention_flops(m, args, kwargs))
    return y


def _attention_flops(m, args, kwargs) -> int:
    """`attention_flops` of a plain `nn.MultiHeadDotProductAttention` call."""
    q = args[0]
    k = args[1] if len(args) > 1 and args[1] is not None else kwargs.get("inputs_k", kwargs.get("inputs_kv")) or q
    return attention_flops(int(np.prod(q.shape[1:-1])), int(np.prod(k.shape[1:-1])), m.num_heads,
                           m.qkv_features or q.shape[-1])


def _macs(m, x, y, kernel) -> int:
    """Multiply-adds per example of a plain conv or dense layer."""
    if isinstance(m, nn.Conv):
        strides = m.strides if isinstance(m.strides, (tuple, list)) else (m.strides or 1,) * (kernel.ndim - 2)
        if m.padding in ("SAME", "VALID") and m.kernel_dilation in (1, None) and m.input_dilation in (1, None):
            taps = np.prod([conv_taps(n, k, s, m.padding == "SAME")
                            for n, k, s in zip(x.shape[1:-1], kernel.shape[:-2], strides)])
        else:   # other paddings or dilations: every output position takes the full kernel
            taps = np.prod(y.shape[1:-1]) * np.prod(kernel.shape[:-2])
        return int(taps) * int(np.prod(kernel.shape[-2:])) // max(getattr(m, "feature_group_count", 1), 1)
    features = m.features if isinstance(m.features, (tuple, list)) else (m.features,)
    out_size = int(np.prod(features))
    return int(np.prod(y.shape[1:])) * (int(np.prod(kernel.shape)) // out_size)


class Counts:
    """`params(choices)` and `flops(choices)` for a traced module; `choices` is a canonical tuple
    of (decision name, option index) pairs, as `NasSpace._choices` returns."""

    def __init__(self, module_fn, example, records: dict, names: tuple, num_choices: tuple):
        self.module_fn = module_fn          # () -> a module that calls the user's module on one input
        self.example = example
        self.records, self.names, self.num_choices = records, names, num_choices
        self.probed: dict[tuple, tuple[int, int]] = {}
        self.formula = None                 # fitted terms, or False where they failed their check
        self._convs = None

    def __call__(self, choices: tuple) -> tuple[int, int]:
        """(params, FLOPs per example) of the network with these choices."""
        if choices in self.probed:
            return self.probed[choices]
        if len(self.probed) >= PROBED and self.formula is None:
            self.formula = self.fit()
        if self.formula:
            return self.evaluate(self.formula, choices)
        self.probed[choices] = self.totals(self.probe(choices), choices)
        return self.probed[choices]

    def conv_paths(self) -> set:
        """Module paths of the conv layers (nas and plain): their kernels' leading axes are spatial."""
        if self._convs is None:
            self.probe(self._largest())
        return self._convs

    # -- probing -----------------------------------------------------------------------------------
    def probe(self, choices: tuple) -> dict:
        """{(module path, kind): (size, branches)}: parameter tensors and FLOPs terms, all branches."""
        ctx = _Context("probe", choices=dict(choices))
        model = self.module_fn()

        def init():
            with nn.intercept_methods(functools.partial(_record, ctx)):
                return model.init(jax.random.key(0), self.example)

        with active_context(ctx):
            variables = jax.eval_shape(init)
        self._convs = ctx.convs
        terms = {key: (value, where) for key, (value, where) in ctx.terms.items()}
        for path, leaf in jax.tree_util.tree_leaves_with_path(variables.get("params", {})):
            keys = tuple(k.key for k in path)
            terms[(keys[:-1], "param:" + keys[-1])] = (int(np.prod(leaf.shape)), ctx.branches.get(keys[:-1], ((), ())))
        return terms

    def live(self, where: tuple, choices: dict) -> bool:
        """Whether a term's branches are all taken: each enclosing block within the chosen depth,
        each enclosing candidate the chosen one."""
        repeats, candidates = where
        return (all(self.records[r]["values"][choices[r]] > i for r, i in repeats)
                and all(choices[c] == j for c, j in candidates))

    def totals(self, terms: dict, choices: tuple) -> tuple[int, int]:
        """(params, FLOPs) of one architecture's `choices` from probed per-layer terms."""
        chosen = dict(choices)
        params = flops = 0
        for (_, kind), (value, where) in terms.items():
            if self.live(where, chosen):
                if kind.startswith("param:"):
                    params += value
                else:
                    flops += value
        return params, flops

    # -- formulas ----------------------------------------------------------------------------------
    def fit(self, n_check: int = 4):
        """Per term: its size at the largest architecture and, per decision, the ratio each option
        gives; None-free dict, or False when a direct probe disagrees (counts stay probes)."""
        base = self._largest()
        at_base = self.probe(base)
        ratios = {key: {} for key in at_base}
        for d, name in enumerate(self.names):
            for k in range(self.num_choices[d]):
                if k == dict(base)[name]:
                    continue
                changed = self.probe(tuple((n, k if n == name else c) for n, c in base))
                for key, (value, _) in at_base.items():
                    other = changed.get(key, (None,))[0]
                    if other is None or value == 0:
                        return False
                    if other != value:
                        ratios[key].setdefault(name, np.ones(self.num_choices[d]))[k] = other / value
        formula = {key: (value, where, ratios[key]) for key, (value, where) in at_base.items()}
        rng = np.random.default_rng(0)
        checks = [tuple((n, 0) for n in self.names)]
        checks += [tuple((n, int(rng.integers(c))) for n, c in zip(self.names, self.num_choices))
                   for _ in range(n_check - 1)]
        for choices in checks:
            choices = self._canonical(choices)
            if self.evaluate(formula, choices) != self.totals(self.probe(choices), choices):
                return False
        return formula

    def evaluate(self, formula: dict, choices: tuple) -> tuple[int, int]:
        """(params, FLOPs) of one architecture's `choices` from the per-decision product formulas."""
        chosen = dict(choices)
        params = flops = 0.0
        for (_, kind), (value, where, ratio) in formula.items():
            if not self.live(where, chosen):
                continue
            for name, r in ratio.items():
                value = value * r[chosen[name]]
            if kind.startswith("param:"):
                params += value
            else:
                flops += value
        return int(round(params)), int(round(flops))

    def _largest(self) -> tuple:
        picks = []
        for name in self.names:
            values = self.records[name]["values"]
            numeric = self.records[name]["kind"] in SIZE_KINDS
            picks.append((name, values.index(max(values)) if numeric else 0))
        return self._canonical(tuple(picks))

    def _canonical(self, choices: tuple) -> tuple:
        """Decisions in a skipped block or an unchosen candidate set to 0 (outer decisions first)."""
        chosen = dict(choices)
        for n in chosen:
            record = self.records[n]
            if any(self.records[r]["values"][chosen[r]] <= i for r, i in record["enclosing"]) or \
                    any(chosen[c] != k for c, k in record.get("within", ())):
                chosen[n] = 0
        return tuple(chosen.items())
