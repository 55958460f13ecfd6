"""Differentiable search (DARTS, GDAS): masking, hard samples, the unrolled gradient, derivation,
8-device consistency and short end-to-end runs.

Most tests use a tiny `chain` space (two decisions of 3 and 2 options, so one slot is padded):
it compiles in seconds and goes through the same generic code as NAS-Bench-201 and MobileNet.
NAS-Bench-201 (one stage, 4 channels) runs end to end once; the slower checks on the real
supernets (second-order gradient, 8 devices, MobileNet) run with DIFFERENTIABLE_SLOW=1.
"""

import importlib.util
import json
import os
import shutil
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from supernet import differentiable as D
from supernet.jobs import differentiable as job
from strategies import distribution
from supernet import checkpoint, data, plots, records, sharding, spaces
from supernet.runtime import Runtime
from supernet.training import init_params, make_optimizer

QUIET = Runtime(progress=False)  # every local device, no workdir, no progress bars

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SLOW = os.environ.get("DIFFERENTIABLE_SLOW") == "1"
slow = pytest.mark.skipif(not SLOW, reason="set DIFFERENTIABLE_SLOW=1 for the checks on the full supernets")
CHOICES = {"b1": ["conv1x1", "identity", "avgpool"], "b2": ["linear", "identity"]}


def chain_space(input_shape=(8, 1)):
    return spaces.get("chain", choices=CHOICES, channels=4, num_classes=4, input_shape=input_shape)


@pytest.fixture(scope="module")
def toy():
    """The chain space and a small synthetic dataset of matching shape."""
    ds = data.get("synthetic", seed=0, input_shape=(8, 1), num_classes=4, num_train=128, num_val=64, num_test=64)
    return chain_space(), ds


# -- architecture parameters -------------------------------------------------------------------------

def test_masked_softmax_gives_padded_slots_zero_weight_and_gradient(toy):
    space, _ = toy
    alphas = jax.random.normal(jax.random.key(0), space.option_mask().shape) * 3
    weights = D.arch_weights(space, alphas)
    assert weights[1, 2] == 0.0  # decision b2 has 2 options; slot 2 is padding
    np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=1e-6)
    grad = jax.grad(lambda a: (D.arch_weights(space, a) * jnp.arange(3.0)).sum())(alphas)
    assert np.all(np.isfinite(grad)) and grad[1, 2] == 0.0
    assert np.all(D.init_alphas(space, jax.random.key(1))[~space.option_mask()] == 0)


def test_gumbel_sample_is_one_hot_with_a_straight_through_gradient(toy):
    space, _ = toy
    alphas = D.init_alphas(space, jax.random.key(0), scale=1.0)
    for seed in range(20):
        hard = np.asarray(D.gumbel_hard(space, jax.random.key(seed), alphas, 1.0))
        assert np.array_equal(hard.sum(-1), np.ones(space.num_decisions))  # exactly one op per decision
        assert set(np.unique(hard)) <= {0.0, 1.0} and hard[1, 2] == 0.0   # never a padded slot
    for sampled_only in (True, False):
        value = lambda a: (D.gumbel_hard(space, jax.random.key(0), a, 1.0, sampled_only) * jnp.arange(1.0, 4.0)).sum()
        grad = jax.grad(value)(alphas)
        assert np.abs(grad[space.option_mask()]).max() > 0 and grad[1, 2] == 0.0


def test_derive_never_picks_none_on_nas_bench_201():
    space = spaces.get("nas_bench_201")
    weights = np.full((6, 5), 0.1)
    weights[:, 0] = 0.6  # `none` heaviest everywhere
    weights[np.arange(6), [1, 2, 3, 4, 1, 2]] = 0.2
    arch = D.derive(space, weights)
    assert arch.tolist() == [1, 2, 3, 4, 1, 2]
    assert D.parameter_free_share(space, arch) == pytest.approx(3 / 6)  # skip, pool, skip
    chain = chain_space()
    assert D.derive(chain, np.array([[0.2, 0.7, 0.1], [0.6, 0.4, 0.0]])).tolist() == [1, 0]


