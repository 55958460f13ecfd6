"""Search primitives for an ordinary Linen module: `Choice`, `Conv`, `DepthwiseConv`, `Dense`,
`Embed`, `LayerNorm`, `MultiHeadAttention`, `Repeat`, `InputChoice`.

A primitive reads how to behave from the active `_Context`, set by the wrappers in `space.py`:
- "trace": record each decision (name, options, enclosing `Repeat` blocks and `Choice` candidates)
  and run the largest option;
- "supernet": read the decision's weight row float[K] and mix masks (one shape for every architecture);
- "plain": constructing a primitive returns the plain Flax layer (or function) it stands for, at
  the chosen size and bound to the primitive's own scope (the extracted network: `_Primitive`);
- "fixed": the primitive itself runs the chosen option at static size (the drawn layer list);
- "probe": sizes as in "fixed", but every candidate and block runs (as in "trace"), and each layer
  records its cost terms with the branches it sits in, so counts can be taken for any architecture.
Outside those wrappers a primitive raises: its decisions would be unknown.
"""

from __future__ import annotations

import functools
import inspect
import itertools
import operator
import re
import threading
import warnings
from typing import Any, Callable, Sequence

import flax.linen as nn
import flax.linen.module as flax_module
import jax
import jax.numpy as jnp
import numpy as np

from supernet.layers import conv_in_branch, depthwise_conv

_LOCAL = threading.local()
# Flax's defaults for nn.Conv and nn.Dense, so a primitive's variables start as the plain layer's would.
_KERNEL_INIT, _BIAS_INIT = nn.initializers.lecun_normal(), nn.initializers.zeros


class _Context:
    """What the primitives of one call see: the mode plus the decisions' rows or choices."""

    def __init__(self, mode: str, rows: dict | None = None, choices: dict | None = None, grouped: bool = False,
                 root: int = 1):
        self.mode = mode
        self.root = root                # leading scope names before the user's module's (its wrapper's child name)
        self.grouped = grouped          # depthwise convs as XLA grouped convs (the backend policy)
        self.rows = rows or {}          # supernet: name -> float[K] weight row
        self.choices = choices or {}    # fixed: name -> chosen option index
        self.indices: dict = {}         # supernet, sparse: name -> int32 chosen option (the row's largest)
        self.branch_depth = 0           # supernet, sparse: how many conditionals the current layer runs in
        self.decisions: dict[str, dict] = {}   # trace: name -> record, in call order
        self.repeat_stack: list[tuple[str, int]] = []   # enclosing (repeat decision, block index)
        self.choice_stack: list[tuple[str, int]] = []   # enclosing (choice decision, candidate index)
        self.terms: dict[tuple, list] = {}   # probe: (module path, kind) -> [FLOPs per example, branches]
        self.branches: dict[tuple, tuple] = {}   # probe: module path -> the branches it runs in
        self.convs: set[tuple] = set()           # probe: paths of conv layers (kernels crop spatially)
        self.channel_masks: dict[int, tuple] = {}   # supernet: id(output) -> (output, its width mask)

    @property
    def sized(self) -> bool:
        """Whether layers take the chosen sizes (not the largest)."""
        return self.mode in ("plain", "fixed", "probe")

    @property
    def fixed(self) -> bool:
        """Whether only the chosen option runs (a primitive left in place in the plain mode, as
        one in a list attribute of setup(), behaves as in "fixed")."""
        return self.mode in ("plain", "fixed")

    def count(self, module: nn.Module, kind: str, flops: int):
        """probe: adds a layer's cost term (its FLOPs per example) with the branches it runs in."""
        if self.mode == "probe":
            key = (tuple(module.scope.path), kind)
            entry = self.terms.setdefault(key, [0, self.where()])
            entry[0] += int(flops)

    def masked(self, y, mask):
        """`y * mask` (a searched width's channel mask). A BatchNorm applied to the result multiplies
        its output by the mask again: normalising would undo a soft mask, as DARTS weights give."""
        out = y * mask
        self.channel_masks[id(out)] = (out, mask)
        return out

    def mask_of(self, x):
        """The width mask `x` was made with by `masked`, or None."""
        entry = self.channel_masks.get(id(x))
        return entry[1] if entry is not None and entry[0] is x else None

    def where(self) -> tuple:
        return tuple(self.repeat_stack), tuple(self.choice_stack)


class active_context:
    """`with active_context(ctx):` makes `ctx` the one primitives read (nesting restores the outer)."""

    def __init__(self, ctx: _Context):
        self.ctx = ctx

    def __enter__(self):
        self.outer = getattr(_LOCAL, "ctx", None)
        _LOCAL.ctx = self.ctx
        return self.ctx

    def __exit__(self, *exc):
        _LOCAL.ctx = self.outer


def current_context() -> _Context | None:
    """The context primitives read now (set by `active_context`), or None outside a space's networks."""
    return getattr(_LOCAL, "ctx", None)


def _context(what: str) -> _Context:
    ctx = getattr(_LOCAL, "ctx", None)
    if ctx is None:
        raise RuntimeError(f"nas.{what} was called outside a search space: build the space with "
                           f"nas.space(module, example_input) and call its supernet() or standalone(arch).")
    return ctx


def _decision_name(module: nn.Module, kind: str, ctx: _Context) -> str:
    """Module path within the user's module (without a wrapper's child name) plus the option kind."""
    if re.fullmatch(rf"{type(module).__name__}_\d+", module.name or ""):
        raise ValueError(f"nas.{type(module).__name__} at {'/'.join(module.scope.path)} has no name: "
                         f"pass name=... so its decision has a stable name.")
    return ".".join(module.scope.path[ctx.root:]) + (f".{kind}" if kind else "")


def _single(module: nn.Module, what: str, options: Sequence[Any], ctx: _Context) -> bool:
    """True when `options` has one entry: it is used as fixed, not searched (a warning says so
    while tracing)."""
    if len(options) == 0:
        raise ValueError(f"nas.{type(module).__name__} {module.name}: {what} has no option; pass at least one.")
    if len(options) == 1 and ctx.mode == "trace":
        warnings.warn(f"nas.{type(module).__name__} {module.name}: {what} has a single option {options[0]!r}, so it "
                      f"is fixed, not a decision; pass a plain value to say so.", stacklevel=3)
    return len(options) == 1


