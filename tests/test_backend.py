"""The backend policy: one module decides the CPU/GPU/TPU choices, each overridable."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from supernet import backend, evaluation, layers, spaces, training


@pytest.fixture(autouse=True)
def default_policy():
    backend.configure()
    yield
    backend.configure()


def test_cpu_defaults():
    policy = backend.defaults("cpu")
    assert (policy.cell, policy.nas_path, policy.vmap_archs, policy.depthwise, policy.init, policy.compute_dtype) == \
        ("sparse", "sparse", 1, "slices", "host", "float32")
    accelerator = backend.defaults("gpu")
    assert (accelerator.cell, accelerator.nas_path, accelerator.vmap_archs, accelerator.depthwise) == \
        ("folded", "masked", None, "grouped")
    assert backend.describe()["overridden"] == []


def test_overrides_reach_every_choice():
    space = spaces.get("nas_bench_201", input_shape=(8, 8, 1), channels=4, cells_per_stage=1, stages=1)
    assert space.supernet().sparse and evaluation.default_vmap_archs() == 1
    backend.configure(cell="folded", nas_path="masked", vmap_archs="all", depthwise="grouped", init="device",
                      compute_dtype="bfloat16")
    assert not space.supernet().sparse and evaluation.default_vmap_archs() is None
    assert backend.current().dtype == jnp.bfloat16
    described = backend.describe()
    assert described["cell"] == "folded" and described["vmap_archs"] is None
    assert described["overridden"] == ["cell", "compute_dtype", "depthwise", "init", "nas_path", "vmap_archs"]
    backend.configure(vmap_archs="4")  # a config string
    assert evaluation.default_vmap_archs() == 4 and not backend.describe()["overridden"].count("cell")


def test_depthwise_implementations_agree():
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((2, 9, 9, 6)), jnp.float32)
    kernel = jnp.asarray(rng.standard_normal((5, 5, 1, 6)), jnp.float32)
    slices = layers.depthwise_conv(x, kernel, stride=2, grouped=False)
    grouped = layers.depthwise_conv(x, kernel, stride=2, grouped=True)
    np.testing.assert_allclose(grouped, slices, atol=1e-4)


def test_the_policy_is_taken_when_a_space_or_step_is_built_not_when_it_is_traced():
    """A space built before `configure()` keeps the choice it was built with, whenever its modules
    are traced; one built after takes the new one. (A module-level global read at trace time would
    give a function jitted earlier the old choice and one traced later the new one, silently.)"""
    choices = {"block": ["sepconv", "identity"]}
    before = spaces.get("chain", choices=choices, channels=4, input_shape=(8, 8, 1))
    backend.configure(depthwise="grouped")
    after = spaces.get("chain", choices=choices, channels=4, input_shape=(8, 8, 1))
    backend.configure()
    assert before.supernet().net.grouped is False and before.standalone(np.array([0])).grouped is False
    assert after.supernet().net.grouped is True and after.standalone(np.array([0])).grouped is True
    x = jnp.ones((2, 8, 8, 1))
    variables = after.supernet().init(jax.random.key(0), x, np.array([0]), train=False)
    out = after.supernet().apply(variables, x, np.array([0]), train=True, mutable=["supernet_stats"])[0]
    ref = before.supernet().apply(variables, x, np.array([0]), train=True, mutable=["supernet_stats"])[0]
    np.testing.assert_allclose(out, ref, atol=1e-4)  # the two implementations agree


def test_device_init_gives_the_same_tree():
    space = spaces.get("chain", choices={"block": ["linear", "maxpool"]}, channels=4, input_shape=(8, 8, 1))
    model = space.supernet()
    host = training.init_params(space, model, jax.random.key(0), (8, 8, 1))
    backend.configure(init="device")
    device = training.init_params(space, model, jax.random.key(0), (8, 8, 1))
    assert jax.tree.structure(host) == jax.tree.structure(device)
    assert all(a.shape == b.shape for a, b in zip(jax.tree.leaves(host), jax.tree.leaves(device)))
    assert not all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(host), jax.tree.leaves(device)))


@pytest.mark.parametrize("overrides, message", [({"cell": "fast"}, "backend.cell must be"),
                                                ({"vmap_archs": "0"}, "positive integer"),
                                                ({"sparse": True}, "unknown backend choice")])
def test_bad_overrides_name_the_fix(overrides, message):
    with pytest.raises(ValueError, match=message):
        backend.configure(**overrides)