# -- the steps -------------------------------------------------------------------------------------------

def _batch(ds, start, size=32):
    return ds.train.x[start:start + size], ds.train.y[start:start + size], ds.val.x[:size], ds.val.y[:size]


def test_gdas_step_runs_exactly_the_sampled_path(toy):
    """The val loss GDAS reports equals the loss of the one-hot architecture it sampled."""
    space, ds = toy
    model = space.supernet(mixed=False)
    wo, ao = make_optimizer(0.05, steps=10), D.make_alpha_optimizer(0.1)
    state = D.create_search_state(space, model, wo, ao, jax.random.key(0), ds.input_shape)
    state = state.replace(alphas=D.init_alphas(space, jax.random.key(3), scale=1.0))
    # The step donates its state: keep host copies of what we compare against.
    params, alphas = jax.tree.map(np.asarray, (state.params, state.alphas))
    step = D.make_gdas_step(space, model, wo, ao)
    tx, ty, vx, vy = _batch(ds, 0)
    key, tau = jax.random.key(7), 2.0
    new, metrics = step(state, tx, ty, vx, vy, key, jnp.float32(tau))
    hard = D.gumbel_hard(space, jax.random.split(key)[0], alphas, tau)
    loss = jax.jit(D.make_loss(model))(params, jax.nn.one_hot(hard.argmax(-1), 3), vx, vy)[0]
    np.testing.assert_allclose(metrics["val_loss"], loss, rtol=1e-5)
    assert not np.allclose(new.alphas, alphas)


def _f64(tree):
    return jax.tree.map(lambda v: jnp.asarray(v, jnp.float64), tree)


def test_second_order_gradient_matches_finite_differences(toy):
    space, ds = toy
    _check_unrolled_gradient(space, ds, xi=0.5)


def _check_unrolled_gradient(space, ds, xi):
    """forward-over-reverse unrolled gradient == central differences of
    a -> L_val(w - xi * grad_w L_train(w, a), a), in float64."""
    model = space.supernet(mixed=True)
    loss = D.make_loss(model)
    params = init_params(space, model, jax.random.key(0), ds.input_shape)  # float32, as always
    with jax.enable_x64(True):
        params = _f64(params)
        tx, ty, vx, vy = _batch(ds, 0, 16)
        train, val = (_f64(tx), ty), (_f64(vx), vy)
        alphas = _f64(D.init_alphas(space, jax.random.key(1), scale=0.5))
        to_weights = lambda a: D.arch_weights(space, a)

        @jax.jit
        def objective(a):
            g = jax.grad(lambda p: loss(p, to_weights(a), *train)[0])(params)
            virtual = jax.tree.map(lambda w, gw: w - xi * gw, params, g)
            return loss(virtual, to_weights(a), *val)[0]

        grad = jax.jit(lambda a: D.unrolled_alpha_grad(loss, params, a, to_weights, train, val, xi)[0])(alphas)
        first_order = jax.jit(jax.grad(lambda a: loss(params, to_weights(a), *val)[0]))(alphas)
        eps = 1e-5
        fd = np.zeros(alphas.shape)
        for d, k in zip(*np.nonzero(space.option_mask())):
            e = jnp.zeros_like(alphas).at[d, k].set(eps)
            fd[d, k] = (objective(alphas + e) - objective(alphas - e)) / (2 * eps)
        mask = space.option_mask()
        np.testing.assert_allclose(np.asarray(grad)[mask], fd[mask], rtol=1e-5, atol=1e-9)
        assert np.asarray(grad)[~mask].tolist() == [0.0] * int((~mask).sum())
        # The check has teeth: the unrolled gradient differs from the first-order one.
        assert np.abs(np.asarray(grad - first_order)[mask]).max() > 1e-3 * np.abs(fd[mask]).max()


