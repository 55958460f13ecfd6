"""Speed of the NAS-Bench-201 supernet against standalone networks, measured side by side.

Writes DIR/benchmark.json (train_step_ratio, train_step_compiles, population_eval_archs_per_s,
loop_eval_archs_per_s, per-architecture timings, machine). Synthetic data, nothing to download.

    python launch.py --config experiments/benchmark.py --workdir runs/benchmark
    python launch.py --config experiments/benchmark.py:runlocal --workdir runs/benchmark_local
    python launch.py --config experiments/benchmark.py:gpu --workdir runs/benchmark_gpu   # on a GPU
    python launch.py --config experiments/benchmark.py:scaling,runlocal --workdir runs/scaling   # CPU devices

Default: the benchmark's CIFAR-sized network (C=16, N=5, 32x32x3, batch 64), 10 architectures,
100 compile-count steps, a population of 20; the folded supernet path is timed on 3 of the
architectures too (`compare_folded`). `runlocal`: C=8, N=1, 16x16 inputs, under a minute.
"""

import ml_collections

from experiments import common


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    variants = common.variants(arg, {"runlocal", "gpu", "scaling"}, "benchmark")
    runlocal = "runlocal" in variants
    c = common.base("benchmark", devices=False)
    c.benchmark = ml_collections.ConfigDict()
    c.benchmark.channels = 8 if runlocal else 16
    c.benchmark.cells_per_stage = 1 if runlocal else 5
    c.benchmark.stages = 3  # the benchmark's skeleton; fewer only for tests
    c.benchmark.input_shape = (16, 16, 3) if runlocal else (32, 32, 3)
    c.benchmark.batch_size = 32 if runlocal else 64
    c.benchmark.num_archs = 3 if runlocal else 10
    c.benchmark.repeats = 3 if runlocal else 5
    c.benchmark.compile_steps = 20 if runlocal else 100
    c.benchmark.population = 8 if runlocal else 20
    c.benchmark.compare_folded = True  # also time the folded supernet path on 3 architectures
    # `gpu`: images/s and compile seconds at these batch sizes (supernet sparse/folded x f32/bf16,
    # standalone, DARTS, GDAS), on every device; () skips it.
    c.benchmark.throughput_batch_sizes = ((32,) if runlocal else (64, 256)) if "gpu" in variants else ()
    # `scaling`: supernet images/s of the same global work on 1, 2, 4, 8 forced CPU devices and on
    # two processes (jax.distributed on localhost), `compile_steps` timed steps each; () skips it.
    c.benchmark.scaling_devices = (1, 2, 4, 8) if "scaling" in variants else ()
    return c
