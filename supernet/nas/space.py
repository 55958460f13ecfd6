"""`nas.space(module, example_input)`: a user's Linen module with `nas` primitives as a `Space`.

The module is traced once to discover its decisions. The supernet wrapper turns the architecture
into weight rows (`layers.as_weights`) and hands each primitive its row through a context, so one
compiled step serves every architecture. A plain `nn.BatchNorm` inside the supernet is intercepted:
it normalises with batch statistics in training, writes them to `supernet_stats` when that
collection is mutable (calibration), and zeroes channels that a narrower layer switched off; right
after a searched width it multiplies by that width's mask again, so that a soft (DARTS) mixture of
widths is not normalised away.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import warnings
from typing import NamedTuple

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from supernet import backend
from supernet.layers import STATS_COLLECTION, ConvKernel, as_weights, conv_in_branch, nan_if_invalid
from supernet.nas.counts import Counts
from supernet.nas.primitives import SIZE_KINDS, _Context, active_context, current_context
from supernet.spaces.base import Space


def _normalisation_of_searched_widths(next_fun, args, kwargs, context):
    """Inside the supernet: `nn.BatchNorm.__call__` normalises each searched width over its
    chosen channels (`_masked_batch_norm`), and a plain `nn.LayerNorm` right after a searched width
    is refused (it would take the zeros past the chosen width into its statistics, so the supernet
    would not compute the extracted network)."""
    m = context.module
    if context.method_name != "__call__":
        return next_fun(*args, **kwargs)
    if isinstance(m, nn.BatchNorm):
        return _masked_batch_norm(m, args, kwargs)
    if type(m) is nn.LayerNorm and args and current_context().mask_of(args[0]) is not None:
        raise ValueError(f"nn.LayerNorm at {'/'.join(m.scope.path[1:])} normalises a searched width, counting the "
                         f"zeros past the chosen width: use nas.LayerNorm(features=<that width>) there.")
    return next_fun(*args, **kwargs)


def _masked_batch_norm(m: nn.BatchNorm, args, kwargs):
    """`m(*args, **kwargs)` in the supernet (same parameter names)."""
    x = args[0]
    given = kwargs.get("use_running_average", args[1] if len(args) > 1 else None)
    use_stored = nn.merge_param("use_running_average", m.use_running_average, given)
    features, axes = x.shape[-1], tuple(range(x.ndim - 1))
    stored = m.has_variable(STATS_COLLECTION, "mean")
    if use_stored and stored and not m.is_initializing():
        mean = m.get_variable(STATS_COLLECTION, "mean")
        var = m.get_variable(STATS_COLLECTION, "var")
    else:
        mean = x.mean(axes)
        var = jnp.maximum((x * x).mean(axes) - mean * mean, 0.0)
        if m.is_mutable_collection(STATS_COLLECTION):
            m.put_variable(STATS_COLLECTION, "mean", mean)
            m.put_variable(STATS_COLLECTION, "var", var)
    y = (x - mean) * jax.lax.rsqrt(var + m.epsilon)
    if m.use_scale:
        y = y * m.param("scale", m.scale_init, (features,))
    if m.use_bias:
        y = y + m.param("bias", m.bias_init, (features,))
    mask = current_context().mask_of(x)
    if mask is not None:   # a searched width right before: its (soft) mask again, as normalising undid it
        return y * mask
    live = (var > 0) | (mean != 0)   # a channel past the chosen width is exactly zero
    return y * live


def _conv_in_branch(next_fun, args, kwargs, context):
    """Replaces `nn.Conv.__call__` (and the chain space's `layers.ConvKernel`) inside a sparse
    supernet's conditionals, where it can, by the same convolution with forward-layout gradients
    (`layers.conv_in_branch`)."""
    m, ctx = context.module, current_context()
    if context.method_name != "__call__" or not ctx.branch_depth or m.is_initializing() or len(args) != 1 or kwargs:
        return next_fun(*args, **kwargs)
    if type(m) is ConvKernel and m.stride == 1 and m.window % 2:
        return conv_in_branch(args[0], m.get_variable("params", "kernel").astype(args[0].dtype))
    if type(m) is not nn.Conv or not _stride_one_same(m, args[0]):
        return next_fun(*args, **kwargs)
    x, kernel = args[0], m.get_variable("params", "kernel")
    dtype = m.dtype or jnp.result_type(x, kernel)
    y = conv_in_branch(x.astype(dtype), kernel.astype(dtype))
    return y + m.get_variable("params", "bias").astype(dtype) if m.use_bias else y


def _stride_one_same(m: nn.Conv, x) -> bool:
    """Whether `m(x)` is `layers.conv`: one batch axis, odd kernel, stride 1, SAME (symmetric)
    padding, no groups, dilation or mask."""
    rank = x.ndim - 2
    sizes = (m.kernel_size,) * rank if isinstance(m.kernel_size, int) else tuple(m.kernel_size)
    if isinstance(m.padding, str):
        same = m.padding.upper() == "SAME"
    else:
        pads = list(m.padding) if isinstance(m.padding, (list, tuple)) else []
        same = len(pads) == rank and all(isinstance(p, (list, tuple)) and tuple(p) == (k // 2, k // 2)
                                         for p, k in zip(pads, sizes))
    return (same and len(sizes) == rank and all(k % 2 for k in sizes) and m.feature_group_count == 1
            and all(s == 1 for s in np.broadcast_to(m.strides or 1, (rank,))) and m.mask is None
            and m.input_dilation in (None, 1) and m.kernel_dilation in (None, 1))


def _call(net, x, train, call_kwargs):
    """`net(x, train=train, **call_kwargs)`, without `train` when `net` takes none."""
    if "train" in inspect.signature(net).parameters:
        return net(x, train=train, **call_kwargs)
    return net(x, **call_kwargs)


class NasSupernet(nn.Module):
    """The weight-sharing form of a user's module. Call with (x, arch int32[D] or weights float[D, K],
    train=bool); returns the module's output. Variables: `params/net/...`, `supernet_stats/net/...`."""
    net: nn.Module
    names: tuple
    num_choices: tuple
    call_kwargs: tuple = ()
    grouped: bool = False   # depthwise convs as grouped convs (the backend policy when the space was built)
    sparse: bool = False    # a path runs only its options: candidates, blocks, conv and dense sizes (nas_path)

    @nn.compact
    def __call__(self, x, arch_or_weights, train: bool = False):
        w = as_weights(arch_or_weights, self.num_choices, self.names)
        ctx = _Context("supernet", rows={n: w[i] for i, n in enumerate(self.names)}, grouped=self.grouped)
        if self.sparse:   # one-hot rows (a path; GDAS's straight-through samples): the chosen option
            ctx.indices = dict(zip(self.names, jnp.argmax(w, axis=1)))
        with active_context(ctx), nn.intercept_methods(_normalisation_of_searched_widths), \
                nn.intercept_methods(_conv_in_branch):
            y = _call(self.net, x, train, dict(self.call_kwargs))
        if self.is_mutable_collection(STATS_COLLECTION):   # calibrated, even with no BatchNorm to calibrate
            self.put_variable(STATS_COLLECTION, "calibrated", jnp.ones((), jnp.float32))
        return nan_if_invalid(y, w)


