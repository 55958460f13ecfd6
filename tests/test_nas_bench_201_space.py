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


def test_params_match_the_design_figure():
    """The count against the standalone network is checked for every space in test_spaces.py."""
    space = spaces.get("nas_bench_201", num_classes=10, input_shape=(32, 32, 3), channels=16, cells_per_stage=5)
    assert space.params(space.from_string(DESIGN_CELL)) == 802_426  # the benchmark's reference code gives this count


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


NONE, SKIP, CONV1, CONV3, POOL = range(5)  # edges: 1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2


def _same_function(space, a, b):
    canonical = np.asarray(space.canonical(np.asarray([a, b], np.int32)))
    return bool(np.all(canonical[0] == canonical[1]))


def test_canonical_merges_cells_that_compute_the_same_function():
    space = spaces.get("nas_bench_201")
    # Node 1 feeds nothing: its input edge does not matter.
    assert _same_function(space, [CONV3, CONV1, NONE, CONV3, NONE, SKIP], [POOL, CONV1, NONE, CONV3, NONE, SKIP])
    # A skip in front of a conv: conv1x1(input) + conv3x3(skip(input)).
    assert _same_function(space, [CONV3, CONV1, NONE, CONV3, NONE, SKIP], [NONE, SKIP, NONE, CONV1, NONE, CONV3])
    # A skip detour: a conv into node 1, skipped on to the output, is the conv on edge 3<-0.
    assert _same_function(space, [CONV3, NONE, NONE, NONE, SKIP, NONE], [NONE, NONE, NONE, CONV3, NONE, NONE])
    # The two middle nodes swapped.
    assert _same_function(space, [CONV1, CONV3, NONE, NONE, SKIP, SKIP], [CONV3, CONV1, NONE, NONE, SKIP, SKIP])
    # Nothing reaches the output: zero, like the all-`none` cell.
    assert _same_function(space, [NONE] * 6, [CONV3, NONE, NONE, NONE, NONE, POOL])


def test_inactive_decisions_are_the_edges_the_cells_function_ignores():
    space = spaces.get("nas_bench_201")
    # Node 1 feeds nothing (edges 1->2 and 1->3 are none): the edge into it is inactive.
    assert space.inactive_decisions(np.asarray([CONV3, CONV1, NONE, CONV3, NONE, SKIP])) == ["edge0_0to1"]
    # Nothing reaches the output: only the edges into it can change the function.
    assert space.inactive_decisions(np.asarray([CONV3, CONV1, CONV3, NONE, NONE, NONE])) == [
        "edge0_0to1", "edge1_0to2", "edge2_1to2"]
    assert space.inactive_decisions(np.asarray([CONV3] * 6)) == []
    every = np.asarray(np.unravel_index(np.arange(space.size), space.num_choices)).T
    assert np.array_equal(space.canonical(every), np.asarray(jax.jit(space.canonical)(every)))   # host = jitted


def test_canonical_keeps_different_functions_apart():
    space = spaces.get("nas_bench_201")
    assert not _same_function(space, [NONE, NONE, NONE, CONV1, NONE, NONE], [NONE, NONE, NONE, CONV3, NONE, NONE])
    # Two parallel convolutions (two sets of weights) are not one.
    assert not _same_function(space, [CONV3, NONE, NONE, CONV3, SKIP, NONE], [NONE, NONE, NONE, CONV3, NONE, NONE])
    # Order matters along a path: pool then conv is not conv then pool.
    assert not _same_function(space, [POOL, NONE, NONE, NONE, CONV3, NONE], [CONV3, NONE, NONE, NONE, POOL, NONE])
    every = np.asarray(space.canonical(np.asarray(np.unravel_index(np.arange(space.size), space.num_choices)).T))
    assert np.all(np.asarray(space.canonical(every)) == every)  # a representative is its own
    assert len(np.unique(every, axis=0)) == 5155
    assert _same_function(space, space.largest(), space.largest())
    assert np.sum(np.all(every == space.largest(), axis=1)) == 1  # the all-conv cell is alone


def test_cells_merged_by_a_dead_edge_give_the_same_supernet_outputs():
    space = spaces.get("nas_bench_201", num_classes=10, input_shape=(8, 8, 3), channels=4, stages=1)
    arch = np.asarray([CONV3, CONV1, NONE, CONV3, NONE, SKIP], np.int32)
    dead_edge_changed = np.asarray([POOL, CONV1, NONE, CONV3, NONE, SKIP], np.int32)  # node 1 feeds nothing
    assert _same_function(space, arch, dead_edge_changed)
    x = jax.random.normal(jax.random.key(0), (4, 8, 8, 3))
    for sparse in (True, False):
        net = space.supernet(sparse=sparse)
        params = net.init(jax.random.key(1), x, arch, train=True)["params"]
        outputs = [net.apply({"params": params}, x, a, train=True) for a in (arch, dead_edge_changed)]
        np.testing.assert_allclose(outputs[0], outputs[1], rtol=1e-6, atol=1e-6)
