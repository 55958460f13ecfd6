"""Runs tune_strategy.py once per "name|options" line of a file, JOBS single-threaded CPU
processes at a time, and prints each line's result as it finishes (logs in OUTDIR). How
evolution's defaults were compared on tuning seeds (2026-12-04), from the repository root:

    python experiments/measured/strategies_nb201/evolution_tuning/sweep.py CONFIGS FIRST_SEED SEEDS BUDGET JOBS OUTDIR
    # configs0.txt and configs1.txt: 100 200 100 1 (seeds 100-299, 100 queries)
    # configs2.txt: 100 400 300 1 (seeds 100-499, 300 queries)

The settings with `mutation`, `joint`, `skip_exhausted` or `screened_restarts` need the prototype
(prototype.diff applied to strategies/evolution.py of commit 1a17bdc).
"""

import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

configs, first, count, budget, jobs, outdir = sys.argv[1:7]
lines = [line.strip() for line in open(configs) if line.strip()]
os.makedirs(outdir, exist_ok=True)
env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=".", OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1",
           XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
script = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tune_strategy.py")


def run(item):
    """Runs one (index, "name|options") item; writes its log and prints its result."""
    index, line = item
    name, options = line.split("|", 1)
    start = time.time()
    done = subprocess.run([sys.executable, script, name, options, first, count, budget], env=env,
                          capture_output=True, text=True)
    text = done.stdout + (done.stderr[-2000:] if done.returncode else "")
    text += f"wall {time.time() - start:.0f} s\n"
    with open(os.path.join(outdir, f"c{index:02d}.log"), "w") as log:
        log.write(line + "\n" + text)
    print(f"[{index}] {line}\n{text}", flush=True)


with ThreadPoolExecutor(int(jobs)) as pool:
    list(pool.map(run, enumerate(lines)))