class Fixed(NamedTuple):
    """What a network from `standalone_network` fixes (its class's `nas_fixed`)."""
    base: type            # your module's class
    choices: tuple        # (decision name, option index) pairs
    call_kwargs: tuple
    grouped: bool         # depthwise convs as grouped convs
    mode: str             # "plain" or "fixed"


def standalone_network(module: nn.Module, choices: tuple, call_kwargs: tuple = (), grouped: bool = False,
                       mode: str = "plain") -> nn.Module:
    """The user's module with every decision fixed: an instance of a subclass of its class, with
    the same fields, whose only change is that its call says which choices hold (`choices`:
    (decision name, option index) pairs). Call with (x, train=bool). Each `nas` primitive is
    replaced where it is constructed by the plain Flax layer of the chosen size (`nn.Conv`,
    `nn.Dense`; for a depthwise conv a grouped `nn.Conv` under the grouped policy, a function over
    the same variables under the CPU's slices policy) or the function (a chosen candidate, the
    chosen blocks, the chosen inputs) it stands for, so the network's modules are Flax's and yours and its
    variables are your module's own (`params/...`, `batch_stats/...`). `mode="fixed"` keeps the
    primitives, each running its chosen option (how `NasSpace.layers` lists them)."""
    return _fixed_class(type(module), choices, call_kwargs, grouped, mode)(**_fields(module))


def _fields(module: nn.Module) -> dict:
    """A module's own field values (what its constructor takes, less Flax's parent and name)."""
    return {f.name: getattr(module, f.name) for f in dataclasses.fields(module)
            if f.init and f.name not in ("parent", "name")}


