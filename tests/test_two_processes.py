"""Two CPU processes (jax.distributed, one device each) run a tiny search together and match one
process with two devices: same losses, same final supernet weights, same results.json, one writer."""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import orbax.checkpoint as ocp

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# quickstart:runlocal cut down to seconds: a two-decision chain space, 8 supernet steps.
CONFIG = '''
from experiments import quickstart


def get_config(arg=None):
    c = quickstart.get_config("runlocal")
    c.space.name = "chain"
    c.space.options = {"choices": {"block1": ["conv", "identity"], "block2": ["linear", "maxpool"]}, "channels": 4}
    c.supernet.steps, c.supernet.batch_size, c.supernet.checkpoint_every = 8, 32, 4
    c.search.budget, c.search.population, c.search.calib_size, c.search.ensemble_size = 4, 4, 64, 0
    c.retrain.steps = 4
    c.ranking.check_size = 1
    c.progress = False
    return c
'''
# Fields that legitimately differ: how long things took, how many processes ran, where files went,
# and when (provenance).
VARYING = {"timings", "wall_time_s", "processes", "architecture_png", "winner_dir", "workdir", "provenance"}


def _launch(config, workdir, extra_env=None, flags=()):
    env = {**os.environ, "PYTHONPATH": REPO, "JAX_PLATFORMS": "cpu", **(extra_env or {})}
    return subprocess.Popen([sys.executable, os.path.join(REPO, "launch.py"), f"--config={config}",
                             f"--workdir={workdir}", *flags], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def _finish(proc, timeout=300):
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out[-3000:]
    return out


def _free_port():
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _final_supernet(workdir):
    folder = os.path.join(workdir, "checkpoints", "supernet")
    last = max(int(step) for step in os.listdir(folder) if step.isdigit())
    return ocp.StandardCheckpointer().restore(os.path.join(folder, str(last), "state"))


def _comparable(workdir):
    with open(os.path.join(workdir, "results.json")) as f:
        results = json.load(f)
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        losses = [(line["stage"], line["step"], line["loss"]) for line in map(json.loads, f) if "loss" in line]
    results.get("ranking", {}).pop("scatter_png", None)  # a path inside the workdir
    return {k: v for k, v in results.items() if k not in VARYING}, losses


def test_two_processes_match_one_process_with_two_devices(tmp_path):
    config = tmp_path / "tiny.py"
    config.write_text(CONFIG)
    single = _finish(_launch(config, tmp_path / "one", {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"}))
    port = _free_port()
    procs = [_launch(config, tmp_path / "two", flags=(f"--coordinator_address=localhost:{port}",
                                                      "--num_processes=2", f"--process_id={p}")) for p in range(2)]
    logs = [_finish(p) for p in procs]

    assert "process 0 of 1: 2 local, 2 global cpu device(s)" in single
    for p, log in enumerate(logs):
        assert f"process {p} of 2: 1 local, 2 global cpu device(s)" in log
    assert (tmp_path / "two" / "winner" / "forward.jax").exists()   # written once, by process 0
    results_one, losses_one = _comparable(tmp_path / "one")
    results_two, losses_two = _comparable(tmp_path / "two")
    assert results_two == results_one
    assert losses_one and [l[:2] for l in losses_two] == [l[:2] for l in losses_one]
    np.testing.assert_allclose([l[2] for l in losses_two], [l[2] for l in losses_one], rtol=1e-5)
    one, two = _final_supernet(tmp_path / "one"), _final_supernet(tmp_path / "two")
    for a, b in zip(ocp.tree.to_flat_dict(one).values(), ocp.tree.to_flat_dict(two).values(), strict=True):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-5, atol=1e-6)
    written = sorted(f for f in os.listdir(tmp_path / "two") if f.startswith("results"))
    assert written == ["results.json"]
    assert json.load(open(tmp_path / "two" / "results.json"))["processes"] == 2
