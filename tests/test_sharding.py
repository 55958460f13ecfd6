"""Data parallelism over 8 forced CPU devices gives the same training as 1 device."""

import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SCRIPT = r"""
import json, jax, numpy as np
from supernet import data, sharding, spaces, training
assert jax.device_count() == 8, jax.devices()
ds = data.get("digits")
space = spaces.get("nas_bench_201", input_shape=ds.input_shape, channels=4, cells_per_stage=1, stages=1)
model = space.supernet()
optimizer = training.make_optimizer(0.05, steps=10)
archs = np.asarray(space.sample(jax.random.key(2), 6))
out = {}
for devices in (1, 8):
    mesh = sharding.make_mesh(devices)
    state = sharding.replicate(mesh, training.create_state(space, model, optimizer, jax.random.key(0), ds.input_shape))
    step = training.make_train_step(space, model, optimizer)
    losses = []
    for t, arch in enumerate(archs):
        x, y = sharding.shard_batch(mesh, ds.train.x[t * 64:(t + 1) * 64], ds.train.y[t * 64:(t + 1) * 64])
        state, metrics = step(state, x, y, arch[None])
        losses.append(float(metrics["loss"]))
    kernel = state.params["head"]["classifier"]["kernel"]
    out[devices] = {"losses": losses, "kernel": np.asarray(kernel).tolist(),
                    "batch_sharding": str(x.sharding.spec), "shards": len(x.addressable_shards)}
try:
    sharding.check_batch_size(60, sharding.make_mesh(8))
except ValueError as err:
    out["error"] = str(err)
print("RESULT" + json.dumps(out))
"""


def test_eight_devices_match_one():
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8", "PYTHONPATH": REPO,
           "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.split("RESULT", 1)[1])
    one, eight = out["1"], out["8"]
    assert eight["shards"] == 8 and "data" in eight["batch_sharding"]
    assert max(abs(a - b) for a, b in zip(one["losses"], eight["losses"])) < 1e-4, (one["losses"], eight["losses"])
    worst = max(abs(a - b) for ra, rb in zip(one["kernel"], eight["kernel"]) for a, b in zip(ra, rb))
    assert worst < 1e-4
    assert "does not divide by the 8 devices" in out["error"] and "56 or 64" in out["error"]