def test_darts_second_order_step_uses_the_unrolled_gradient(toy):
    """One jitted second-order step with SGD on the alphas moves them by -lr * unrolled gradient."""
    space, ds = toy
    model = space.supernet(mixed=True)
    wo, ao = make_optimizer(0.05, steps=10), optax.sgd(1.0)
    state = D.create_search_state(space, model, wo, ao, jax.random.key(0), ds.input_shape)
    tx, ty, vx, vy = _batch(ds, 0)
    expected, _ = jax.jit(lambda p, a: D.unrolled_alpha_grad(D.make_loss(model), p, a, lambda b: D.arch_weights(space, b),
                                                             (tx, ty), (vx, vy), 0.05))(state.params, state.alphas)
    before = np.asarray(state.alphas)  # the step donates its state
    step = D.make_darts_step(space, model, wo, ao, order=2, xi=0.05)
    new, metrics = step(state, tx, ty, vx, vy, jnp.float32(0.0))
    np.testing.assert_allclose(before - np.asarray(new.alphas), expected, rtol=1e-4, atol=1e-7)
    assert np.isfinite(metrics["train_loss"])


# -- whole searches ---------------------------------------------------------------------------------------

def test_search_end_to_end_on_nas_bench_201_with_files(tmp_path):
    ds = data.get("digits", seed=0)
    space = spaces.get("nas_bench_201", num_classes=10, input_shape=ds.input_shape, channels=4,
                       cells_per_stage=1, stages=1)
    recipe = D.Recipe(method="darts", steps=6, batch_size=32, log_every=2, alpha_lr=0.05, remedy="aux_skip")
    result = D.run_differentiable_search(space, ds, recipe, key=jax.random.key(0),
                                         runtime=Runtime(workdir=str(tmp_path), progress=False))
    assert 0 not in result["arch"]  # never `none`
    assert space.to_string(result["arch"]) == result["arch_string"]
    np.testing.assert_allclose(np.sum(result["weights"], -1), 1.0, rtol=1e-5)
    plots.arch_weights(space, result["history"], str(tmp_path / "arch_weights.png"))
    for name in ("metrics.jsonl", "arch_weights.png"):
        assert (tmp_path / name).stat().st_size > 0
    lines = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    steps = [l for l in lines if l["stage"] == "darts"]
    archs = [l for l in lines if l["stage"] == "darts/arch"]
    assert [l["step"] for l in steps] == [2, 4, 6] and steps[-1]["beta"] == 0.0  # decayed from 1 to 0
    assert [l["step"] for l in archs] == [2, 4, 6]
    assert all(0.0 <= l["param_free_share"] <= 1.0 for l in archs)
    assert result["step_seconds"] > 0 and result["search_seconds"] > 0


@pytest.mark.parametrize("log_every, logged", [(2, [2, 4, 6, 8]), (8, [8])], ids=["logged", "before_first_log"])
def test_resumed_search_continues_exactly(toy, tmp_path, log_every, logged):
    """A GDAS search checkpointed in a workdir, its newest checkpoints lost as in a kill, reruns to
    the uninterrupted result and history, with no metrics line twice. With log_every=8 the checkpoints
    (every 2 steps) come before the first log, so the one resumed from holds an empty history."""
    space, ds = toy
    recipe = D.Recipe(method="gdas", steps=8, batch_size=32, log_every=log_every, alpha_lr=0.05)
    run = lambda workdir: D.run_differentiable_search(space, ds, recipe, key=jax.random.key(0),
                                                      runtime=Runtime(workdir=workdir, progress=False))
    straight = run(str(tmp_path / "a"))
    saved = checkpoint.Checkpoints(checkpoint.stage_dir(str(tmp_path / "a"), "gdas"))
    assert saved.steps() == [4, 6, 8]
    for step in (6, 8):
        shutil.rmtree(os.path.join(saved.directory, str(step)))
    resumed = run(str(tmp_path / "a"))
    for name in ("arch", "alphas", "history"):
        np.testing.assert_allclose(np.asarray(resumed[name]["weights"] if name == "history" else resumed[name]),
                                   np.asarray(straight[name]["weights"] if name == "history" else straight[name]),
                                   rtol=1e-5, atol=1e-6)
    assert resumed["history"]["step"] == logged
    assert resumed["history"]["param_free_share"] == straight["history"]["param_free_share"]   # the same floats
    keys = [(l["stage"], l["step"]) for l in records.MetricsLog(str(tmp_path / "a")).lines()]
    assert len(keys) == len(set(keys)) == 2 * len(logged)  # the search's and the arch's lines


