"""A supernet body inside a user's own model (Linen, and NNX through `flax.nnx.bridge`): trained
with the user's own optax loop, one compilation for every architecture, calibration that leaves
the user's batch norm alone; and the architecture argument (int32[D] or float[D, K]) checks."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from supernet import data, evaluation, initializers, profiling, spaces
from supernet.layers import STATS_COLLECTION

STEPS = 12


def tiny(stages=2, **options):
    return spaces.get("nas_bench_201", input_shape=(8, 8, 1), channels=4, cells_per_stage=1, stages=stages,
                      **options)


@pytest.fixture(scope="module")
def digits():
    ds = data.get("digits")
    return ds.train.x / 16.0, ds.train.y  # pixels 0..16 -> 0..1 (the user's stem has no norm)


def host_variables(model, *args, **kwargs):
    """Variables drawn on the host (`initializers.host_init`): compiling Flax's initialisers for the
    sparse cell costs about a minute on two loaded CPU cores (`model.init` itself is tested below)."""
    abstract = jax.eval_shape(lambda: model.init(jax.random.key(0), *args, **kwargs))
    return initializers.host_init(abstract, jax.random.key(0))


def nonzero(tree) -> bool:
    return all(float(jnp.abs(leaf).sum()) > 0 for leaf in jax.tree.leaves(tree))


# -- Linen -------------------------------------------------------------------------------------------

class UserNet(nn.Module):
    """A user's network: its own conv stem, the supernet body (without its stem), its own batch
    norm and classifier."""
    body: nn.Module

    def setup(self):
        self.stem = nn.Conv(4, (3, 3))
        self.bn = nn.BatchNorm(momentum=0.9)
        self.head = nn.Dense(10)

    def features(self, x, arch, train: bool = False):
        return self.body(nn.relu(self.stem(x)), arch, train=train)

    def __call__(self, x, arch, train: bool = False):
        h = self.bn(self.features(x, arch, train), use_running_average=not train)
        return self.head(nn.relu(h).mean(axis=(1, 2)))


def test_linen_model_with_a_supernet_body(digits):
    x_all, y_all = digits
    space = tiny()
    model = UserNet(space.body(stem=False))  # the CPU default: the sparse cell
    archs = np.asarray(space.sample(jax.random.key(1), STEPS))
    variables = host_variables(model, x_all[:2], archs[0], train=False)
    assert set(variables) == {"params", "batch_stats", STATS_COLLECTION}
    tx = optax.adam(1e-2)

    @jax.jit
    def step(params, batch_stats, opt_state, x, y, arch):
        def loss_fn(p):
            # train mode needs only the user's own batch_stats mutable: the supernet keeps none
            logits, updated = model.apply({"params": p, "batch_stats": batch_stats}, x, arch, train=True,
                                          mutable=["batch_stats"])
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), updated["batch_stats"]
        (loss, batch_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), batch_stats, opt_state, loss, grads

    params, batch_stats, opt_state = variables["params"], variables["batch_stats"], tx.init(variables["params"])
    losses = []
    with profiling.count_compilations() as compiles:
        for t, arch in enumerate(archs):
            x, y = x_all[32 * t:32 * (t + 1)], y_all[32 * t:32 * (t + 1)]
            params, batch_stats, opt_state, loss, grads = step(params, batch_stats, opt_state, x, y, arch)
            losses.append(float(loss))
    assert compiles.count == 1
    assert np.all(np.isfinite(losses)) and np.mean(losses[-4:]) < np.mean(losses[:4]), losses
    for layer in ("stem", "bn", "head"):  # the user's own layers learn
        assert nonzero(grads[layer]), layer
    assert any(float(jnp.abs(leaf).sum()) > 0 for leaf in jax.tree.leaves(grads["body"]))

    variables = {"params": params, "batch_stats": batch_stats, STATS_COLLECTION: variables[STATS_COLLECTION]}
    arch, calib = archs[-1], x_all[-64:]
    calibrated = jax.jit(evaluation.calibrate_variables, static_argnums=0)(model, variables, arch, calib)
    # only the supernet's statistics change; a train-mode pass would have moved the user's averages
    for a, b in zip(jax.tree.leaves(calibrated["batch_stats"]), jax.tree.leaves(batch_stats)):
        np.testing.assert_array_equal(a, b)
    assert set(calibrated) == set(variables)
    # calibrated evaluation of the supernet part equals its train-mode output on the calibration batch
    features = jax.jit(lambda v, train: model.apply(v, calib, arch, train=train, method="features"),
                       static_argnums=1)
    trained_features = features(calibrated, True)
    np.testing.assert_allclose(features(calibrated, False), trained_features, atol=1e-4)
    # (not vacuous: a train-mode pass would have moved the user's running mean towards this)
    assert not np.allclose(trained_features.mean((0, 1, 2)), batch_stats["bn"]["mean"], atol=1e-3)


# -- NNX ---------------------------------------------------------------------------------------------

class UserNNX(nnx.Module):
    """A user's NNX network: the supernet body (with its stem, so 1-channel input works) wrapped
    by `nnx.bridge.ToNNX`, then the user's own batch norm and classifier."""

    def __init__(self, body: nn.Module, features: int, rngs: nnx.Rngs):
        self.body = nnx.bridge.ToNNX(body, rngs=rngs)
        self.bn = nnx.BatchNorm(features, momentum=0.9, rngs=rngs)
        self.head = nnx.Linear(features, 10, rngs=rngs)

    def __call__(self, x, arch, train: bool):
        h = self.bn(self.body(x, arch, train=train), use_running_average=not train)
        return self.head(nnx.relu(h).mean(axis=(1, 2)))


