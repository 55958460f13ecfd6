"""Bad input at the library's boundary: each gets a one-line message naming the fix."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import strategies
from supernet import data, one_shot, sharding, spaces, training
from supernet.runtime import Runtime
from supernet.spaces import sparse_cell


@pytest.fixture(scope="module")
def tiny():
    ds = data.get("digits")
    space = spaces.get("nas_bench_201", num_classes=10, input_shape=(8, 8, 1), channels=4, cells_per_stage=1, stages=1)
    return ds, space


def train(space, split, batch_size=16):
    return training.train_supernet(space, space.supernet(), split, steps=1, batch_size=batch_size,
                                   optimizer=training.make_optimizer(steps=1), key=jax.random.key(0),
                                   runtime=Runtime(sharding.make_mesh(1), progress=False))


def test_inputs_of_the_wrong_shape(tiny):
    ds, space = tiny
    flat = data.Split(ds.train.x.reshape(len(ds.train), 64), ds.train.y)
    with pytest.raises(ValueError, match=r"shape \(64,\) per example, but the space was built for \(8, 8, 1\).*reshape"):
        train(space, flat)


def test_labels_outside_the_classes(tiny):
    ds, space = tiny
    with pytest.raises(ValueError, match=r"labels lie in 0..12, but the network has 10 classes.*num_classes=13"):
        train(space, data.Split(ds.train.x, np.where(ds.train.y == 9, 12, ds.train.y).astype(np.int32)))


def test_batch_larger_than_the_data(tiny):
    ds, space = tiny
    small = data.Split(ds.train.x[:10], ds.train.y[:10])
    with pytest.raises(ValueError, match="batch size 16 is larger than the train split \\(10 examples\\)"):
        train(space, small)


def test_empty_search(tiny):
    ds, space = tiny
    with pytest.raises(ValueError, match="budget >= 1 .*search.budget"):
        one_shot.search(space, None, None, None, ds.val, ds.train.x[:8], budget=0, population=4,
                        key=jax.random.key(0), runtime=Runtime(sharding.make_mesh(1)))


def test_tell_under_jit_never_keeps_an_invalid_architecture(tiny):
    _, space = tiny
    strategy = strategies.get("random", space)
    state = strategy.init(jax.random.key(0))
    archs = jnp.asarray([[0, 1, 2, 3, 4, 9], [1, 1, 1, 1, 1, 1]], jnp.int32)  # the first is out of range
    state = jax.jit(strategy.tell)(state, archs, jnp.asarray([0.99, 0.5]))
    best_arch, best_fitness = strategies.best(state)
    assert np.asarray(best_arch).tolist() == [1, 1, 1, 1, 1, 1] and float(best_fitness) == 0.5
    with pytest.raises(ValueError, match=r"decision 5 .* has choice 9, valid range is 0..4"):
        strategy.tell(state, np.asarray(archs), np.asarray([0.99, 0.5]))  # eagerly: an error


def test_forward_mode_autodiff_on_the_sparse_cell_names_the_fix():
    x = jnp.ones((2, 4, 4, 3))
    ops = jnp.asarray([3, 1, 2, 4, 0, 3])
    params = [{"w_3x3": jnp.ones((3, 3, 3, 3)) * 0.1, "w_1x1": jnp.ones((1, 1, 3, 3)) * 0.1,
               "scale_3x3": jnp.ones(3), "bias_3x3": jnp.zeros(3), "scale_1x1": jnp.ones(3), "bias_1x1": jnp.zeros(3)}
              for _ in range(6)]
    f = lambda x: sparse_cell.train_cell(x, ops, jnp.ones(6), params)[0].sum()
    assert np.isfinite(float(jax.grad(f)(x).sum()))  # reverse mode works
    with pytest.raises(TypeError, match=r"space.supernet\(sparse=False\)"):
        jax.jvp(f, (x,), (x,))


def test_empty_population(tiny):
    ds, space = tiny
    from supernet import evaluation
    with pytest.raises(ValueError, match="empty population; pass at least one architecture"):
        evaluation.evaluate_population(space, space.supernet(), None, np.zeros((0, 6), np.int32), ds.train.x[:8],
                                       ds.val.x, ds.val.y, mesh=sharding.make_mesh(1))


def test_extract_without_calibration_data(tiny):
    _, space = tiny
    from supernet import evaluation
    with pytest.raises(ValueError, match=r"extract needs calib_x.*dataset.train.x\[:256\]"):
        evaluation.extract(space, None, space.largest())


def test_initialising_an_unknown_parameter_fails_loudly():
    import flax.linen as nn
    from supernet.initializers import host_init

    class Gated(nn.Module):
        @nn.compact
        def __call__(self, x):
            return x * self.param("gate", nn.initializers.ones, (x.shape[-1],))

    abstract = jax.eval_shape(lambda: Gated().init(jax.random.key(0), jnp.zeros((2, 3))))
    with pytest.raises(ValueError, match=r"parameter \['params'\]\['gate'\].*model.init\(key, x, arch"):
        host_init(abstract, jax.random.key(0))


def test_host_init_draws_embedding_tables_at_flax_scale():
    import flax.linen as nn
    from supernet.initializers import host_init
    abstract = jax.eval_shape(lambda: nn.Embed(500, 64).init(jax.random.key(0), jnp.zeros((2,), jnp.int32)))
    table = host_init(abstract, jax.random.key(0))["params"]["embedding"]
    assert table.shape == (500, 64)
    assert abs(float(table.std()) - 64 ** -0.5) < 0.01 and abs(float(table.mean())) < 0.01


def test_host_init_scales_attention_kernels_by_their_input_features():
    """Query, key and value kernels [in, heads, head_dim] read `in` features, as Flax's own
    initialiser treats them; the output kernel [heads, head_dim, out] reads heads x head_dim."""
    import flax.linen as nn
    from supernet.initializers import host_init
    attention = nn.MultiHeadDotProductAttention(num_heads=8, qkv_features=256)
    abstract = jax.eval_shape(lambda: attention.init(jax.random.key(0), jnp.zeros((1, 4, 64))))
    params = host_init(abstract, jax.random.key(0))["params"]
    for name in ("query", "key", "value"):
        assert params[name]["kernel"].shape == (64, 8, 32)
        assert abs(float(params[name]["kernel"].std()) - (2 / 64) ** 0.5) < 0.01
    assert abs(float(params["out"]["kernel"].std()) - (2 / 256) ** 0.5) < 0.005