def test_gdas_search_and_comparison_on_chain(toy, tmp_path):
    space, ds = toy
    result = D.run_differentiable_search(space, ds, D.Recipe(method="gdas", steps=8, batch_size=32, log_every=4,
                                                              alpha_lr=0.05), key=jax.random.key(0), runtime=QUIET)
    comparison = job.compare_with_random(space, ds, np.asarray(result["arch"]), num_random=2, retrain_steps=3,
                                         batch_size=32, key=jax.random.key(1), runtime=QUIET)
    assert [r["name"] for r in [comparison["derived"]] + comparison["random"]] == ["derived", "random0", "random1"]
    assert comparison["derived"]["arch"] == result["arch"]
    assert 0 <= comparison["derived_percentile"] <= 1 and comparison["random_test_std"] >= 0


def test_early_stop_keeps_the_last_architecture_within_the_limit(toy):
    space, ds = toy
    # A limit of 0 parameter-free decisions that the search soon breaks (identity is free).
    result = D.run_differentiable_search(space, ds, D.Recipe(method="darts", steps=40, batch_size=32, log_every=2, alpha_lr=0.3, remedy="early_stop", max_param_free_share=0.0, min_stop_fraction=0.0), key=jax.random.key(0), runtime=QUIET)
    shares = result["history"]["param_free_share"]
    if result["stopped_early_at"] is None:
        assert max(shares) == 0.0
    else:
        assert shares[-1] > 0.0 and result["steps_run"] == result["stopped_early_at"]
        if result["kept_step"] is not None:
            assert result["param_free_share"] == 0.0


def test_warmup_trains_the_weights_only(toy):
    space, ds = toy
    result = D.run_differentiable_search(space, ds, D.Recipe(method="gdas", steps=4, batch_size=32, log_every=2, alpha_lr=0.5, warmup_fraction=1.0), key=jax.random.key(0), runtime=QUIET)
    initial = D.init_alphas(space, jax.random.split(jax.random.split(jax.random.key(0), 3)[0])[1])
    np.testing.assert_array_equal(result["alphas"], initial)
    assert result["warmup_steps"] == 4


def test_bad_options_are_explained(toy):
    space, ds = toy
    with pytest.raises(ValueError, match="method must be one of 'darts', 'gdas', got 'enas'"):
        D.Recipe(method="enas")  # refused when the recipe is built, before any search
    mobilenet = spaces.get("mobilenet")
    with pytest.raises(ValueError, match="skip option"):
        D.run_differentiable_search(mobilenet, ds, D.Recipe(remedy="aux_skip"), key=jax.random.key(0))


def test_as_a_strategy_asks_the_derived_architecture_first(toy):
    from strategies import interface
    from strategies.constraints import Feasibility
    space = spaces.get("nas_bench_201")
    weights = np.asarray(D.arch_weights(space, D.init_alphas(space, jax.random.key(0), scale=2.0)))
    strategy = interface.build(space, distribution.make_core(space, 50, weights=weights), Feasibility(space, []),
                          capacity=50, avoid_repeats=True, name="differentiable")
    state = strategy.init(jax.random.key(0))
    archs, state = strategy.ask(jax.random.key(1), state, 5)
    assert np.asarray(archs[0]).tolist() == distribution.derive(space, weights).tolist()
    assert not np.any(np.asarray(archs) == 0)  # like `derive`, never `none`
    assert len({tuple(a) for a in np.asarray(archs).tolist()}) == 5


def _load_config(name, arg):
    return importlib.import_module(f"experiments.{name}").get_config(arg)