def test_nnx_model_with_a_supernet_body(digits):
    x_all, y_all = digits
    space = tiny(stages=1)  # one stage: `lazy_init` runs Flax's initialisers eagerly, per shape
    archs = np.asarray(space.sample(jax.random.key(2), STEPS))
    # the folded cell here (the accelerator default); the Linen test covers the sparse one
    model = UserNNX(space.body(sparse=False), space.channels, nnx.Rngs(0))
    nnx.bridge.lazy_init(model, x_all[:2], archs[0], train=False)
    optimizer = nnx.Optimizer(model, optax.adam(1e-2), wrt=nnx.Param)

    @nnx.jit
    def step(model, optimizer, x, y, arch):
        def loss_fn(model):
            logits = model(x, arch, train=True)
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
        loss, grads = nnx.value_and_grad(loss_fn)(model)
        optimizer.update(model, grads)
        return loss, grads

    losses = []
    with profiling.count_compilations() as compiles:
        for t, arch in enumerate(archs):
            loss, grads = step(model, optimizer, x_all[32 * t:32 * (t + 1)], y_all[32 * t:32 * (t + 1)], arch)
            losses.append(float(loss))
    assert compiles.count == 1
    assert np.all(np.isfinite(losses)) and np.mean(losses[-4:]) < np.mean(losses[:4]), losses
    assert nonzero(grads["bn"]) and nonzero(grads["head"])
    assert float(jnp.abs(grads["body"]["stem"]["conv"]["kernel"][...]).sum()) > 0

    # Calibrate: the wrapped body in train mode with only the supernet statistics mutable.
    arch, calib = archs[-1], x_all[-64:]
    user_stats = jax.tree.map(np.asarray, nnx.state(model.bn, nnx.BatchStat))
    model.body(calib, arch, train=True, mutable=[STATS_COLLECTION])
    for a, b in zip(jax.tree.leaves(nnx.state(model.bn, nnx.BatchStat)), jax.tree.leaves(user_stats)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(model.body(calib, arch, train=False), model.body(calib, arch, train=True), atol=1e-4)


# -- the architecture argument ------------------------------------------------------------------------

def _models():
    """(space, supernet) pairs, small enough to run eagerly."""
    chain = spaces.get("chain", choices={"a": ["conv", "maxpool", "identity"], "b": ["linear"]}, channels=4,
                       input_shape=(8, 8, 1))
    mobile = spaces.get("mobilenet", input_shape=(8, 8, 1), stages=((4, 2, 1),), kernel_sizes=(1, 3),
                        expand_ratios=(1, 2), stem_channels=4, head_channels=8)
    nb201 = tiny(stages=1)
    return {"nas_bench_201": (nb201, nb201.supernet(sparse=False)), "chain": (chain, chain.supernet()),
            "mobilenet": (mobile, mobile.supernet())}


@pytest.mark.parametrize("name", ["nas_bench_201", "chain", "mobilenet"])
def test_int_architecture_equals_one_hot_weights(name):
    space, model = _models()[name]
    x = jnp.asarray(np.random.default_rng(0).standard_normal((4, 8, 8, 1)), jnp.float32)
    arch = np.asarray(space.sample(jax.random.key(3), 1))[0]
    params = host_variables(model, x, arch, train=True)["params"]
    weights = jax.nn.one_hot(arch, max(space.num_choices))
    np.testing.assert_array_equal(model.apply({"params": params}, x, arch, train=True),
                                  model.apply({"params": params}, x, weights, train=True))


@pytest.mark.parametrize("name", ["nas_bench_201", "chain", "mobilenet"])
def test_body_returns_features(name):
    space, _ = _models()[name]
    x = jax.ShapeDtypeStruct((2, 8, 8, 3), jnp.float32)  # the stem takes any channel count
    arch = jnp.asarray(space.largest())
    out, variables = jax.eval_shape(lambda x: space.body().init_with_output(jax.random.key(0), x, arch), x)
    assert out.ndim == 4 and out.shape[:3] == (2, 8, 8)
    assert not {"head", "classifier"} & layers(variables["params"])
    full = jax.eval_shape(lambda x: space.supernet().init(jax.random.key(0), x, arch), x)["params"]
    assert layers(variables["params"]) < layers(full)  # the body's weights are the supernet's, less the head
    headless = jax.eval_shape(lambda x: space.supernet(head=False, stem=False).init(jax.random.key(0), x, arch),
                              jax.ShapeDtypeStruct((2, 8, 8, 4), jnp.float32))["params"]
    assert not {"stem", "stem_bn"} & layers(headless)


def layers(params) -> set:
    """The top-level layer names (a supernet built by `supernet.nas` holds them under "net")."""
    return set(params["net"]) if set(params) == {"net"} else set(params)


@pytest.mark.parametrize("name", ["nas_bench_201", "chain", "mobilenet"])
def test_body_without_stem_checks_channels(name):
    space, _ = _models()[name]
    body = space.body(stem=False)
    x = jax.ShapeDtypeStruct((2, 8, 8, 3), jnp.float32)
    with pytest.raises(ValueError, match="stem=False takes inputs with 4 channels"):
        jax.eval_shape(lambda x: body.init(jax.random.key(0), x, jnp.asarray(space.largest())), x)


def test_shape_errors_name_the_expected_shape():
    model = tiny(stages=1).supernet()
    x = jax.ShapeDtypeStruct((2, 8, 8, 1), jnp.float32)
    init = lambda arch: jax.eval_shape(lambda x: model.init(jax.random.key(0), x, arch), x)
    with pytest.raises(ValueError, match=r"int32\[6\].*got int32 of shape \(5,\)"):
        init(jnp.zeros(5, jnp.int32))
    with pytest.raises(ValueError, match=r"float\[6, 5\].*got float32 of shape \(6, 4\)"):
        init(jnp.zeros((6, 4), jnp.float32))


def test_out_of_range_choice_raises_eagerly():
    space = tiny(stages=1)
    model = space.supernet()
    x = jnp.zeros((2, 8, 8, 1))
    params = host_variables(model, x, space.largest(), train=True)["params"]
    with pytest.raises(ValueError, match=r"decision 2 \('edge2_1to2'\) has choice 7, valid range is 0..4"):
        model.apply({"params": params}, x, np.asarray([0, 1, 7, 0, 0, 0], np.int32), train=True)
    mobile, mobile_model = _models()["mobilenet"]
    arch = mobile.largest().copy()
    arch[0] = 2  # the depth decision has 2 options (1 or 2 blocks)
    with pytest.raises(ValueError, match=r"decision 0 \('stage1_depth'\) has choice 2, valid range is 0..1"):
        mobile_model.apply({"params": {}}, x, arch, train=True)


@pytest.mark.parametrize("sparse", [True, False])
def test_out_of_range_choice_under_jit_gives_nan(sparse):
    space = tiny(stages=1)
    model = space.supernet(sparse=sparse)
    x = jnp.asarray(np.random.default_rng(0).standard_normal((4, 8, 8, 1)), jnp.float32)
    params = host_variables(model, x, space.largest(), train=True)["params"]
    forward = jax.jit(lambda arch: model.apply({"params": params}, x, arch, train=True))
    assert np.all(np.isfinite(forward(jnp.asarray(space.largest()))))
    # Edge 0 out of range and every other edge `none`: the sparse cell's argmax of a NaN row picks
    # `none`, which never reads its weight, so only the output guard makes this NaN.
    for bad in ([5, 0, 0, 0, 0, 0], [3, 3, 3, -1, 3, 3]):
        assert np.all(np.isnan(forward(jnp.asarray(bad, jnp.int32)))), bad


def test_out_of_range_unused_row_under_jit_gives_nan():
    """A one-block stage's depth decision gates nothing; its out-of-range choice still shows."""
    space = spaces.get("mobilenet", input_shape=(8, 8, 1), stages=((4, 1, 1),), kernel_sizes=(1, 3),
                       expand_ratios=(1, 2), stem_channels=4, head_channels=8)
    model = space.supernet()
    x = jnp.ones((2, 8, 8, 1))
    params = host_variables(model, x, space.largest(), train=True)["params"]
    forward = jax.jit(lambda arch: model.apply({"params": params}, x, arch, train=True))
    assert np.all(np.isfinite(forward(jnp.zeros(3, jnp.int32))))
    assert np.all(np.isnan(forward(jnp.asarray([1, 0, 0], jnp.int32))))


def test_init_in_eval_mode():
    space = tiny(stages=1)
    x = jnp.asarray(np.random.default_rng(0).standard_normal((4, 8, 8, 1)), jnp.float32)
    arch = jnp.asarray(space.largest())
    model = space.supernet(sparse=False)
    variables = model.init(jax.random.key(0), x, arch, train=False)
    assert set(variables) == {"params", STATS_COLLECTION}
    # init stored the batch's statistics, so evaluation on the same batch equals training mode
    np.testing.assert_allclose(model.apply(variables, x, arch, train=False),
                               model.apply(variables, x, arch, train=True), atol=1e-4)
    # the sparse cell too (traced only: its eager init compiles for a minute on a loaded CPU)
    sparse = jax.eval_shape(lambda: space.supernet(sparse=True).init(jax.random.key(0), x, arch, train=False))
    assert jax.tree.structure(sparse) == jax.tree.structure(variables)
    # outside init, missing statistics name the function that computes them
    with pytest.raises(ValueError, match=r"supernet\.evaluation\.calibrate_variables\(model, variables, arch, x\)"):
        model.apply({"params": variables["params"]}, x, arch, train=False)
