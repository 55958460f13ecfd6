"""Ctrl-C during a launch.py run: one line saying how to resume, and progress.json says so."""

import json
import os
import signal
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_an_interrupted_run_says_how_to_resume(tmp_path):
    args = ["--config", "experiments/quickstart.py:runlocal", "--workdir", str(tmp_path),
            "--config.supernet.steps=100000", "--config.progress=False"]   # long: it is interrupted in training
    proc = subprocess.Popen([sys.executable, os.path.join(REPO, "launch.py"), *args], cwd=REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "JAX_PLATFORMS": "cpu"})
    progress, metrics = tmp_path / "progress.json", tmp_path / "metrics.jsonl"
    deadline = time.time() + 300
    while not metrics.exists() and proc.poll() is None and time.time() < deadline:   # training has begun
        time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0
    assert err.strip().splitlines()[-1] == (f"interrupted; rerun the same command to resume from the last "
                                            f"checkpoint in {tmp_path}.")
    assert json.loads(progress.read_text())["status"] == "interrupted"