@functools.lru_cache(maxsize=256)
def _fixed_class(base: type, choices: tuple, call_kwargs: tuple, grouped: bool, mode: str) -> type:
    """A subclass of `base` whose call runs `base`'s under the fixed choices. Cached, so one
    architecture's networks are equal (and jitted functions keyed on them are reused)."""
    @nn.nowrap   # not a module method of its own: your module's setup() and call run inside the context
    def __call__(self, x, train: bool = False):
        with active_context(_Context(mode, choices=dict(choices), grouped=grouped, root=0)):
            return _call(functools.partial(base.__call__, self), x, train, dict(call_kwargs))

    # Named as your class, in its module (repr and tabulate show it); a qualname no module defines,
    # so pickling refuses it rather than restoring the unfixed class.
    namespace = {"__call__": __call__, "__module__": base.__module__, "__qualname__": f"{base.__qualname__}[fixed]",
                 "__doc__": base.__doc__, "nas_fixed": Fixed(base, choices, call_kwargs, grouped, mode)}
    return type(base.__name__, (base,), namespace)


def grouped_network(network: nn.Module) -> nn.Module:
    """A network from `standalone_network` with depthwise convs as grouped convs (the same
    variables); any other network as it is."""
    fixed = getattr(type(network), "nas_fixed", None)
    if fixed is None:
        return network
    return _fixed_class(*fixed._replace(grouped=True))(**_fields(network))


class _Trace(nn.Module):
    """Calls the user's module under whatever context is active (trace, or counting)."""
    net: nn.Module
    call_kwargs: tuple = ()

    @nn.compact
    def __call__(self, x):
        return _call(self.net, x, False, dict(self.call_kwargs))


def _slice_like(source: jax.Array, shape: tuple, conv_kernel: bool) -> jax.Array:
    """A prefix of each axis; a centre crop of a conv kernel's spatial axes (all but the last two).
    Concrete arrays are sliced in numpy: an eager jax slice would compile once per shape."""
    index = []
    for axis, (big, small) in enumerate(zip(source.shape, shape)):
        start = (big - small) // 2 if conv_kernel and axis < source.ndim - 2 else 0
        index.append(slice(start, start + small))
    if isinstance(source, jax.core.Tracer):
        return source[tuple(index)]
    return jax.device_put(np.asarray(source)[tuple(index)])


