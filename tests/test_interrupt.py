"""Ctrl-C during a launch.py run: one line saying how to resume, and progress.json says so."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_an_interrupted_run_says_how_to_resume(tmp_path):
    args = ["--config", "experiments/quickstart.py:runlocal", "--workdir", str(tmp_path),
            "--config.supernet.steps=100000", "--config.progress=False"]   # long: it is interrupted in training
    proc = subprocess.Popen([sys.executable, os.path.join(REPO, "launch.py"), *args], cwd=REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "JAX_PLATFORMS": "cpu"})
    progress, metrics = tmp_path / "progress.json", tmp_path / "metrics.jsonl"
    # Generous bounds for a loaded 2-core machine: a run that ignores Ctrl-C fails the test, and is killed.
    deadline = time.time() + 900
    while not metrics.exists() and proc.poll() is None and time.time() < deadline:   # training has begun
        time.sleep(0.5)
    if not metrics.exists():
        proc.kill()
        err = proc.communicate()[1]
        raise AssertionError(f"training never began (exit code {proc.returncode}): {err[-2000:]}")
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=600)
    finally:
        proc.kill()   # a run that ignored Ctrl-C must not train on after the test
    assert proc.returncode != 0
    assert err.strip().splitlines()[-1] == (f"interrupted; rerun the same command to resume from the last "
                                            f"checkpoint in {tmp_path}.")
    assert json.loads(progress.read_text())["status"] == "interrupted"


def test_an_interrupt_swallowed_by_a_library_still_stops_the_loop_at_the_next_step():
    from supernet import runtime, training
    steps_run = []

    def step(state, t):
        steps_run.append(t)
        if t == 2:   # Ctrl-C arrives while code that catches KeyboardInterrupt runs (as JAX's callbacks can)
            try:
                runtime.interrupt_handler(signal.SIGINT, None)
            except KeyboardInterrupt:
                pass
        return state + 1, {"loss": 0.0}

    with pytest.raises(KeyboardInterrupt):
        training.run_loop(step, 0, steps=10, runtime=runtime.Runtime(progress=False), desc="loop")
    assert steps_run == [0, 1, 2]
    runtime.raise_pending_interrupt()   # consumed: a later loop runs
    assert training.run_loop(step, 0, steps=2, runtime=runtime.Runtime(progress=False), desc="again")[1] == 2