def test_configs_map_onto_the_library_arguments():
    import inspect
    import dataclasses
    search_args = {f.name for f in dataclasses.fields(D.Recipe)}
    compare_args = set(inspect.signature(job.compare_with_random).parameters)
    for arg, method in (("runlocal", "darts"), ("order2,early_stop", "darts"), ("gdas", "gdas"), ("gdas,mobilenet", "gdas")):
        config = _load_config("differentiable", arg)
        assert config.job == "differentiable"
        assert set(config.search) <= search_args and set(config.compare) - {"num_random"} <= compare_args
        assert config.search.method == method
    assert _load_config("differentiable", "runlocal").dataset.name == "digits"
    assert _load_config("differentiable", "order2").search.order == 2
    with pytest.raises(ValueError, match="DARTS options"):
        _load_config("differentiable", "gdas,order2")
    with pytest.raises(ValueError, match="unknown variant"):
        _load_config("differentiable", "enas")


# -- data parallelism over 8 forced CPU devices ---------------------------------------------------------------

EIGHT_DEVICES = r"""
import json, sys, jax, jax.numpy as jnp, numpy as np, optax
from supernet import data, sharding, spaces
from supernet.training import make_optimizer
from supernet import differentiable as D
assert jax.device_count() == 8, jax.devices()
kind = sys.argv[1]
ds = data.get("synthetic", seed=0, input_shape=(8, 1), num_classes=4, num_train=128, num_val=64, num_test=64)
if kind == "chain":
    space = spaces.get("chain", choices={"b1": ["conv1x1", "identity", "avgpool"], "b2": ["linear", "identity"]},
                       channels=4, num_classes=4, input_shape=(8, 1))
elif kind == "nas_bench_201":
    space = spaces.get("nas_bench_201", num_classes=4, input_shape=(8, 1), channels=4, cells_per_stage=1, stages=1)
else:
    space = spaces.get("mobilenet", num_classes=4, input_shape=(8, 1), stages=((4, 2, 1),), stem_channels=4,
                       head_channels=8, kernel_sizes=(3, 5), expand_ratios=(2, 3))
out = {}
for method, order in (("darts", 1), ("darts", 2), ("gdas", 1)):
    model = space.supernet(mixed=method == "darts")
    # SGD on the alphas: Adam's normalisation would amplify float noise in near-zero gradients.
    wo, ao = make_optimizer(0.05, steps=10), optax.sgd(0.5)
    step = (D.make_darts_step(space, model, wo, ao, order=order, xi=0.05) if method == "darts"
            else D.make_gdas_step(space, model, wo, ao))
    finals = {}
    for n in (1, 8):
        mesh = sharding.make_mesh(n)
        state = sharding.replicate(mesh, D.create_search_state(space, model, wo, ao, jax.random.key(0), (8, 1)))
        for t in range(3):
            tx, ty, vx, vy = sharding.shard_batch(mesh, ds.train.x[32 * t:32 * t + 32], ds.train.y[32 * t:32 * t + 32],
                                                  ds.val.x[16 * t:16 * t + 32], ds.val.y[16 * t:16 * t + 32])
            extra = (jnp.float32(0.0),) if method == "darts" else (jax.random.key(t), jnp.float32(1.0))
            state, metrics = step(state, tx, ty, vx, vy, *extra)
        shards = [np.asarray(s.data) for s in state.alphas.addressable_shards]
        assert len(shards) == n and all(np.array_equal(shards[0], s) for s in shards), "alphas differ across devices"
        assert state.alphas.sharding.is_fully_replicated and len(tx.addressable_shards) == n
        finals[n] = shards[0]
    out[f"{method}{order}"] = float(np.abs(finals[1] - finals[8]).max()), float(np.abs(finals[1] - D.init_alphas(space, jax.random.split(jax.random.key(0))[1])).max())
print("RESULT" + json.dumps(out))
"""