def _register(module: nn.Module, kind: str, options: Sequence[Any], ctx: _Context, **info) -> str:
    """Records the module's own decision `<path>.<kind>` while tracing; returns its name."""
    name = _decision_name(module, kind, ctx)
    _record(name, kind, tuple(str(o) for o in options), tuple(options), ctx, **info)
    return name


def _record(name: str, kind: str, labels: tuple, values: tuple, ctx: _Context, **info):
    """trace: records a decision, or checks a repeated name's options (a repeated name ties
    decisions). A tied decision sits only in the blocks and candidates common to all its uses."""
    if ctx.mode != "trace":
        return
    record = ctx.decisions.get(name)
    if record is None:
        ctx.decisions[name] = dict(labels=labels, values=values, kind=kind, enclosing=tuple(ctx.repeat_stack),
                                   within=tuple(ctx.choice_stack), **info)
        return
    if record["labels"] != labels:
        raise ValueError(f"duplicate decision name {name!r} with different options {record['labels']} and "
                         f"{labels}: rename one of them (a repeated name ties decisions with the same options).")
    record["enclosing"] = tuple(e for e in record["enclosing"] if e in ctx.repeat_stack)
    record["within"] = tuple(e for e in record["within"] if e in ctx.choice_stack)


def _sparse_index(ctx: _Context, module: nn.Module, name: str):
    """The chosen option (int32 scalar) when this call may run only the chosen branch: the supernet
    is sparse (a path, under the sparse backend policy) and nothing is written (a branch of
    `lax.switch` cannot create or update variables the others do not); else None."""
    if ctx.mode != "supernet" or name not in ctx.indices or module.is_initializing() or module.scope.mutable:
        return None
    return ctx.indices[name]


def _in_branch(ctx: _Context, fn: Callable) -> Callable:
    """`fn` marked as running inside a conditional (`ctx.branch_depth`), where convolutions take
    their gradients in the forward layout (`layers.conv_in_branch`)."""
    def run(*args):
        ctx.branch_depth += 1
        try:
            return fn(*args)
        finally:
            ctx.branch_depth -= 1
    return run


def _row(ctx: _Context, name: str, n: int) -> jax.Array:
    return ctx.rows[name][:n]


def _centre_mask(big: int, small: int) -> np.ndarray:
    lo = (big - small) // 2
    return (np.arange(big) >= lo) & (np.arange(big) < lo + small)


