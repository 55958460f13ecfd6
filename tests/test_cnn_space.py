"""The CNN space for signals ("cnn1d", `supernet/spaces/cnn.py`): its decisions, hand-counted
parameters on a 1-D input, one sample per network, the configs of its held-out table, and bad
options refused. (The Space contract is checked for it with every registered space in test_spaces.)"""

import jax
import numpy as np
import pytest

from experiments import ground_truth as ground_truth_config
from experiments import ranking as ranking_config
from supernet import config_check, jobs, spaces
from supernet.ground_truth import sample_architectures
from supernet.jobs.ranking import check_rankers


@pytest.fixture(scope="module")
def space():
    return spaces.get("cnn1d", input_shape=(40, 1), num_classes=10)


def test_decisions_and_sizes(space):
    assert space.decision_names == (
        "op", "stage.depth", "stage.block1.conv.features", "stage.block1.conv.kernel_size",
        "stage.block2.conv.features", "stage.block2.conv.kernel_size", "stage.block3.conv.features",
        "stage.block3.conv.kernel_size", "skip", "fc.features")
    assert space.num_choices == (3, 3, 3, 3, 3, 3, 3, 3, 2, 2) and space.size == 26_244
    assert space.name == "cnn1d" and space.input_shape == (40, 1) and space.num_classes == 10


def test_params_are_counted_by_hand_and_the_network_runs_on_signals(space):
    # smallest: stem conv 3*1*16+16, BN 2*16, pool, block conv 3*16*8+8, BN 2*8, proj 3*8*16+16,
    # dense 16*32+32, classifier 32*10+10
    assert space.params(space.smallest()) == 64 + 32 + 392 + 16 + 400 + 544 + 330
    largest = space.largest()   # op conv3 (+3*16*16+16), 3 blocks of width 32 and kernel 7, dense 64
    block = (7 * 16 * 32 + 32) + 2 * 32 + (3 * 32 * 16 + 16)
    assert space.params(largest) == 64 + 32 + 784 + 3 * block + (16 * 64 + 64) + (64 * 10 + 10)
    net = space.standalone(largest)
    x = jax.ShapeDtypeStruct((2, 40, 1), np.float32)
    variables = jax.eval_shape(net.init, jax.random.key(0), x)
    assert jax.eval_shape(net.apply, variables, x).shape == (2, 10)
    assert variables["params"]["stage"]["block3"]["conv"]["kernel"].shape == (7, 16, 32)  # a 1-D kernel


def test_a_sample_holds_each_network_once(space):
    shallow = np.zeros(space.num_decisions, np.int32)
    assert not space.is_degenerate(shallow)
    shallow[4] = 2   # block 2's width, while the stage is 1 block deep: the same network again
    assert space.is_degenerate(shallow)
    sample = sample_architectures(space, 40, seed=0)
    assert np.array_equal(np.asarray(space.canonical(sample)), sample)   # canonical, so distinct networks


def test_the_held_out_configs(space):
    g = ground_truth_config.get_config("cnn")
    assert g.space.name == "cnn1d" and g.ground_truth.num_archs >= 150 and tuple(g.ground_truth.seeds) == (0, 1)
    assert g.dataset.options.to_dict() == ground_truth_config.get_config().dataset.options.to_dict()
    r = ranking_config.get_config("cnn")
    check_rankers(r.rankers)
    assert r.ground_truth.table.endswith("ground_truth_cnn_mnist1d.csv")
    assert (r.supernet.sampling, r.supernet.weight_decay) == ("distinct", 1e-2)
    auto = ranking_config.get_config("cnn,automodel").supernet
    assert (auto.sampling, auto.weight_decay, auto.steps, auto.batch_size) == ("uniform", 5e-4, 1200, 64)
    for config in (g, r):   # what launch.py checks first, the shipped table's task included
        config_check.check(config, jobs.get(config.job))


def test_bad_options_are_refused_in_one_line():
    with pytest.raises(ValueError, match="widths must be at least two"):
        spaces.get("cnn1d", widths=(8,))
    with pytest.raises(ValueError, match="kernel_sizes must be at least two odd"):
        spaces.get("cnn1d", kernel_sizes=(3, 4))
