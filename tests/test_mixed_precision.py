"""bfloat16 compute with float32 parameters and optimiser state still learns."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from supernet import backend, data, sharding, spaces, training


@pytest.fixture(autouse=True)
def default_policy():
    yield
    backend.configure()


def _train(compute_dtype: str, steps: int = 150):
    backend.configure(compute_dtype=compute_dtype)
    ds = data.get("digits")
    space = spaces.get("chain", choices={"b1": ["conv", "conv1x1"], "b2": ["linear"]}, channels=8,
                       input_shape=ds.input_shape, num_classes=ds.num_classes)
    model = space.supernet()
    mesh = sharding.make_mesh()
    optimizer = training.make_optimizer(0.2, steps=steps, weight_decay=0.0)
    state = sharding.replicate(mesh, training.create_state(space, model, optimizer, jax.random.key(0), ds.input_shape))
    step = training.make_train_step(space, model, optimizer)
    batches = training.step_batches(ds.train, 64, seed=0, start_step=0)
    losses = []
    for t in range(steps):
        x, y = sharding.shard_batch(mesh, *next(batches))
        state, metrics = step(state, x, y, space.sample(jax.random.key(t), 1))
        losses.append(float(metrics["loss"]))
    return state, losses


def test_bfloat16_compute_converges_like_float32():
    state16, losses16 = _train("bfloat16")
    _, losses32 = _train("float32")
    dtypes = {leaf.dtype for leaf in jax.tree.leaves((state16.params, state16.opt_state)) if jnp.issubdtype(leaf.dtype, jnp.floating)}
    assert dtypes == {jnp.dtype(jnp.float32)}
    first, last = np.mean(losses16[:5]), np.mean(losses16[-30:])
    assert last < 0.5 * first, (first, last)
    # Means of the last 30 steps are noisy (random paths each step); the margin allows for rounding.
    # At learning rate 0.3 a bfloat16 run has been seen to spike mid-way on one CPU: keep 0.2.
    assert last < np.mean(losses32[-30:]) + 0.25, (last, np.mean(losses32[-30:]))
    assert losses16 != losses32  # the compute really ran in another precision