def conv_taps(size: int, k: int, stride: int = 1, same: bool = True, low: int | None = None) -> int:
    """Kernel taps that land inside the input, summed over output positions along one axis
    (padding taps multiply zeros, and XLA's cost analysis does not count them). `low`: the padding
    before the input when it is not XLA's SAME split (nas.Conv pads (k-1)/2 on each side)."""
    out = -(-size // stride) if same else (size - k) // stride + 1
    if low is None:
        low = max((out - 1) * stride + k - size, 0) // 2 if same else 0
    starts = np.arange(out) * stride - low
    return int(np.sum(np.clip(starts + k, 0, size) - np.clip(starts, 0, size)))


def _label(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


class Value:
    """A decision you name, shared by every primitive it is passed to (NNI's label): a `Conv`'s or
    `Dense`'s `features`, a conv's `kernel_size` or a `Repeat`'s `depth`. `map(fn)` is a size
    that follows it, `derive(fn, a, b)` one that follows several:

        width = nas.Value("width", (0.5, 1.0))                       # one decision for the network
        nas.Conv(features=width.map(lambda m: int(32 * m)), name="stem")

    `labels`: the options' names in architecture strings (default: `3`, `0.5`). With one option it
    is fixed, not a decision."""

    def __init__(self, name: str, options: Sequence[Any], labels: Sequence[str] | None = None):
        self.name, self.options = str(name), tuple(options)
        self.labels = tuple(str(x) for x in labels) if labels is not None else tuple(map(_label, self.options))
        if not self.name or any(ch in self.name for ch in ",="):
            raise ValueError(f"nas.Value name {name!r} is empty or holds ',' or '=', which architecture strings use.")
        if not self.options or len(self.labels) != len(self.options) or len(set(self.labels)) != len(self.labels):
            raise ValueError(f"nas.Value {self.name!r}: options {self.options} with labels {self.labels}; pass at "
                             f"least one option and one distinct label per option.")

    def map(self, fn: Callable) -> "Derived":
        """A size `fn(option)` that follows this decision."""
        return derive(fn, self)

    def __repr__(self):
        return f"nas.Value({self.name!r}, {self.options})"


class Derived:
    """A size `fn(*options)` that follows one or more `Value`s (see `derive`)."""

    def __init__(self, fn: Callable, values: tuple):
        self.fn, self.values = fn, values

    def __repr__(self):
        return f"nas.derive({getattr(self.fn, '__name__', 'fn')}, {', '.join(v.name for v in self.values)})"


def derive(fn: Callable, *values: Value) -> Derived:
    """A size that follows several decisions: `fn(option of each value)` -> int, e.g. an MBConv's
    hidden width `derive(lambda m, e: int(16 * m * e), width, expand)`."""
    if not values or not all(isinstance(v, Value) for v in values):
        raise ValueError(f"nas.derive takes a function and one or more nas.Value, got {values}.")
    return Derived(fn, values)


def _size(module: nn.Module, kind: str, spec, ctx: _Context) -> tuple:
    """(size, the option sizes or None, their weights float[n] or None) of a module's `kind`
    given as an int (fixed), a tuple (the module's own decision `<path>.<kind>`), a `Value` or a
    `derive`d size. `size` is the chosen one where layers are sized, else the largest; the option
    sizes run over every combination of the decisions' options (None: nothing is searched); the
    weights, in the supernet only, are the products of the decisions' rows."""
    if isinstance(spec, Value):
        spec = derive(_identity, spec)
    if not isinstance(spec, Derived):
        if not isinstance(spec, (tuple, list)):
            return _whole(module, kind, spec), None, None
        options = tuple(spec)
        if _single(module, kind, options, ctx):
            return _whole(module, kind, options[0]), None, None
        if len(set(options)) != len(options):
            raise ValueError(f"nas.{type(module).__name__} {module.name}: {kind}={options} repeats an option; a tuple "
                             f"lists the options to search ({kind}=(3, 5)); for one fixed size pass an int.")
        spec = derive(_identity, Value(_decision_name(module, kind, ctx), options, tuple(map(str, options))))
    searched = [v for v in spec.values if len(v.options) > 1]   # a one-option Value is a constant
    for v in searched:
        _record(v.name, kind, v.labels, v.options, ctx)
    combos = list(itertools.product(*[range(len(v.options)) for v in spec.values]))
    sizes = [_whole(module, kind, spec.fn(*[v.options[i] for v, i in zip(spec.values, combo)])) for combo in combos]
    if not searched:
        return sizes[0], None, None
    if ctx.sized:
        chosen = tuple(ctx.choices[v.name] if len(v.options) > 1 else 0 for v in spec.values)
        return sizes[combos.index(chosen)], sizes, None
    weights = None
    if ctx.mode == "supernet":
        weights = jnp.ones((1,))
        for v in spec.values:
            row = _row(ctx, v.name, len(v.options)) if len(v.options) > 1 else jnp.ones((1,))
            weights = (weights[:, None] * row[None, :]).reshape(-1)   # itertools.product's order
    return max(sizes), sizes, weights


def _identity(x):
    return x


SMALLEST = {"features": 1, "kernel_size": 1, "depth": 0}   # the least size of each kind (others: 1)
# Decisions of these kinds choose among sizes, so the largest option is the largest size.
SIZE_KINDS = ("features", "kernel_size", "depth", "num_heads", "out_features")


def _whole(module: nn.Module, kind: str, value) -> int:
    """`value` as an int, refused unless it is a whole number of at least `SMALLEST[kind]`."""
    least = SMALLEST.get(kind, 1)
    whole = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    if not whole or value != int(value) or int(value) < least:
        raise ValueError(f"nas.{type(module).__name__} {module.name}: {kind} {value!r} is not a whole number >= "
                         f"{least}; a Value of other options needs .map(), e.g. width.map(lambda m: int(32 * m)).")
    return int(value)


class _Primitive(nn.Module):
    """What every primitive shares: in the "plain" mode (`space.standalone`), constructing one lets
    Flax name it and give it its scope, exactly as in the supernet, and returns the plain Flax
    layer or function it stands for (`_plain`), bound to that scope, so the extracted network holds
    no `nas` module and its variables sit where the supernet's do."""

    def __new__(cls, *args, **kwargs):
        module = super().__new__(cls)
        ctx = current_context()
        if ctx is None or ctx.mode != "plain" or not _attaches_now(kwargs):
            return module
        module.__init__(*args, **kwargs)   # Flax names it and pushes its scope
        return module._plain(ctx)

    def __post_init__(self):
        """A primitive assigned to an attribute in setup() is named and bound only now: in the plain
        mode the attribute is set to what it stands for instead (in a list or dict it stays)."""
        super().__post_init__()
        ctx, parent = current_context(), self.parent
        if (ctx is not None and ctx.mode == "plain" and self.scope is not None and isinstance(parent, nn.Module)
                and parent._state.in_setup and parent.__dict__.get(self.name) is self):
            object.__setattr__(parent, self.name, self._plain(ctx))

    @nn.nowrap
    def _plain(self, ctx: _Context):
        raise NotImplementedError


def _attaches_now(kwargs: dict) -> bool:
    """Whether a module constructed now is bound at once (inside a compact method), as the plain
    mode needs; one built in setup() is bound when assigned (`_Primitive.__post_init__`)."""
    parent = kwargs.get("parent", flax_module._context.module_stack[-1])
    return isinstance(parent, nn.Module) and parent.scope is not None and not parent._state.in_setup


def _unattached(make: Callable):
    """`make()` with no module around it, so Flax neither names nor attaches what it builds."""
    stack = flax_module._context.module_stack
    stack.append(None)
    try:
        return make()
    finally:
        stack.pop()


def _prefix_mask(largest: int, sizes, weights) -> jax.Array:
    """float[largest]: each option's prefix of `sizes[i]` ones, mixed by the options' `weights`
    (a searched width's channels, an attention's heads)."""
    return weights @ np.stack([np.arange(largest) < size for size in sizes]).astype(np.float32)


class _Searchable(_Primitive):
    """Shared logic of the primitives with a searched width (`features`): `Conv`, `Dense`, `Embed`,
    `LayerNorm`, `Prefix`."""

    @nn.nowrap
    def _width(self, ctx: _Context):
        """(static width to build, float mask[width] or None)."""
        width, _, _, mask = self._widths(ctx)
        return width, mask

    @nn.nowrap
    def _widths(self, ctx: _Context):
        """(static width to build, the option widths, their weights, float mask[width]), the last
        three None when the width is not searched."""
        width, sizes, weights = _size(self, "features", self.features, ctx)
        if weights is None:
            return width, sizes, None, None
        return width, sizes, weights, _prefix_mask(width, sizes, weights)


class Prefix(_Searchable):
    """The first `features` channels of its input (an int, a tuple or a `Value`): in the supernet
    the channels past the chosen width are zeroed, in the extracted network sliced off. For an
    input that stands in for a searched-width layer (a body called without its stem)."""
    features: Any

    @nn.compact
    def __call__(self, x):
        ctx = _context("Prefix")
        width, channel_mask = self._width(ctx)
        if x.shape[-1] < width:
            raise ValueError(f"nas.Prefix {self.name}: input of shape {x.shape} has fewer than {width} channels.")
        x = x[..., :width]
        return x if channel_mask is None else ctx.masked(x, channel_mask)

    @nn.nowrap
    def _plain(self, ctx: _Context):
        return operator.itemgetter((Ellipsis, slice(0, self._width(ctx)[0])))


def _per_axis(value, rank: int, what: str, name) -> tuple:
    """An int (the same along every spatial axis) or a sequence of `rank` ints."""
    if isinstance(value, (tuple, list)):
        if len(value) != rank:
            raise ValueError(f"nas.Conv {name}: {what}={tuple(value)} has {len(value)} entries but the input has "
                             f"{rank} spatial axes; pass one int or {rank} ints.")
        return tuple(int(v) for v in value)
    return (int(value),) * rank


def _dimension_numbers(rank: int) -> jax.lax.ConvDimensionNumbers:
    """Channels-last input and output, kernel (spatial..., in, out), for `rank` spatial axes."""
    spatial = tuple(range(1, rank + 1))
    return jax.lax.ConvDimensionNumbers((0, rank + 1) + spatial, (rank + 1, rank) + tuple(range(rank)),
                                        (0, rank + 1) + spatial)


def _centred_padding(k: int, rank: int) -> list:
    """(k-1)/2 zeros on each side of every spatial axis: SAME's output size, and a centre crop of
    the largest kernel stays centred at any stride (XLA's SAME would shift an odd kernel by one
    when the stride leaves a remainder)."""
    return [((k - 1) // 2, (k - 1) // 2)] * rank


class Conv(_Searchable):
    """A convolution (channels last, SAME output size) whose width and kernel size may be searched.

    The spatial rank follows the input: x float[N, L, C] is a 1-D convolution, [N, H, W, C] a 2-D
    one (any rank x.ndim - 2 works).

    Attributes:
      features: int (fixed), tuple of ints (a decision named `<path>.features`), or a `Value` or
        `derive`d size (decisions shared with other layers).
      kernel_size: int k (fixed: k along every spatial axis), tuple of odd ints (a decision
        `<path>.kernel_size`; each option k is k along every spatial axis) or a `Value`.
      strides: int (the same along every spatial axis) or one int per spatial axis.
      use_bias: as in `nn.Conv`.
    In the supernet one kernel of the largest size serves every option: a prefix of the output
    channels and a centre crop of the kernel; channels past the chosen width are zero.
    Returns float[N, *spatial', max(features)] (supernet) or [N, *spatial', chosen] (extracted).
    """
    features: Any
    kernel_size: Any = 3
    strides: Any = 1
    use_bias: bool = True

    @nn.compact
    def __call__(self, x):
        ctx = _context("Conv")
        rank = x.ndim - 2
        if rank < 1:
            raise ValueError(f"nas.Conv {self.name}: input of shape {x.shape} has no spatial axis; pass "
                             f"(N, L, C) or (N, H, W, C), or use nas.Dense.")
        width, widths, width_weights, channel_mask = self._widths(ctx)
        strides = _per_axis(self.strides, rank, "strides", self.name)
        unit = all(s == 1 for s in strides)
        k, kernel, sizes, weights = _kernel(self, ctx, rank, (x.shape[-1], width))
        pairs, pair_weights = _sparse_sizes(ctx, (k, sizes, weights), (width, widths, width_weights))
        if unit and 1 < len(pairs) <= MAX_SWITCH_BRANCHES:   # a sparse path: only the chosen pair runs
            y = _switched(x, kernel.astype(x.dtype), pairs, pair_weights, conv_in_branch)
        else:
            kernel = _masked_kernel(kernel, k, sizes, weights).astype(x.dtype)
            y = conv_in_branch(x, kernel) if unit and ctx.branch_depth else jax.lax.conv_general_dilated(
                x, kernel, strides, _centred_padding(k, rank), dimension_numbers=_dimension_numbers(rank))
        y = _biased(self, ctx, y)
        ctx.count(self, "macs", 2 * _taps(x, k, strides) * x.shape[-1] * width)
        return y if channel_mask is None else ctx.masked(y, channel_mask)

    @nn.nowrap
    def _plain(self, ctx: _Context):
        width, _ = self._width(ctx)
        k = _size(self, "kernel_size", self.kernel_size, ctx)[0]

        def conv(x):   # the rank follows the input
            rank = x.ndim - 2
            return nn.Conv(width, (k,) * rank, _per_axis(self.strides, rank, "strides", self.name),
                           _centred_padding(k, rank), use_bias=self.use_bias, name=self.name,
                           parent=self.scope)(x)
        return conv


class DepthwiseConv(_Primitive):
    """A depthwise convolution (one k^rank filter per input channel, channels last, (k-1)/2 zeros on
    each side) whose kernel size may be searched; MobileNet's middle layer.

    Attributes:
      kernel_size: int k (fixed), tuple of odd ints (a decision `<path>.kernel_size`) or a `Value`.
      strides: int, the same along every spatial axis.
      use_bias: as in `nn.Conv`.
    The channels follow the input, so a narrower searched width before it gives a narrower layer
    (in the supernet its channels past the width stay zero). One kernel of the largest size serves
    every option (a centre crop). Computed as sums of shifted inputs, or as an XLA grouped
    convolution when the backend policy in force when the space was built says `depthwise="grouped"`
    (`supernet.layers.depthwise_conv`). Returns float[N, *spatial', C].
    """
    kernel_size: Any = 3
    strides: int = 1
    use_bias: bool = False

    @nn.compact
    def __call__(self, x):
        ctx = _context("DepthwiseConv")
        rank, channels = x.ndim - 2, x.shape[-1]
        k, kernel, sizes, weights = _kernel(self, ctx, rank, (1, channels))
        kernel = _masked_kernel(kernel, k, sizes, weights)
        y = _biased(self, ctx, depthwise_conv(x, kernel.astype(x.dtype), int(self.strides), grouped=ctx.grouped))
        ctx.count(self, "macs", 2 * _taps(x, k, (int(self.strides),) * rank) * channels)
        return y

    @nn.nowrap
    def _plain(self, ctx: _Context):
        """Flax's depthwise layer, a grouped `nn.Conv`, under the grouped policy; under the CPU's
        slices policy, where XLA:CPU runs that ~50x slower forward, a function holding the same
        variables in the same scope and computing the sums of shifted inputs (`depthwise_conv`)."""
        k, scope, strides = _size(self, "kernel_size", self.kernel_size, ctx)[0], self.scope, int(self.strides)

        def depthwise(x):   # the channels follow the input
            rank, channels = x.ndim - 2, x.shape[-1]
            if ctx.grouped:
                return nn.Conv(channels, (k,) * rank, strides, _centred_padding(k, rank),
                               feature_group_count=channels, use_bias=self.use_bias, name=self.name,
                               parent=scope)(x)
            kernel = scope.param("kernel", _KERNEL_INIT, (k,) * rank + (1, channels))
            y = depthwise_conv(x, kernel.astype(x.dtype), strides, grouped=False)
            return y + scope.param("bias", _BIAS_INIT, (channels,)) if self.use_bias else y
        return depthwise


def _kernel(module: nn.Module, ctx: _Context, rank: int, io: tuple) -> tuple:
    """(static kernel size k, the `kernel` parameter [k]*rank + io, the option sizes, their weights)
    of a conv whose `kernel_size` is an int (fixed), a tuple of odd ints (a decision) or a `Value`
    (sizes and weights as `_size` gives them)."""
    k, sizes, weights = _size(module, "kernel_size", module.kernel_size, ctx)
    if any(size % 2 == 0 for size in sizes or (k,)):
        raise ValueError(f"nas.{type(module).__name__} {module.name}: kernel sizes must be odd to share a centred "
                         f"kernel; got {tuple(sizes or (k,))}.")
    return k, module.param("kernel", _KERNEL_INIT, (k,) * rank + tuple(io)), sizes, weights


def _masked_kernel(kernel, k: int, sizes, weights):
    """In the supernet, `kernel` masked to the chosen centre (mixed by the decision's row)."""
    if weights is None:
        return kernel
    rank = kernel.ndim - 2
    masks = np.stack([_centre_crop_mask(k, s, rank) for s in sizes]).astype(np.float32)
    return kernel * jnp.tensordot(weights, masks, 1)[..., None, None]


MAX_SWITCH_BRANCHES = 16   # distinct sizes a sparse nas.Conv / nas.Dense switches over; more: masked


def _sparse_sizes(ctx: _Context, kernel: tuple, width: tuple):
    """On a sparse supernet's path, (the distinct (kernel size, width) pairs of a layer, their
    weights float[pairs]) from (size, option sizes, their weights) of each as `_size` gives them (a
    `Value`'s sizes may repeat); else ((), None)."""
    if not ctx.indices or (kernel[2] is None and width[2] is None):
        return (), None
    options = [(size,) if weights is None else sizes for size, sizes, weights in (kernel, width)]
    rows = [jnp.ones((1,), jnp.float32) if weights is None else weights for _, _, weights in (kernel, width)]
    pairs = [(s, f) for s in options[0] for f in options[1]]
    distinct = list(dict.fromkeys(pairs))
    merge = np.asarray([[pair == d for d in distinct] for pair in pairs], np.float32)
    return distinct, (rows[0][:, None] * rows[1][None, :]).reshape(-1) @ merge


def _switched(x, kernel, pairs: list, weights, apply: Callable):
    """A sparse path's layer: only the chosen (kernel size, width) pair runs (`lax.switch` over
    `pairs` on one-hot rows), `apply(x, kernel)` on the centre crop of the kernel's spatial axes and
    the prefix of its output channels, zero-padded to the full width and times the pair's weight
    (1: GDAS's straight-through gradient)."""
    full, spatial = kernel.shape[-1], kernel.ndim - 2

    def branch(s, f):
        start = (kernel.shape[0] - s) // 2 if spatial else 0
        window = (slice(start, start + s),) * spatial + (slice(None), slice(0, f))
        return lambda x, kernel: jnp.pad(apply(x, kernel[window]), [(0, 0)] * (x.ndim - 1) + [(0, full - f)])
    index = jnp.argmax(weights)
    return jax.lax.switch(index, [branch(s, f) for s, f in pairs], x, kernel) * weights[index].astype(x.dtype)


def _biased(module: nn.Module, ctx: _Context, y):
    """`y` plus the module's bias over its last axis when `use_bias` (counted: one FLOP per element)."""
    if not module.use_bias:
        return y
    ctx.count(module, "bias", np.prod(y.shape[1:]))
    return y + module.param("bias", _BIAS_INIT, (y.shape[-1],))


def _taps(x, k: int, strides: tuple) -> int:
    """Kernel taps on real input summed over output positions (every spatial axis, (k-1)/2 padding)."""
    return int(np.prod([conv_taps(n, k, s, low=(k - 1) // 2) for n, s in zip(x.shape[1:-1], strides)]))


def _centre_crop_mask(big: int, small: int, rank: int) -> np.ndarray:
    """bool[big]*rank: the centred small^rank window of a big^rank kernel."""
    line = _centre_mask(big, small)
    mask = line
    for _ in range(rank - 1):
        mask = np.multiply.outer(mask, line)
    return mask


class Dense(_Searchable):
    """A dense layer whose width may be searched.

    Attributes:
      features: int (fixed), tuple of ints (a decision named `<path>.features`), or a `Value` or
        `derive`d size (decisions shared with other layers).
      use_bias: as in `nn.Dense`.
    Returns float[..., max(features)] in the supernet (zeros past the chosen width), [..., chosen]
    extracted.
    """
    features: Any
    use_bias: bool = True

    @nn.compact
    def __call__(self, x):
        ctx = _context("Dense")
        width, widths, weights, channel_mask = self._widths(ctx)
        kernel = self.param("kernel", _KERNEL_INIT, (x.shape[-1], width)).astype(x.dtype)
        pairs, pair_weights = _sparse_sizes(ctx, (1, None, None), (width, widths, weights))
        if 1 < len(pairs) <= MAX_SWITCH_BRANCHES:   # a sparse path: only the chosen width runs
            y = _switched(x, kernel, pairs, pair_weights, operator.matmul)
        else:
            y = x @ kernel
        y = _biased(self, ctx, y)
        ctx.count(self, "macs", 2 * int(np.prod(x.shape[1:-1])) * x.shape[-1] * width)
        return y if channel_mask is None else ctx.masked(y, channel_mask)

    @nn.nowrap
    def _plain(self, ctx: _Context):
        return nn.Dense(self._width(ctx)[0], use_bias=self.use_bias, name=self.name, parent=self.scope)


SCORE_FLOPS = 4  # per attention score: the softmax's max, subtraction, exponential and division


def attention_flops(queries: int, keys: int, heads: int, features: int) -> int:
    """FLOPs per example of an attention's two score einsums (2 x multiply-adds), softmax and
    query scaling, over `features` = heads x head_dim; its dense projections count on their own."""
    return 4 * queries * keys * features + SCORE_FLOPS * heads * queries * keys + queries * features


class MultiHeadAttention(_Primitive):
    """Self-attention whose number of heads may be searched, the heads sharing their weights (as in
    AutoFormer): the query, key, value and output projections hold the largest count's heads of
    `head_dim` features each, and an option of h heads uses the first h. Extracted, it is Flax's
    `nn.MultiHeadDotProductAttention(num_heads=h, qkv_features=h * head_dim)` with the same
    variables (`query`, `key`, `value`, `out`).

    Attributes:
      num_heads: int (fixed), tuple of ints (a decision named `<path>.num_heads`) or a `Value`.
      head_dim: features per head (fixed, so the attention's scale is the same for every option).
      out_features: the output width: an int, a tuple or a `Value` as `Dense`'s `features` (a
        searched width of a residual stream: the same `Value` as the layers that write it); None:
        the input's.
      use_bias: as in `nn.MultiHeadDotProductAttention`.
    Call: `(x, mask=None)`, x float[batch..., length, features]; `mask` as Flax's, broadcast over
    the heads (e.g. `nn.make_attention_mask`). Every head runs in the supernet (masked, on the CPU
    too). Returns float[batch..., length, out_features].
    """
    num_heads: Any
    head_dim: int
    out_features: int | None = None
    use_bias: bool = True

    @nn.compact
    def __call__(self, x, mask=None):
        ctx = _context("MultiHeadAttention")
        heads, sizes, weights = _size(self, "num_heads", self.num_heads, ctx)
        head_dim = _whole(self, "head_dim", self.head_dim)
        out_features = x.shape[-1] if self.out_features is None else self.out_features
        width, widths, width_weights = _size(self, "out_features", out_features, ctx)
        project = functools.partial(nn.DenseGeneral, features=(heads, head_dim), axis=-1, use_bias=self.use_bias)
        query, key, value = (project(name=name)(x) for name in ("query", "key", "value"))
        y = nn.dot_product_attention(query, key, value, mask=mask)   # [..., length, heads, head_dim]
        if weights is not None:   # the supernet: heads past the chosen count contribute nothing
            y = y * _prefix_mask(heads, sizes, weights)[:, None]
        y = nn.DenseGeneral(width, axis=(-2, -1), use_bias=self.use_bias, name="out")(y)
        length = int(np.prod(x.shape[1:-1]))
        ctx.count(self, "scores", attention_flops(length, length, heads, heads * head_dim))
        return y if width_weights is None else ctx.masked(y, _prefix_mask(width, widths, width_weights))

    @nn.nowrap
    def _plain(self, ctx: _Context):
        heads = _size(self, "num_heads", self.num_heads, ctx)[0]
        out = None if self.out_features is None else _size(self, "out_features", self.out_features, ctx)[0]
        return nn.MultiHeadDotProductAttention(num_heads=heads, qkv_features=heads * int(self.head_dim),
                                               out_features=out, use_bias=self.use_bias,
                                               name=self.name, parent=self.scope)


class Embed(_Searchable):
    """An embedding table whose width may be searched (e.g. a learned positional embedding added to
    a searched embedding width: the same `Value`). Extracted, it is `nn.Embed(num_embeddings,
    chosen width)` with the same `embedding` variable (its prefix of columns).

    Attributes:
      num_embeddings: the number of rows (fixed).
      features: int, tuple of ints or `Value`: the width, as `Dense`'s.
    Call: `(indices)`, int[...]; returns float[..., max(features)] in the supernet (zeros past the
    chosen width), [..., chosen] extracted.
    """
    num_embeddings: int
    features: Any

    @nn.compact
    def __call__(self, indices):
        ctx = _context("Embed")
        width, channel_mask = self._width(ctx)
        rows = _whole(self, "num_embeddings", self.num_embeddings)
        table = self.param("embedding", nn.linear.default_embed_init, (rows, width))
        y = jnp.take(table, indices, axis=0)
        return y if channel_mask is None else ctx.masked(y, channel_mask)

    @nn.nowrap
    def _plain(self, ctx: _Context):
        return nn.Embed(self.num_embeddings, self._width(ctx)[0], name=self.name, parent=self.scope)


LAYER_NORM_FLOPS = 7   # per element, as XLA's cost analysis counts a layer normalisation at evaluation


class LayerNorm(_Searchable):
    """Layer normalisation of a searched width: `features` is the width of its input, given as the
    layer that wrote the input was (the same `Value`, or the tuple of a decision of its own). In
    the supernet it normalises over the chosen width's channels only and keeps the rest zero;
    extracted, it is `nn.LayerNorm` over the chosen width, with the same variables. (A plain
    `nn.LayerNorm` after a searched width would normalise over the zeros past it too.)

    Attributes:
      features: int, tuple of ints or `Value`: the input's width.
      epsilon, use_bias, use_scale: as in `nn.LayerNorm`.
    """
    features: Any
    epsilon: float = 1e-6
    use_bias: bool = True
    use_scale: bool = True

    @nn.compact
    def __call__(self, x):
        ctx = _context("LayerNorm")
        width, channel_mask = self._width(ctx)
        if x.shape[-1] != width:
            raise ValueError(f"nas.LayerNorm {self.name}: input of shape {x.shape} has {x.shape[-1]} channels, "
                             f"its features give {width}; pass the width of the layer before it.")
        keep = jnp.ones((width,), x.dtype) if channel_mask is None else channel_mask
        count = keep.sum()
        mean = (x * keep).sum(-1, keepdims=True) / count
        var = jnp.maximum((x * x * keep).sum(-1, keepdims=True) / count - mean * mean, 0.0)
        y = (x - mean) * jax.lax.rsqrt(var + self.epsilon)
        if self.use_scale:
            y = y * self.param("scale", nn.initializers.ones, (width,))
        if self.use_bias:
            y = y + self.param("bias", nn.initializers.zeros, (width,))
        ctx.count(self, "norm", LAYER_NORM_FLOPS * int(np.prod(x.shape[1:])))
        return y if channel_mask is None else ctx.masked(y, channel_mask)

    @nn.nowrap
    def _plain(self, ctx: _Context):
        return nn.LayerNorm(epsilon=self.epsilon, use_bias=self.use_bias, use_scale=self.use_scale,
                            name=self.name, parent=self.scope)


def _describe(module) -> str:
    """A candidate's option label: `Type(name)` for a module you named, else what it computes
    (`Conv(16 3x3)`, `Dense(32)`, the class name, a function's name). No commas: an architecture's
    string separates decisions with them."""
    if not isinstance(module, nn.Module):
        return getattr(module, "__name__", type(module).__name__)
    kind = type(module).__name__
    if module.name and not re.fullmatch(rf"{kind}_\d+", module.name):
        return f"{kind}({module.name})"
    if isinstance(module, (nn.Conv, Conv)):
        size = module.kernel_size
        size = "x".join(map(str, size)) if isinstance(size, (tuple, list)) else str(size)
        strides = module.strides if isinstance(module.strides, (tuple, list)) else (module.strides or 1,)
        step = "" if set(strides) == {1} else f" stride {'x'.join(map(str, strides))}"
        return f"Conv({module.features} {size}{step})"
    if isinstance(module, (nn.Dense, Dense)):
        return f"Dense({module.features})"
    return kind


def _unique(labels: list) -> list:
    """Labels made distinct (`MyPool`, `MyPool#2`), so an architecture's string names one option."""
    seen: dict[str, int] = {}
    out = []
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
        out.append(label if seen[label] == 1 else f"{label}#{seen[label]}")
    return out


class Choice(_Primitive):
    """One of several candidate modules (a decision `<path>`), taken like `nn.Sequential`'s layers.

    Call arguments are forwarded to the chosen candidate. The supernet runs every candidate and
    sums their outputs weighted by the decision's row; candidates must return one shape.
    `labels`: the options' names in architecture strings, one per candidate (default: what each
    candidate computes, `Conv(16 3x3)`, or `Type(name)` for a module you named).
    """
    candidates: Sequence[Callable]
    labels: Sequence[str] | None = None

    @nn.compact
    def __call__(self, *args, **kwargs):
        ctx = _context("Choice")
        classes = [c.__name__ for c in self.candidates if isinstance(c, type)]
        if classes:
            raise ValueError(f"nas.Choice {self.name}: candidate {classes[0]} is a class; pass a module instance "
                             f"(e.g. {classes[0]}(...)) or a function.")
        labels = _unique([_describe(c) for c in self.candidates]) if self.labels is None else self._given_labels()
        if _single(self, "candidates", labels, ctx):
            return self.candidates[0](*args, **kwargs)
        name = _register(self, "", labels, ctx, candidate_paths=None)
        if ctx.fixed:
            return self.candidates[ctx.choices[name]](*args, **kwargs)

        def run(j, candidate):   # inside candidate j: its decisions and costs count only when chosen
            ctx.choice_stack.append((name, j))
            try:
                return candidate(*args, **kwargs)
            finally:
                ctx.choice_stack.pop()

        index = _sparse_index(ctx, self, name)
        if index is not None:   # only the chosen candidate runs (`lax.switch`); times its weight, 1, for GDAS's gradient
            branches = [_in_branch(ctx, lambda module, j=j: run(j, module.candidates[j]))
                        for j in range(len(self.candidates))]
            return nn.switch(index, branches, self) * _row(ctx, name, len(self.candidates))[index]
        outputs = [run(j, candidate) for j, candidate in enumerate(self.candidates)]
        if ctx.mode == "probe":   # every candidate ran, to record its costs; the chosen one flows on
            return outputs[ctx.choices[name]]
        shapes = [jnp.shape(o) for o in outputs]
        for label, shape in zip(labels[1:], shapes[1:]):
            if shape != shapes[0]:
                raise ValueError(f"nas.Choice {name!r}: candidates return different shapes, {labels[0]} -> "
                                 f"{shapes[0]} and {label} -> {shape}; make every candidate return one shape.")
        if ctx.mode == "trace":
            ctx.decisions[name]["candidate_paths"] = tuple(
                tuple(c.scope.path[1:]) if isinstance(c, nn.Module) and c.scope is not None else None
                for c in self.candidates)
            return outputs[-1]
        row = _row(ctx, name, len(outputs))
        return sum(w * o for w, o in zip(row, outputs))

    @nn.nowrap
    def _plain(self, ctx: _Context):
        if len(self.candidates) == 1:
            return self.candidates[0]
        return self.candidates[ctx.choices[_decision_name(self, "", ctx)]]

    def _given_labels(self) -> list:
        labels = [str(label) for label in self.labels]
        if len(labels) != len(self.candidates) or len(set(labels)) != len(labels):
            raise ValueError(f"nas.Choice {self.name}: labels {labels} must name each of the {len(self.candidates)} "
                             f"candidates once; pass one distinct label per candidate.")
        bad = [label for label in labels if not label or any(ch in label for ch in ",=")]
        if bad:
            raise ValueError(f"nas.Choice {self.name}: label {bad[0]!r} is empty or holds ',' or '=', which "
                             f"architecture strings use; rename it.")
        return labels


class Repeat(_Primitive):
    """`block_fn()` repeated up to max(depth) times; the number of blocks is a decision `<path>.depth`
    (or the `Value` given as `depth`).

    `block_fn` is a zero-argument callable returning a module (a module class works), or one that
    takes the block's index (0, 1, ...), e.g. to give the first block of a stage its stride. Each
    block has its own weights (children `block1`, `block2`, ...). Blocks past the chosen depth are
    the identity, so a block that may be skipped must keep its input's shape; the first min(depth)
    blocks always run and may change it. Call arguments go to every block.
    """
    block_fn: Callable
    depth: Any

    @nn.compact
    def __call__(self, x, *args, **kwargs):
        ctx = _context("Repeat")
        if isinstance(self.depth, Derived):
            raise ValueError(f"nas.Repeat {self.name}: depth must be an int, a tuple or a nas.Value, not a derived size.")
        chosen, depths, weights = _size(self, "depth", self.depth, ctx)
        name = None if depths is None else self.depth.name if isinstance(self.depth, Value) else _decision_name(self, "depth", ctx)
        count = chosen if name is None or ctx.fixed else max(depths)
        index = None if name is None else _sparse_index(ctx, self, name)
        for i in range(count):
            if name is None or i < min(depths):   # always runs, so it may change the shape
                x = self._block(i)(x, *args, **kwargs)
                continue
            on = None if weights is None else weights @ jnp.asarray([float(d > i) for d in depths])  # 1: within depth
            ctx.repeat_stack.append((name, i))
            try:
                if index is not None:   # the block runs only within the chosen depth (`lax.cond`)
                    run = _in_branch(ctx, lambda module, x, i=i, on=on: on * module._block(i)(x, *args, **kwargs)
                                     + (1 - on) * x)
                    x = nn.cond(jnp.asarray(depths)[index] > i, run, lambda module, x: x, self, x)
                    continue
                y = self._block(i)(x, *args, **kwargs)
            finally:
                ctx.repeat_stack.pop()
            if ctx.mode == "probe" and i >= chosen:   # run past the chosen depth only to record costs
                continue
            if jnp.shape(y) != jnp.shape(x):
                raise ValueError(f"nas.Repeat {name!r}: block{i + 1} changes the shape {jnp.shape(x)} -> "
                                 f"{jnp.shape(y)}, so it cannot be skipped; keep the shape inside a Repeat.")
            if on is not None:
                y = on * y + (1 - on) * x
            x = y
        return x

    def _block(self, i: int) -> nn.Module:
        return _make_block(self.block_fn, i).clone(parent=self, name=f"block{i + 1}")

    @nn.nowrap
    def _plain(self, ctx: _Context):
        """The chosen number of blocks, each bound to the scope `block<i>` it has in the supernet."""
        count = _size(self, "depth", self.depth, ctx)[0]
        blocks = [_unattached(lambda: _make_block(self.block_fn, i)).clone(parent=self.scope.push(f"block{i + 1}"),
                                                                           name=f"block{i + 1}")
                  for i in range(count)]

        def run(x, *args, **kwargs):
            for block in blocks:
                x = block(x, *args, **kwargs)
            return x
        return run


def _make_block(block_fn: Callable, index: int) -> nn.Module:
    """`block_fn(index)` when it takes a positional argument, else `block_fn()`."""
    if not isinstance(block_fn, type):
        try:
            params = inspect.signature(block_fn).parameters.values()
        except (TypeError, ValueError):
            params = ()
        if any(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty for p in params):
            return block_fn(index)
    return block_fn()


class InputChoice(_Primitive):
    """Which `n_chosen` of several tensors flow on (a decision `<path>`), reduced by "sum", "mean"
    or "concat" (along the last axis). Options are the combinations of inputs, in
    `itertools.combinations` order. Takes a list of same-shape arrays; returns one array."""
    n_chosen: int = 1
    reduction: str = "sum"

    @nn.compact
    def __call__(self, inputs):
        ctx = _context("InputChoice")
        if self.reduction not in ("sum", "mean", "concat"):
            raise ValueError(f"nas.InputChoice reduction must be 'sum', 'mean' or 'concat', got {self.reduction!r}.")
        if not 1 <= self.n_chosen <= len(inputs):
            raise ValueError(f"nas.InputChoice {self.name}: n_chosen={self.n_chosen} but {len(inputs)} inputs; "
                             f"choose between 1 and {len(inputs)}.")
        self._check_shapes(inputs)
        combos = list(itertools.combinations(range(len(inputs)), self.n_chosen))
        reduce = functools.partial(_reduced, reduction=self.reduction)
        if _single(self, f"n_chosen={self.n_chosen} of {len(inputs)} inputs", combos, ctx):
            return reduce(list(inputs))
        name = _register(self, "", ["+".join(map(str, c)) for c in combos], ctx)
        if ctx.sized:
            return reduce([inputs[i] for i in combos[ctx.choices[name]]])
        outputs = [reduce([inputs[i] for i in c]) for c in combos]
        if ctx.mode == "trace":
            return outputs[0]
        return sum(w * o for w, o in zip(_row(ctx, name, len(outputs)), outputs))

    def _check_shapes(self, inputs):
        shapes = [tuple(jnp.shape(x)) for x in inputs]
        compared = [s[:-1] for s in shapes] if self.reduction == "concat" else shapes
        if len(set(compared)) > 1:
            need = "one shape but for the last axis" if self.reduction == "concat" else "one shape"
            raise ValueError(f"nas.InputChoice {self.name}: inputs of shapes {shapes}, but reduction="
                             f"{self.reduction!r} needs {need}; make the inputs match.")

    @nn.nowrap
    def _plain(self, ctx: _Context):
        def select(inputs):
            combos = list(itertools.combinations(range(len(inputs)), self.n_chosen))
            chosen = combos[ctx.choices[_decision_name(self, "", ctx)]] if len(combos) > 1 else combos[0]
            return _reduced([inputs[i] for i in chosen], self.reduction)
        return select


def _reduced(xs: list, reduction: str):
    """The inputs summed, averaged or concatenated along the last axis."""
    if reduction == "concat":
        return jnp.concatenate(xs, axis=-1)
    total = sum(xs)
    return total / len(xs) if reduction == "mean" else total
