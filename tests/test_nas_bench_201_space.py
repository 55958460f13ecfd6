import csv
import os

import jax
import numpy as np
import pytest

from supernet import spaces
from supernet.spaces.nas_bench_201 import NasBench201Space

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TABLE = os.path.join(REPO, "strategies", "benchmarks", "nas_bench_201_12epoch.csv")
DESIGN_CELL = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"


def test_registry_lists_valid_names_on_unknown():
    with pytest.raises(ValueError, match="valid: .*nas_bench_201"):
        spaces.get("nas_bench_2O1")
    with pytest.raises(TypeError, match="nas_bench_201"):
        spaces.get("nas_bench_201", chanels=8)


def test_shape_of_space():
    space = spaces.get("nas_bench_201")
    assert space.num_choices == (5,) * 6
    assert space.size == 15_625
    archs = space.sample(jax.random.key(0), 1000)
    assert archs.shape == (1000, 6) and archs.dtype == np.int32
    assert archs.min() == 0 and archs.max() == 4
    assert len({tuple(a) for a in np.asarray(archs)}) > 900  # uniform over 15,625: few repeats


def test_every_official_string_round_trips():
    space = spaces.get("nas_bench_201")
    with open(TABLE) as f:
        strings = [row["arch"] for row in csv.DictReader(f)]
    assert len(strings) == 15_625
    archs = np.stack([space.from_string(s) for s in strings])
    assert len({tuple(a) for a in archs}) == 15_625
    assert [space.to_string(a) for a in archs] == strings


def test_validate_names_the_decision_and_range():
    space = spaces.get("nas_bench_201")
    with pytest.raises(ValueError, match=r"decision 2 \('edge2_1to2'\) has choice 7, valid range is 0..4"):
        space.validate([0, 1, 7, 0, 0, 0])
    with pytest.raises(ValueError, match="6 decisions"):
        space.validate([0, 1, 2])
    with pytest.raises(ValueError, match="bad edge"):
        space.from_string("|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|")


def test_params_match_design_figure_and_standalone_network():
    space = spaces.get("nas_bench_201", num_classes=10, input_shape=(32, 32, 3), channels=16, cells_per_stage=5)
    arch = space.from_string(DESIGN_CELL)
    assert space.params(arch) == 802_426  # the benchmark's reference code gives this count
    small = spaces.get("nas_bench_201", input_shape=(8, 8, 1), channels=4, cells_per_stage=2)
    for arch in [*np.asarray(small.sample(jax.random.key(1), 4)), small.largest(), small.smallest()]:
        net = small.standalone(arch)
        variables = jax.eval_shape(net.init, jax.random.key(0), np.zeros((1, 8, 8, 1), np.float32))
        assert small.params(arch) == sum(p.size for p in jax.tree.leaves(variables["params"]))


def _xla_flops(net, variables, x):
    cost = jax.jit(lambda v, x: net.apply(v, x, train=False)).lower(variables, x).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return cost["flops"]


@pytest.mark.parametrize("input_shape", [(16, 16, 3), (24, 1)])
def test_flops_agree_with_xla_cost_analysis(input_shape):
    """XLA also counts element-wise work (BN, ReLU, pooling, adds), which `flops` leaves out, so
    XLA's figure is a little higher; conv and dense layers dominate, so they agree within 15%.
    (Both count only kernel taps on real, unpadded inputs.)"""
    space = spaces.get("nas_bench_201", input_shape=input_shape, channels=8, cells_per_stage=1)
    x = np.zeros((1, *input_shape), np.float32)
    for arch in [space.largest(), space.from_string(DESIGN_CELL)]:
        net = space.standalone(arch)
        variables = jax.eval_shape(net.init, jax.random.key(0), x)
        xla = _xla_flops(net, variables, x)
        assert space.flops(arch) <= xla <= 1.15 * space.flops(arch), (space.flops(arch), xla)
    assert space.flops(space.largest()) > space.flops(space.from_string(DESIGN_CELL))


def test_bad_options():
    with pytest.raises(ValueError, match="stages"):
        NasBench201Space(stages=4)
