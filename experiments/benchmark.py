"""Speed of a supernet against its standalone networks, measured side by side.

Writes DIR/benchmark.json (train_step_ratio, train_step_compiles, population_eval_archs_per_s,
loop_eval_archs_per_s, per-architecture timings, machine). Synthetic data, nothing to download.

    python launch.py --config experiments/benchmark.py --workdir runs/benchmark
    python launch.py --config experiments/benchmark.py:runlocal --workdir runs/benchmark_local
    python launch.py --config experiments/benchmark.py:gpu --workdir runs/benchmark_gpu   # on a GPU
    python launch.py --config experiments/benchmark.py:scaling,runlocal --workdir runs/scaling   # CPU devices
    python launch.py --config experiments/benchmark.py:own_cnn --workdir runs/benchmark_own_cnn
    python launch.py --config experiments/benchmark.py:own_cnn,gpu --workdir runs/benchmark_own_cnn_gpu

Default: the NAS-Bench-201 benchmark's CIFAR-sized network (C=16, N=5, 32x32x3, batch 64), 10
architectures, 100 compile-count steps, a population of 20; the folded supernet path is timed on 3
of the architectures too (`compare_folded`). `runlocal`: C=8, N=1, 16x16 inputs, under a minute.

`own_cnn`: the CNN of experiments/own_cnn.py searched with `supernet.nas` (8x8x1 inputs as its
digits, batch 64, as AutoModel trains it): the supernet's step against the largest extracted
network's and 10 random ones', one compilation for 100 architectures, and the cold start (trace and
build against compile). Any module of yours: `--config.benchmark.nas_module=package.module:Class
--config.benchmark.input_shape=...`. With `runlocal`: seconds; with `gpu`: batch 256.
"""

import ml_collections

from experiments import common


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    variants = common.variants(arg, {"runlocal", "gpu", "scaling", "own_cnn"}, "benchmark")
    c = common.base("benchmark", devices=False)
    if "own_cnn" in variants:
        if "scaling" in variants:
            raise ValueError("the scaling variant measures the NAS-Bench-201 supernet; run "
                             "experiments/benchmark.py:scaling without own_cnn.")
        c.benchmark = _own_cnn(runlocal="runlocal" in variants, gpu="gpu" in variants)
        return c
    runlocal = "runlocal" in variants
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


def _own_cnn(runlocal: bool, gpu: bool) -> ml_collections.ConfigDict:
    """The `own_cnn` measurement's fields (`supernet.jobs.benchmark.measure_nas`)."""
    b = ml_collections.ConfigDict()
    b.nas_module = "experiments.own_cnn:Net"   # package.module:Class, a Linen module with nas primitives
    b.input_shape = (8, 8, 1)                  # the digits own_cnn.py searches on; float inputs
    b.batch_size = 16 if runlocal else 256 if gpu else 64
    b.num_archs = 2 if runlocal else 10        # random architectures, each against its own standalone step
    # Supernet and standalone steps alternate one blocked step at a time (`rounds` of `repeats`
    # steps each, the median of the rounds), so a busy spell of a shared machine slows both alike.
    b.repeats = 1
    b.rounds = 3 if runlocal else 50
    b.compile_steps = 10 if runlocal else 100  # steps, each with another architecture, under the compile count
    # A second reference: the largest with these decisions changed, e.g. "skip=0" (the head reads
    # the stem, so op and stage reach no output and their backward pass is compiled away); "" for none.
    b.largest_variant = ""
    return b
