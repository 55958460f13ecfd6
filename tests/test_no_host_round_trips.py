"""The training step runs on device data only: donated state, no implicit transfers, prefetched batches."""

import jax
import numpy as np

from supernet import data, sharding, spaces, training


def test_donated_step_runs_under_transfer_guard():
    ds = data.get("digits")
    space = spaces.get("chain", choices={"b1": ["conv", "identity"]}, channels=4,
                       input_shape=ds.input_shape, num_classes=ds.num_classes)
    model = space.supernet()
    mesh = sharding.make_mesh()
    optimizer = training.make_optimizer(0.05, steps=10)
    state = sharding.replicate(mesh, training.create_state(space, model, optimizer, jax.random.key(0), ds.input_shape))
    step = training.make_train_step(space, model, optimizer)
    batches = sharding.prefetch(mesh, training.step_batches(ds.train, 32, seed=0, start_step=0))
    paths = [jax.device_put(a[None], sharding.replicated(mesh)) for a in np.asarray(space.sample(jax.random.key(1), 3))]
    metrics = []
    for t in range(3):
        x, y = next(batches)  # already on the mesh (the transfer is explicit, outside the guard)
        before = jax.tree.leaves(state.params)[0]
        with jax.transfer_guard("disallow"):
            state, m = step(state, x, y, paths[t])
        assert before.is_deleted()  # donated: the old state's buffers were reused
        metrics.append(m)
    losses = [float(m["loss"]) for m in metrics]  # fetched once, after the loop
    assert all(np.isfinite(losses)) and int(state.step) == 3
