"""`supernet.export`: a searched winner saved as files that plain JAX runs and differentiates, loaded in a
process that imports neither this library nor Flax."""

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.own_cnn import Net
from supernet import export, nas, spaces
from supernet.evaluation import calibrate_variables

# Runs in a fresh interpreter: load the files with jax.export and numpy only, apply, take a gradient.
LOADER = """
import sys
import jax, jax.numpy as jnp, numpy as np
exported = jax.export.deserialize(bytearray(open(sys.argv[1] + "/forward.jax", "rb").read()))
variables = {}
with np.load(sys.argv[1] + "/variables.npz") as flat:
    for key in flat:
        *path, leaf = key.split("/")
        node = variables
        for part in path:
            node = node.setdefault(part, {})
        node[leaf] = flat[key]
x = np.load(sys.argv[2])
np.save(sys.argv[3], exported.call(variables, x))
grads = jax.grad(lambda v: jnp.sum(exported.call(v, x[:3]) ** 2))(variables)
assert all(np.isfinite(g).all() for g in jax.tree.leaves(grads)) and any(np.abs(g).sum() > 0 for g in jax.tree.leaves(grads))
assert not any(m.startswith(("supernet", "flax")) for m in sys.modules), "loaded more than plain JAX"
"""


def _own_cnn_winner():
    x = jax.random.normal(jax.random.key(0), (16, 8, 8, 1))
    space = nas.space(Net(), x[:2])
    model = space.supernet()
    variables = jax.jit(lambda k: model.init(k, x, space.largest(), train=False))(jax.random.key(1))
    arch = np.asarray(space.sample(jax.random.key(2), 1))[0]
    calibrated = calibrate_variables(model, variables, jnp.asarray(arch), x)
    return space.standalone(arch), space.extract_variables(calibrated, arch), x


def test_a_users_module_runs_and_differentiates_without_this_library(tmp_path):
    network, variables, x = _own_cnn_winner()
    directory = export.save(network, variables, x[:2], str(tmp_path / "winner"))
    batch = np.asarray(x[:5])   # another batch size than the example's
    np.save(tmp_path / "x.npy", batch)
    run = subprocess.run([sys.executable, "-c", LOADER, directory, str(tmp_path / "x.npy"), str(tmp_path / "y.npy")],
                         capture_output=True, text=True, timeout=300, env={**os.environ, "JAX_PLATFORMS": "cpu"})
    assert run.returncode == 0, run.stderr[-3000:]
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), network.apply(variables, batch, train=False), atol=1e-5)


def test_load_gives_the_same_function_for_a_built_in_space(tmp_path):
    space = spaces.get("nas_bench_201", channels=4, cells_per_stage=1, num_classes=10, input_shape=(8, 8, 3))
    arch = space.sample(jax.random.key(0), 1)[0]
    network = space.standalone(arch)
    x = jax.random.normal(jax.random.key(1), (4, 8, 8, 3))
    variables = jax.jit(lambda k: network.init(k, x, train=False))(jax.random.key(2))
    forward, loaded = export.load(export.save(network, variables, x, str(tmp_path / "cell")))
    np.testing.assert_allclose(forward(loaded, x), network.apply(variables, x, train=False), atol=1e-5)


def test_a_file_in_the_way_is_named(tmp_path):
    (tmp_path / "taken").write_text("")
    with pytest.raises(ValueError, match="is a file; pass a directory path"):
        export.save(None, {}, np.zeros((1, 2)), str(tmp_path / "taken"))


def test_a_winner_that_cannot_be_exported_costs_the_search_job_only_its_files(tmp_path):
    import flax.linen as nn
    from supernet.jobs.search import export_winner

    class FixedBatch(nn.Module):   # reshapes to a batch of 2: no export for any batch size
        @nn.compact
        def __call__(self, x, train=False):
            return nn.Dense(3)(x.reshape(2, -1))

    x = np.ones((2, 4), np.float32)
    variables = FixedBatch().init(jax.random.key(0), x)
    result = export_winner((FixedBatch(), variables), x, str(tmp_path / "winner"))
    assert result["winner_dir"] is None and result["winner_export_error"]
