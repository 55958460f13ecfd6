"""`nas.check(space)`: any `Space` (a `nas.space`, a built-in one, or a subclass written by hand)
checked against its real networks.

On the largest, the smallest and a few random architectures it compares:
- `params(arch)` with the parameters of the variables `extract_variables` returns, and those
  variables' shapes with what `standalone(arch)` initialises;
- `flops(arch)` with two counts of the standalone network, within `flops_rtol` of either: XLA's
  `cost_analysis()` (taps on padding left out, element-wise work counted) and the multiply-adds of
  the convolutions and dots in its program over full windows (padding in, nothing else);
- the standalone network on the extracted variables with the supernet's calibrated evaluation,
  within `atol`;
and that `params`, `flops` and `standalone` refuse an architecture of the wrong length or out of
range. The first failure raises one ValueError naming the method and the architecture.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from supernet.layers import STATS_COLLECTION
from supernet.nas.space import grouped_network


@dataclasses.dataclass
class CheckReport:
    """What `check` compared, one row per architecture (all rows passed).

    rows: dicts with arch (its string), params, flops, xla_flops, program_flops (convolutions and
      dots over full windows), max_abs_diff (None where the supernet has no calibrated evaluation
      to compare).
    flops_rtol, atol: the tolerances used.
    """
    space: str
    rows: list
    flops_rtol: float
    atol: float

    def __str__(self):
        lines = [f"{self.space}: {len(self.rows)} architectures passed (flops within {self.flops_rtol:.0%} of XLA's "
                 f"or the program's count, outputs within {self.atol:g})",
                 "params | flops | xla_flops | program_flops | max_abs_diff | arch"]
        for r in self.rows:
            diff = "-" if r["max_abs_diff"] is None else f"{r['max_abs_diff']:.1e}"
            xla = "-" if r["xla_flops"] is None else f"{r['xla_flops']:.0f}"
            lines.append(f"{r['params']} | {r['flops']} | {xla} | {r['program_flops']} | {diff} | {r['arch']}")
        return "\n".join(lines)


def check(space, x=None, *, key=None, n_random: int = 3, flops_rtol: float = 0.25,
          atol: float = 1e-4) -> CheckReport:
    """Checks `space`'s methods against the networks they describe.

    Args:
      space: any `supernet.spaces.Space`.
      x: example inputs [N, ...] (N >= 2: BN is calibrated on them); default: 8 standard normal
        inputs of `space.input_shape`, or of the example a `nas.space` was traced on.
      key: PRNG key for the random architectures, the inputs and the supernet's weights
        (default `jax.random.key(0)`).
      n_random: random architectures besides the largest and the smallest (each architecture is
        checked once, so a small space may give fewer rows).
      flops_rtol: allowed relative gap between `flops(arch)` and the nearer of two counts of the
        standalone network: XLA's (element-wise work such as BN, activations and adds counted, kernel
        taps on padding left out, as `nas.space` counts) and its program's convolutions and dots over
        full windows (padding in, element-wise work out, as the chain and MobileNet spaces count).
        On small inputs the two conventions differ by far more than this; a wrong formula is off both.
      atol: allowed absolute gap between the extracted network's outputs and the supernet's.
    Returns:
      a `CheckReport` (print it for a table).
    Raises:
      ValueError naming the method and the architecture at the first mismatch.
    """
    key = jax.random.key(0) if key is None else key
    k_arch, k_x, k_init = jax.random.split(key, 3)
    x = _inputs(space, x, k_x)
    archs = [_valid(space, space.largest(), "largest()"), _valid(space, space.smallest(), "smallest()")]
    archs += list(np.asarray(space.sample(k_arch, n_random)))
    archs = list({tuple(int(c) for c in a): np.asarray(a) for a in archs}.values())   # each once, in order
    model = space.supernet()
    variables = jax.jit(lambda k: model.init(k, x, jnp.asarray(archs[0]), train=False))(k_init)
    evaluate = jax.jit(lambda v, a: _calibrated_outputs(model, v, a, x))
    rows = [_check_one(space, variables, evaluate, x, np.asarray(a, np.int32), flops_rtol, atol) for a in archs]
    _check_refuses_bad_architectures(space)
    return CheckReport(space.name, rows, flops_rtol, atol)


def _inputs(space, x, key) -> jax.Array:
    if x is None:
        shape = getattr(space, "input_shape", None)
        if shape is None and hasattr(space, "example"):
            shape = space.example.shape[1:]
        if shape is None:
            raise ValueError(f"nas.check({space.name}): the space has no input_shape; pass example inputs, "
                             f"check(space, x) with x of shape [N, ...].")
        return jax.random.normal(key, (8, *shape))
    x = jnp.asarray(x)
    if x.shape[0] < 2:
        raise ValueError(f"nas.check({space.name}): x has {x.shape[0]} example; pass at least 2 so that BN "
                         f"statistics can be calibrated.")
    return x


def _fail(space, method: str, arch, problem: str):
    text = space.to_string(arch) if arch is not None else "-"
    raise ValueError(f"{type(space).__name__}.{method} is wrong for architecture {text!r}: {problem}")


def _valid(space, arch, method: str) -> np.ndarray:
    try:
        return space.validate(arch)
    except ValueError as err:
        raise ValueError(f"{type(space).__name__}.{method} returned an invalid architecture: {err}") from None


def _check_refuses_bad_architectures(space):
    """params, flops and standalone must raise ValueError on a short or out-of-range architecture."""
    short = np.zeros(space.num_decisions + 1, np.int32)
    high = np.asarray(space.num_choices, np.int32)
    for method in ("params", "flops", "standalone"):
        for bad, what in ((short, "the wrong length"), (high, "out of range")):
            try:
                getattr(space, method)(bad)
            except ValueError:
                continue
            except Exception as err:   # noqa: BLE001 - any other error is the finding
                raise ValueError(f"{type(space).__name__}.{method} raised {type(err).__name__} instead of ValueError "
                                 f"on an architecture of {what} {bad.tolist()}: call self.validate(arch) first.") from None
            raise ValueError(f"{type(space).__name__}.{method} accepted an architecture of {what} {bad.tolist()}: "
                             f"call self.validate(arch) first.")


def _calibrated_outputs(model, variables, arch, x):
    """(variables with this architecture's BN statistics, evaluation-mode outputs); a supernet with
    nothing to calibrate is evaluated as it is."""
    try:
        from supernet import evaluation   # here: evaluation imports the spaces, and the chain space this package
        variables = evaluation.calibrate_variables(model, variables, arch, x)
    except ValueError:
        pass
    return variables, model.apply(variables, x, arch, train=False)


def _check_one(space, variables, evaluate, x, arch, flops_rtol, atol) -> dict:
    network = space.standalone(arch)
    expected = jax.eval_shape(lambda: network.init(jax.random.key(0), x[:1], train=False))
    calibrated, supernet_out = evaluate(variables, jnp.asarray(arch))
    extracted = space.extract_variables(calibrated, arch)
    _same_shapes(space, arch, expected, extracted)
    counted = sum(int(np.prod(leaf.shape)) for leaf in jax.tree_util.tree_leaves(extracted.get("params", {})))
    if space.params(arch) != counted:
        _fail(space, "params", arch, f"it returns {space.params(arch)} but the extracted network has {counted} "
                                     f"parameters.")
    # Depthwise convs as grouped convolutions, whose padding taps XLA leaves out as `flops` does
    # (the CPU's shifted-sum form computes them too); the same weights, so the same network.
    traced = _traced(grouped_network(network), extracted, x[:1])   # one trace for both counts
    xla, program = _xla_flops_of(traced), matmul_flops(traced.jaxpr.jaxpr)
    counted_flops = space.flops(arch)
    if all(abs(counted_flops - c) > flops_rtol * c for c in (xla, program) if c is not None):
        _fail(space, "flops", arch, f"it returns {counted_flops} but XLA counts {xla:.0f} and the program's "
                                    f"convolutions and dots {program} per example (tolerance {flops_rtol:.0%}).")
    diff = None
    if STATS_COLLECTION in calibrated or not _has_state(expected):
        got = network.apply(extracted, x, train=False)
        diff = float(jnp.max(jnp.abs(got - supernet_out)))
        if not diff <= atol:
            _fail(space, "extract_variables", arch, f"the standalone network on the extracted variables differs "
                                                    f"from the calibrated supernet by {diff:.2e} (> {atol:g}).")
    return dict(arch=space.to_string(arch), params=counted, flops=int(counted_flops), xla_flops=xla,
                program_flops=program, max_abs_diff=diff)


def _has_state(variables) -> bool:
    return any(c != "params" and jax.tree_util.tree_leaves(t) for c, t in variables.items())


def _same_shapes(space, arch, expected, extracted):
    want = {jax.tree_util.keystr(p): l.shape for p, l in jax.tree_util.tree_leaves_with_path(expected)}
    got = {jax.tree_util.keystr(p): np.shape(l) for p, l in jax.tree_util.tree_leaves_with_path(extracted)}
    for path in sorted(set(want) | set(got)):
        if want.get(path) != got.get(path):
            _fail(space, "extract_variables", arch, f"variable {path} has shape {got.get(path)} but the standalone "
                                                    f"network needs {want.get(path)}.")


def _traced(network, variables, x):
    """`network.apply(variables, x, train=False)` traced, every layer's output returned as an
    intermediate, so that XLA keeps layers whose results the output does not use (an input choice
    that skips them) and counts them, as `flops` does."""
    def apply(v, x):
        return network.apply(v, x, train=False, capture_intermediates=True, mutable=["intermediates"])
    return jax.jit(apply).trace(variables, x)


def _xla_flops_of(traced) -> float | None:
    cost = traced.lower().cost_analysis()   # of the lowered program: no compile needed
    cost = cost[0] if isinstance(cost, (list, tuple)) and cost else cost
    return None if not cost or "flops" not in cost else float(cost["flops"])


def xla_flops(network, variables, x) -> float | None:
    """XLA's `cost_analysis()` FLOPs of `network.apply(variables, x, train=False)` (per call on `x`),
    layers whose results the output does not use included. None where the backend gives no cost
    analysis."""
    return _xla_flops_of(_traced(network, variables, x))


def matmul_flops(jaxpr) -> int:
    """2 x multiply-adds of every conv and dot in a jaxpr (full windows), sub-jaxprs included."""
    total = 0
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "conv_general_dilated":
            out, rhs = eqn.outvars[0].aval, eqn.invars[1].aval
            total += 2 * out.size * rhs.size // out.shape[-1]  # rhs.size / output channels = MACs per output
        elif eqn.primitive.name == "dot_general":
            (contract, _), _ = eqn.params["dimension_numbers"]
            total += 2 * eqn.outvars[0].aval.size * int(np.prod([eqn.invars[0].aval.shape[i] for i in contract]))
        for value in eqn.params.values():
            for sub in value if isinstance(value, (list, tuple)) else [value]:
                if isinstance(sub, jax.extend.core.ClosedJaxpr):
                    total += matmul_flops(sub.jaxpr)
                elif isinstance(sub, jax.extend.core.Jaxpr):
                    total += matmul_flops(sub)
    return total
