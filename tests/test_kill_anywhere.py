"""Kill anywhere: a small job is SIGKILLed at seeded moments in every stage (one of them while a
checkpoint is being written), rerun each time until it completes, and must end with the
results.json of an uninterrupted run (timings and paths aside) and a metrics.jsonl that holds no
(stage, step) twice. Covers the one-shot `search` job and the `differentiable` (GDAS) job.

A kill is planned as "once stage S has written a checkpoint in this process, wait a seeded random
0-0.25 s, then SIGKILL", so the kills spread over the stages and every rerun makes progress (the
wait is short because the last stages of these small jobs last about a second); the
first kill instead fires as soon as an orbax temporary directory (a write in progress) appears.
"""

import glob
import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest

from supernet import spaces

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMING = ("seconds", "_s", "time", "timings", "provenance")  # provenance: when and from which commit

SEARCH = ["experiments/quickstart.py:runlocal", "--config.supernet.steps=16", "--config.search.budget=6",
          "--config.search.population=2", "--config.retrain.steps=8", "--config.space.options.channels=4",
          "--config.space.options.stages=1", "--config.search.calib_size=64", "--config.search.ensemble_size=2",
          "--config.ranking.check_size=1", "--config.progress=False"]
SEARCH_STAGES = ["supernet", "search", "retrain_0", "retrain_1"]
DIFFERENTIABLE = ["experiments/differentiable.py:runlocal,gdas", "--config.search.steps=16",
                  "--config.search.log_every=2", "--config.compare.num_random=1", "--config.compare.retrain_steps=8",
                  "--config.space.options.channels=4", "--config.progress=False"]
DIFFERENTIABLE_STAGES = ["gdas", "gdas", "compare_derived", "compare_random0"]


def launch(config, workdir):
    return subprocess.Popen([sys.executable, os.path.join(REPO, "launch.py"), "--config", config[0],
                             "--workdir", workdir, *config[1:]], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env={**os.environ, "JAX_PLATFORMS": "cpu"})


def checkpoints_of(workdir, stage):
    return set(glob.glob(os.path.join(workdir, "checkpoints", stage, "[0-9]*")))


def writing(workdir):
    return glob.glob(os.path.join(workdir, "checkpoints", "*", "*tmp*"))


def kill_when(proc, workdir, ready, rng) -> bool:
    """Waits until `ready()` holds, then a random 0-0.25 s, then SIGKILLs; False if the job ended first."""
    while proc.poll() is None and not ready():
        time.sleep(0.005)
    time.sleep(rng.uniform(0.0, 0.25) if ready.__name__ != "in_write" else 0.0)
    if proc.poll() is not None:
        return False
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return True


def run_with_kills(config, workdir, stages, seed):
    rng, kills = random.Random(seed), []
    plans = [("write", None)] + [("after", s) for s in stages]
    while True:
        proc = launch(config, workdir)
        if not plans:
            output, _ = proc.communicate(timeout=600)
            assert proc.returncode == 0, output[-3000:]
            return kills
        kind, stage = plans[0]
        # This stage or a later one (a stage may finish before its kill comes).
        later = stages[stages.index(stage):] if stage else []
        before = {s: checkpoints_of(workdir, s) for s in later}
        if kind == "write":
            def in_write():
                return bool(writing(workdir))
            ready = in_write
        else:
            def after_checkpoint():
                return any(checkpoints_of(workdir, s) - before[s] for s in later)
            ready = after_checkpoint
        killed = kill_when(proc, workdir, ready, rng)
        if not killed:  # the job finished before the moment came: it must have succeeded
            assert proc.returncode == 0, proc.stdout.read()[-3000:]
            return kills
        plans.pop(0)
        kills.append(kind if kind == "write" else stage)


def comparable(value, workdir):
    """results.json without timings and provenance, with the workdir's path neutralised."""
    if isinstance(value, dict):
        return {k: comparable(v, workdir) for k, v in value.items() if not any(t in k for t in TIMING)}
    if isinstance(value, list):
        return [comparable(v, workdir) for v in value]
    if isinstance(value, str):
        return value.replace(workdir, "WORKDIR")
    return value


def results_and_steps(workdir):
    with open(os.path.join(workdir, "results.json")) as f:
        results = json.load(f)
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        keys = [(line["stage"], line["step"]) for line in map(json.loads, f)]
    return comparable(results, workdir), keys


@pytest.mark.parametrize("name, config, stages", [("search", SEARCH, SEARCH_STAGES),
                                                  ("differentiable", DIFFERENTIABLE, DIFFERENTIABLE_STAGES)])
def test_killed_anywhere_the_rerun_ends_as_an_uninterrupted_run(tmp_path, name, config, stages):
    straight, killed = str(tmp_path / "straight"), str(tmp_path / "killed")
    reference = launch(config, straight)
    output, _ = reference.communicate(timeout=600)
    assert reference.returncode == 0, output[-3000:]
    kills = run_with_kills(config, killed, stages, seed=11)
    assert len(kills) >= 4, kills  # every planned kill happened before the job could finish
    expected, expected_keys = results_and_steps(straight)
    got, keys = results_and_steps(killed)
    assert got == expected
    nb201 = spaces.get("nas_bench_201")   # both jobs search NAS-Bench-201 cells
    assert got["inactive_decisions"] == nb201.inactive_decisions(nb201.from_string(got["best_arch"]))
    assert len(keys) == len(set(keys)) and sorted(keys) == sorted(expected_keys)
    with open(os.path.join(killed, "progress.json")) as f:
        assert json.load(f)["status"] == "complete"