class NasSpace(Space):
    """A `Space` built by `nas.space`; decisions are named `<module path>.<kind>` in call order."""

    name = "nas"

    def __init__(self, module: nn.Module, example_input, call_kwargs: dict, decisions: dict, abstract: dict,
                 output_shape: tuple | None = None):
        super().__init__([(n, d["labels"]) for n, d in decisions.items()])
        self._abstract = abstract   # the traced variables' shapes (which candidates hold weights)
        self.output_shape = output_shape   # one example's output shape, as traced (None: not traced)
        self.grouped = backend.current().depthwise == "grouped"   # the policies, taken once
        self.sparse = backend.current().nas_path == "sparse"
        self.module = module
        self.example = jnp.asarray(example_input)[:1]
        self.input_shape = tuple(self.example.shape[1:])   # one example's shape, as traced
        self.call_kwargs = tuple(sorted(call_kwargs.items()))
        self.records = decisions
        self.counts = Counts(lambda: _Trace(module, self.call_kwargs), self.example, decisions,
                             self.decision_names, self.num_choices)

    # -- networks --------------------------------------------------------------------------------
    def supernet(self, mixed: bool = False, head: bool = True, stem: bool = True) -> NasSupernet:
        """The weight-sharing module. `head`/`stem` are accepted and ignored: a user's module is
        searched as written (embed it in a bigger module to add a stem or head)."""
        return NasSupernet(self.module, self.decision_names, self.num_choices, self.call_kwargs, self.grouped,
                           self.sparse and not mixed)

    def _choices(self, arch) -> tuple:
        a = self.validate(arch).copy()
        index = {n: i for i, n in enumerate(self.decision_names)}
        for d, name in enumerate(self.decision_names):   # canonical() on the host, without dispatch
            for repeat, block in self.records[name]["enclosing"]:
                if self.records[repeat]["values"][a[index[repeat]]] <= block:
                    a[d] = 0
            for choice, candidate in self.records[name]["within"]:   # outer decisions come first
                if a[index[choice]] != candidate:
                    a[d] = 0
        return tuple((n, int(c)) for n, c in zip(self.decision_names, a))

    def standalone(self, arch, mode: str = "plain") -> nn.Module:
        """The user's module with every primitive replaced by the plain Flax layer of the
        architecture's choice (static sizes; see `standalone_network`)."""
        return standalone_network(self.module, self._choices(arch), self.call_kwargs, self.grouped, mode)

    def layers(self, arch) -> list[tuple[int, str, str]]:
        """The extracted network's module calls in call order: (nesting depth, 1 for your module's
        own children; name; what it is: the class with its kernel and output width, a searched
        module's chosen options). A `Choice` holds its chosen candidate; a `Repeat` its blocks."""
        labels = dict(zip(self.decision_names, self.labels(arch)))
        calls, stack = [], []

        def record(next_fun, args, kwargs, context):
            if context.method_name != "__call__" or not context.module.path:  # your module itself
                return next_fun(*args, **kwargs)
            row = len(calls)
            calls.append([len(stack) + 1, context.module.name, type(context.module).__name__, None,
                          ".".join(context.module.path)])
            stack.append(row)
            out = next_fun(*args, **kwargs)
            stack.pop()
            calls[row][3] = getattr(out, "shape", None)
            return out

        with nn.intercept_methods(record):
            _, variables = jax.eval_shape(lambda: self.standalone(arch, "fixed").init_with_output(jax.random.key(0),
                                                                                            self.example))
        convs = self.counts.conv_paths()
        return [(depth, name, _layer_text(kind, shape, path, variables, labels,
                                          ("net", *path.split(".")) in convs))
                for depth, name, kind, shape, path in calls]

    def layer_lines(self, arch) -> list[str]:
        """`layers(arch)` as text, one line per module call, indented by nesting (results.json's
        `best_network`: the winner as it runs, without the decisions of skipped blocks)."""
        return ["  " * (depth - 1) + f"{name}: {text}" for depth, name, text in self.layers(arch)]

    def labels(self, arch) -> list[str]:
        """Each decision's chosen option, as `to_string` writes it."""
        return [options[a] for options, a in zip(self.options, self.validate(arch))]

    def extract_variables(self, variables, arch) -> dict:
        """Supernet variables (`params/net/...`) -> the standalone network's (`params/...`, your
        module's own layout): each leaf sliced to its static shape (channel prefixes, kernel
        centre crops); `supernet_stats` become `batch_stats`."""
        network = self.standalone(arch)
        target = jax.eval_shape(lambda: network.init(jax.random.key(0), self.example))
        convs = self.counts.conv_paths()
        out = {}
        for collection, tree in target.items():
            source = variables["params" if collection == "params" else STATS_COLLECTION]["net"]
            out[collection] = jax.tree_util.tree_map_with_path(
                lambda path, leaf: _slice_like(_lookup(source, path), leaf.shape,
                                               ("net", *(k.key for k in path[:-1])) in convs
                                               and path[-1].key == "kernel"),
                tree)
        return out

    # -- counts ----------------------------------------------------------------------------------
    def params(self, arch) -> int:
        """Parameters of the extracted network (`supernet.nas.counts`: probed, then formulas)."""
        return self.counts(self._choices(arch))[0]

    def flops(self, arch) -> int:
        """Forward FLOPs per example of the extracted network, by the rule in `supernet.nas.counts`:
        conv and dense multiply-adds x 2, bias adds and normalisations, over the traced shapes."""
        return self.counts(self._choices(arch))[1]

    def largest(self) -> np.ndarray:
        """Per decision the option with the most weights; of an `InputChoice`, the latest inputs
        (whose paths keep the most layers between the input and the output)."""
        return np.asarray([self._extreme(n, max) for n in self.decision_names], np.int32)

    def smallest(self) -> np.ndarray:
        """Per decision the option with the fewest weights; of an `InputChoice`, the first inputs."""
        return np.asarray([self._extreme(n, min) for n in self.decision_names], np.int32)

    def _extreme(self, name: str, pick) -> int:
        record = self.records[name]
        if record["kind"] in SIZE_KINDS:
            values = list(record["values"])
            return values.index(pick(values))
        if record.get("candidate_paths") is not None:  # a Choice: by its candidates' weights
            return self._candidate_by_size(name, pick)
        return len(record["labels"]) - 1 if pick is max else 0  # an InputChoice: combinations in input order

    def _candidate_by_size(self, name: str, pick) -> int:
        base = self._choices(np.zeros(self.num_decisions, np.int32))
        sizes = [self.counts(tuple((n, k if n == name else c) for n, c in base))[0]
                 for k in range(len(self.records[name]["labels"]))]
        return sizes.index(pick(sizes))

    def parameter_free(self, arch) -> np.ndarray:
        """bool[D]: the chosen candidate of a `Choice` has no weights (other kinds: False)."""
        a = self.validate(arch)
        out = np.zeros(a.shape, bool)
        for d, name in enumerate(self.decision_names):
            paths = self.records[name].get("candidate_paths")
            if paths:
                free = np.asarray([p is None or not _has_params(self._abstract, p) for p in paths])
                out[..., d] = free[a[..., d]]
        return out

    def canonical(self, archs) -> jax.Array:
        """`archs` with decisions inside a skipped `Repeat` block or an unchosen `Choice` candidate
        set to 0. Jittable; a numpy array in gives one out, computed on the host (no op compiled)."""
        xp = np if isinstance(archs, np.ndarray) else jnp
        a = xp.asarray(archs, xp.int32)
        index = {n: i for i, n in enumerate(self.decision_names)}
        columns = [a[..., d] for d in range(a.shape[-1])]
        for d, name in enumerate(self.decision_names):   # in call order: outer decisions first
            for repeat, block in self.records[name]["enclosing"]:
                depths = xp.asarray(self.records[repeat]["values"], xp.int32)
                columns[d] = xp.where(depths[columns[index[repeat]]] <= block, 0, columns[d])
            for choice, candidate in self.records[name]["within"]:
                columns[d] = xp.where(columns[index[choice]] != candidate, 0, columns[d])
        return xp.stack(columns, axis=-1)


