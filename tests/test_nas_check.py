"""nas.check: any Space, including one written by hand, checked against its real networks."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from supernet import nas
from supernet.layers import as_weights
from supernet.spaces.base import Space

WIDTHS = (2, 4)


class _Supernet(nn.Module):
    """A dense layer of searched width (a prefix of 4 units) and a fixed output layer."""

    @nn.compact
    def __call__(self, x, arch, train=False):
        row = as_weights(arch, (len(WIDTHS),))[0]
        mask = row[:len(WIDTHS)] @ jnp.asarray([[float(u < w) for u in range(max(WIDTHS))] for w in WIDTHS])
        return nn.Dense(3, name="out")(nn.relu(nn.Dense(max(WIDTHS), name="hidden")(x)) * mask)


class _Standalone(nn.Module):
    width: int

    @nn.compact
    def __call__(self, x, train=False):
        return nn.Dense(3, name="out")(nn.relu(nn.Dense(self.width, name="hidden")(x)))


class HandWritten(Space):
    """One decision, the hidden width of a two-layer perceptron on 5 inputs."""
    name = "hand_written"
    input_shape = (5,)

    def __init__(self):
        super().__init__([("hidden", tuple(map(str, WIDTHS)))])

    def supernet(self, mixed=False, head=True, stem=True):
        return _Supernet()

    def standalone(self, arch):
        return _Standalone(WIDTHS[self.validate(arch)[0]])

    def extract_variables(self, variables, arch):
        w = WIDTHS[self.validate(arch)[0]]
        p = variables["params"]
        return {"params": {"hidden": {"kernel": p["hidden"]["kernel"][:, :w], "bias": p["hidden"]["bias"][:w]},
                           "out": {"kernel": p["out"]["kernel"][:w], "bias": p["out"]["bias"]}}}

    def params(self, arch):
        w = WIDTHS[self.validate(arch)[0]]
        return 5 * w + w + w * 3 + 3

    def flops(self, arch):
        return 2 * (5 + 3) * WIDTHS[self.validate(arch)[0]]

    def largest(self):
        return np.asarray([1], np.int32)

    def smallest(self):
        return np.asarray([0], np.int32)

    def parameter_free(self, arch):
        return np.zeros(self.validate(arch).shape, bool)


class SevenParams(HandWritten):
    def params(self, arch):
        return 7


def test_a_hand_written_space_passes_and_a_wrong_params_is_caught():
    report = nas.check(HandWritten(), n_random=1)
    assert len(report.rows) == 2 and all(r["max_abs_diff"] <= 1e-4 for r in report.rows)   # the random one repeats
    assert [r["params"] for r in report.rows[:2]] == [39, 21]
    with pytest.raises(ValueError, match=r"SevenParams.params is wrong .* returns 7 but the extracted network has "
                                         r"\d+ parameters") as err:
        nas.check(SevenParams(), n_random=0)
    assert "\n" not in str(err.value)


def test_wrong_extraction_and_unvalidated_architectures_are_caught():
    class WrongSlice(HandWritten):
        def extract_variables(self, variables, arch):
            out = super().extract_variables(variables, arch)
            out["params"]["out"]["bias"] = out["params"]["out"]["bias"] + 1.0
            return out

    class NoValidation(HandWritten):
        def params(self, arch):
            return 9 * WIDTHS[min(int(np.asarray(arch)[0]), 1)] + 3   # right count, no validation

    with pytest.raises(ValueError, match="WrongSlice.extract_variables is wrong .* differs from the calibrated"):
        nas.check(WrongSlice(), n_random=0)
    with pytest.raises(ValueError, match="NoValidation.params accepted an architecture of the wrong length"):
        nas.check(NoValidation(), n_random=0)


def test_a_flops_formula_off_both_counts_is_caught():
    class TenfoldFlops(HandWritten):
        def flops(self, arch):
            return 10 * super().flops(arch)

    with pytest.raises(ValueError, match=r"TenfoldFlops.flops is wrong .* returns \d+ but XLA counts \d+ and the "
                                         r"program's convolutions and dots \d+ per example"):
        nas.check(TenfoldFlops(), n_random=0)


def test_the_chain_space_passes_on_small_inputs_where_the_two_flops_conventions_part():
    """On 8x8 digits, the chain's count (full windows, element-wise work out) is far from XLA's
    (padding out, element-wise in) for pool and identity blocks; it matches the program's count."""
    from supernet import spaces
    space = spaces.get("chain", choices={"b1": ["conv5x5", "maxpool"], "b2": ["residual", "identity"]}, channels=4,
                       input_shape=(8, 8, 1))
    report = nas.check(space, n_random=0)
    pool = next(r for r in report.rows if r["arch"] == "b1=maxpool,b2=identity")
    assert abs(pool["flops"] - pool["xla_flops"]) > 0.25 * pool["xla_flops"]
    assert pool["flops"] == pool["program_flops"]