def _eight_devices(kind):
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8", "PYTHONPATH": REPO,
           "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run([sys.executable, "-c", EIGHT_DEVICES, kind], env=env, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.split("RESULT", 1)[1])
    for name, (difference, moved) in out.items():
        assert moved > 1e-3, f"{name}: the alphas did not move"
        assert difference < 1e-5 * max(1.0, moved), f"{name}: 8 devices differ from 1 by {difference}"


def test_eight_devices_hold_the_same_alphas_as_one():
    _eight_devices("chain")


@slow
def test_eight_devices_on_nas_bench_201():
    _eight_devices("nas_bench_201")


@slow
def test_eight_devices_on_mobilenet():
    _eight_devices("mobilenet")


@slow
def test_second_order_gradient_on_nas_bench_201():
    ds = data.get("synthetic", seed=0, input_shape=(8, 1), num_classes=4, num_train=64, num_val=32, num_test=32)
    space = spaces.get("nas_bench_201", num_classes=4, input_shape=(8, 1), channels=4, cells_per_stage=1, stages=1)
    _check_unrolled_gradient(space, ds, xi=0.5)


@slow
def test_both_methods_run_on_mobilenet(tmp_path):
    ds = data.get("digits", seed=0)
    space = spaces.get("mobilenet", num_classes=10, input_shape=ds.input_shape, stages=((4, 2, 1), (8, 2, 2)),
                       stem_channels=4, head_channels=16, kernel_sizes=(3, 5), expand_ratios=(2, 3))
    for method in ("darts", "gdas"):
        result = D.run_differentiable_search(space, ds, D.Recipe(method=method, steps=4, batch_size=32, log_every=2),
                                             key=jax.random.key(0), runtime=QUIET)
        assert space.to_string(result["arch"]) == result["arch_string"]
        assert os.path.exists(plots.arch_weights(space, result["history"], str(tmp_path / f"{method}.png")))


def test_the_differentiable_job_refuses_an_unknown_search_key_naming_the_closest():
    from supernet import config_check
    from supernet.jobs import differentiable as job
    config = _load_config("differentiable", None)
    config.search.alpha_lrr = 0.1
    with pytest.raises(config_check.ConfigError, match="search.alpha_lrr: .*did you mean 'alpha_lr'"):
        job.check(config)


def test_a_restored_history_reports_the_shares_an_uninterrupted_run_does():
    """The checkpoint keeps float32 shares; 2 of 6 parameter-free edges is 1/3, which float32 rounds."""
    space = spaces.get("nas_bench_201")
    arch = space.from_string("|none~0|+|skip_connect~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_1x1~1|nor_conv_3x3~2|")
    share = D.parameter_free_share(space, arch)
    assert share == 1 / 3 and float(np.float32(share)) != share
    saved = {"state": "state", "history": {"step": np.asarray([2]), "weights": np.zeros((1, 6, 5), np.float32),
                                           "arch": arch[None], "param_free_share": np.asarray([share], np.float32)}}
    history = {"step": [], "weights": [], "arch": [], "param_free_share": []}
    assert D._restored(space, saved, history) == "state"
    assert history["param_free_share"] == [share]


def test_gdas_on_a_module_of_yours_runs_on_the_sparse_path():
    """A `nas.space` module on the CPU policy: GDAS's sampled paths run sparse (only the sampled
    candidates, blocks and sizes), and the architecture still learns."""
    from experiments.own_cnn import Net
    from supernet import nas
    ds = data.get("synthetic", seed=0, input_shape=(8, 8, 1), num_classes=10, num_train=64, num_val=32, num_test=32)
    space = nas.space(Net(), ds.train.x[:2])
    assert space.supernet().sparse and not space.supernet(mixed=True).sparse
    result = D.run_differentiable_search(space, ds, D.Recipe(method="gdas", steps=4, batch_size=16, log_every=2,
                                                              alpha_lr=0.5, warmup_fraction=0.0),
                                         key=jax.random.key(0), runtime=QUIET)
    space.validate(np.asarray(result["arch"]))
    start, end = (np.asarray(w) for w in result["history"]["weights"])
    assert np.abs(end - start).max() > 0.01   # the alphas moved