def _lookup(tree, path):
    for key in path:
        tree = tree[key.key]
    return tree


def _has_params(abstract, path) -> bool:
    tree = abstract.get("params", {}).get("net", {})
    for key in path:
        if key not in tree:
            return False
        tree = tree[key]
    return bool(jax.tree_util.tree_leaves(tree))


def _traced_with(ctx, fn):
    """Runs `fn` under jax.eval_shape with the primitives reading `ctx`."""
    with active_context(ctx):
        return jax.eval_shape(fn)


def _layer_text(kind: str, shape, path: str, variables, labels: dict, conv: bool) -> str:
    """One layer in words: its class, a conv's kernel size (`conv`: the layer is a conv, as the
    counts' probe found) and the output width, and the chosen depth of a `Repeat`, heads of a
    `MultiHeadAttention`, inputs of an `InputChoice` or candidate of a `Choice` (`labels`: decision
    name -> chosen option)."""
    node = variables.get("params", {})
    for key in path.split(".") if path else ():
        node = node.get(key, {}) if isinstance(node, dict) else {}
    kernel = node.get("kernel") if isinstance(node, dict) else None
    text = [kind]
    if kernel is not None and conv:   # a conv's window
        text.append("x".join(map(str, kernel.shape[:-2])))
    if f"{path}.depth" in labels:
        text.append(f"depth {labels[f'{path}.depth']}")
    if f"{path}.num_heads" in labels:
        text.append(f"heads {labels[f'{path}.num_heads']}")
    if kind == "InputChoice" and path in labels:
        text.append(f"inputs {labels[path]}")
    if kind == "Choice" and path in labels:   # its chosen candidate, also when that is a function
        text.append(labels[path])
    return " ".join(text) + (f" -> {shape[-1]}" if shape else "")


def listed(module: nn.Module, example_input, decisions) -> NasSpace:
    """The `NasSpace` of a built-in space's module, its decisions in the order the space lists
    them ((name, labels) pairs): traced decisions keep their records; a listed decision with one
    option, which no primitive registers, is kept as a decision with that one option."""
    with warnings.catch_warnings():   # nas warns that a one-option decision is fixed: here it is listed
        warnings.simplefilter("ignore")
        traced, abstract, _ = (trace(module, example_input, {}) if any(len(o) > 1 for _, o in decisions)
                               else ({}, {}, None))
    records = {name: traced.get(name) or dict(labels=tuple(labels), values=tuple(labels), kind="", enclosing=(),
                                              within=(), candidate_paths=None)
               for name, labels in decisions}
    for name, labels in decisions:
        if records[name]["labels"] != tuple(labels):
            raise ValueError(f"decision {name!r}: the module's options {records[name]['labels']} are not the "
                             f"listed {tuple(labels)}.")
    return NasSpace(module, example_input, {}, records, abstract)


def space(module: nn.Module, example_input, **call_kwargs) -> NasSpace:
    """Discovers the decisions of `module` (a Linen module using `nas` primitives) by tracing it
    once on `example_input` (any array it accepts; only its shape matters).

    Args:
      module: an unbound Linen module; called as module(x, train=..., **call_kwargs) when its
        __call__ takes `train`, else module(x, **call_kwargs).
      example_input: an example batch, e.g. x[:2].
    Returns:
      a `NasSpace` (a `supernet.spaces.Space`): decisions in call order.
    Raises:
      ValueError naming the problem for unnamed or conflicting decisions, single-option decisions,
      candidates of different shapes, a `Repeat` block that changes shape, or a bad `n_chosen`.
    """
    return NasSpace(module, example_input, call_kwargs, *trace(module, example_input, call_kwargs))


def trace(module: nn.Module, example_input, call_kwargs: dict) -> tuple[dict, dict, tuple]:
    """(decisions in call order, the abstract variables of the traced module, one example's output
    shape): what `NasSpace` is built from. Raises the errors `space` documents."""
    if isinstance(module, type):
        raise ValueError(f"nas.space takes a module instance, {module.__name__}(), not the class {module.__name__}.")
    if isinstance(example_input, jax.core.Tracer):
        raise ValueError("nas.space was called inside a jitted function, where the space's decisions cannot be "
                         "known before compiling: call nas.space(module, x[:2]) once outside jax.jit.")
    ctx = _Context("trace")
    x = jnp.asarray(example_input)[:1]
    try:
        with nn.intercept_methods(_refuse_dropout):
            output, abstract = _traced_with(ctx, lambda: _Trace(module, tuple(sorted(call_kwargs.items())))
                                            .init_with_output(jax.random.key(0), x))
    except TypeError as err:
        if "__call__() missing" not in str(err):
            raise
        raise ValueError(f"{type(module).__name__} needs call arguments besides the input ({err}); pass them by name, "
                         f"nas.space(module, x[:2], name=value) (AutoModel: space_options={{'name': value}}).") from None
    except flax.errors.NameInUseError as err:
        name = str(err).split('"')[1] if '"' in str(err) else "?"
        raise ValueError(f"duplicate module name {name!r} in {type(module).__name__}: give each nas primitive "
                         f"its own name (call one module twice to tie its decisions).") from None
    if not ctx.decisions:
        raise ValueError(f"{type(module).__name__} has no searched decision: use nas.Choice, nas.Repeat, "
                         f"nas.InputChoice, or a tuple of features/kernel sizes in nas.Conv / nas.Dense.")
    if not isinstance(output, jax.ShapeDtypeStruct | jax.Array):
        raise ValueError(f"{type(module).__name__} returns a {type(output).__name__}, but a searched module must "
                         f"return one array of outputs [n, ...]; wrap it in a module that returns the outputs to "
                         f"train on.")
    return ctx.decisions, abstract, tuple(output.shape[1:])


def _refuse_dropout(next_fun, args, kwargs, context):
    """Interceptor while tracing (in evaluation mode, train=False): a dropout that still drops
    would make evaluation random and need a "dropout" PRNG stream that evaluation does not pass;
    attention's dropout must take `deterministic` in the call, where calibration sets it
    (`training.apply_train`)."""
    m = context.module
    if context.method_name != "__call__" or not isinstance(m, nn.Dropout | nn.MultiHeadDotProductAttention):
        return next_fun(*args, **kwargs)
    where = "/".join(m.scope.path[1:])
    if isinstance(m, nn.Dropout) and m.rate > 0:
        layer = f"nn.Dropout(rate={m.rate})"
        if m.rng_collection != "dropout":
            raise ValueError(f"{layer} at {where} draws from the PRNG stream {m.rng_collection!r}: training passes "
                             f"only 'dropout'; leave rng_collection at its default.")
        deterministic = kwargs.get("deterministic", args[1] if len(args) > 1 else None)
    elif isinstance(m, nn.MultiHeadDotProductAttention) and m.dropout_rate > 0:
        layer = f"{type(m).__name__}(dropout_rate={m.dropout_rate})"
        deterministic = kwargs.get("deterministic")
        if m.deterministic is not None:
            raise ValueError(f"{layer} at {where} takes deterministic in its constructor: pass it in the call, "
                             f"attention(x, deterministic=not train), so calibration can switch its dropout off.")
    else:
        return next_fun(*args, **kwargs)
    if not (m.deterministic if deterministic is None else deterministic):
        raise ValueError(f"{layer} at {where} drops with train=False: evaluation and the extracted network must "
                         f"be deterministic; pass deterministic=not train.")
    return next_fun(*args, **kwargs)
