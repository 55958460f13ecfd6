"""Side-by-side speed measurements of the NAS-Bench-201 supernet, in one process.

* train_step_ratio: per random architecture, the supernet's training step (architecture traced)
  over the same architecture's standalone network's step, same batch and optimiser; the median.
  The supernet is the backend's default path (`sparse` on the CPU); with `compare_folded` the
  folded path's step (the same cost for every architecture) is timed on a few of them too.
* train_step_compiles: XLA compilations while taking `compile_steps` supernet steps, each with a
  different architecture.
* throughput (`throughput_batch_sizes`, the `gpu` variant): images/s and compile seconds of the
  supernet step (sparse and folded cell, float32 and bfloat16 compute), the same architectures
  standalone, and DARTS and GDAS steps, on every device of the mesh.
* population vs loop evaluation: architectures scored per second by one `evaluate_population`
  call (its default mode for the backend, and with every architecture vmapped through the folded
  path) versus a Python loop of single-architecture calls, same data and calibration.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from supernet import evaluation, profiling, records, retrain, sharding, spaces, training


def measure(*, channels: int, cells_per_stage: int, stages: int = 3, input_shape: tuple, batch_size: int, num_archs: int,
        repeats: int, compile_steps: int, population: int, compare_folded: bool = True, seed: int = 0,
        progress: bool = True) -> dict:
    """Times supernet and standalone steps of NAS-Bench-201 networks of the given size side by side;
    returns the medians, their ratios and compile counts."""
    space = spaces.get("nas_bench_201", num_classes=10, input_shape=input_shape, channels=channels,
                       cells_per_stage=cells_per_stage, stages=stages)
    mesh = sharding.make_mesh(1)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch_size, *input_shape)).astype(np.float32)
    y = rng.integers(0, 10, batch_size).astype(np.int32)
    archs = np.asarray(space.sample(jax.random.key(seed), max(num_archs, compile_steps, population)))
    optimizer = training.make_optimizer(0.05, steps=1000)
    model = space.supernet()

    state = sharding.replicate(mesh, training.create_state(space, model, optimizer, jax.random.key(seed), input_shape))
    xs, ys = sharding.shard_batch(mesh, x, y)
    step = training.make_train_step(space, model, optimizer)

    tic = time.perf_counter()
    with profiling.count_compilations() as compiles:
        for t in tqdm(range(compile_steps), desc="compile count", disable=not progress):
            state, metrics = step(state, xs, ys, archs[t:t + 1])
        jax.block_until_ready(metrics)
    first_loop_s = time.perf_counter() - tic

    def supernet_step(arch):
        nonlocal state
        state, m = step(state, xs, ys, arch[None])
        return m

    ratios, rows = [], []
    for arch in tqdm(archs[:num_archs], desc="step ratio", disable=not progress):
        t_super = profiling.median_seconds(supernet_step, arch, repeats=repeats)
        network = space.standalone(arch)
        variables = retrain.init_variables(network, jax.random.key(seed), input_shape)
        # Committed to the mesh like the step's outputs, so the timed calls reuse the first compilation.
        carry = [sharding.replicate(mesh, (variables["params"], variables["batch_stats"],
                                           optimizer.init(variables["params"])))]
        standalone_step = retrain.make_standalone_step(network, optimizer)

        def run_standalone():
            carry[0], loss = standalone_step(carry[0], xs, ys)
            return loss

        jax.block_until_ready(run_standalone())  # compile
        t_alone = profiling.median_seconds(run_standalone, repeats=repeats)
        ratios.append(t_super / t_alone)
        rows.append({"arch": space.to_string(arch), "supernet_ms": 1e3 * t_super, "standalone_ms": 1e3 * t_alone,
                     "ratio": t_super / t_alone})

    folded = _folded_step_ms(space, optimizer, mesh, xs, ys, archs[:3], repeats, seed) if compare_folded else None

    pop = archs[:population]
    calib = x[: (batch_size // 2) or 1]
    # All vmapped uses the folded path: under vmap a `switch` computes every branch.
    vmap_model = space.supernet(sparse=False)
    evaluate = lambda a, mode="auto": evaluation.evaluate_population(
        space, vmap_model if mode is None else model, state.params, a, calib, x, y, mesh=mesh,
        batch_size=batch_size, vmap_archs=mode)
    evaluate(pop), evaluate(pop[:1]), evaluate(pop, None)  # compile every size and mode
    few = max(1, repeats // 2)
    t_pop = profiling.median_seconds(lambda: evaluate(pop), repeats=few)
    t_vmapped = profiling.median_seconds(lambda: evaluate(pop, None), repeats=few)
    t_loop = profiling.median_seconds(lambda: [evaluate(a[None]) for a in pop], repeats=few)

    return {
        "space": space.describe() | {"channels": channels, "cells_per_stage": cells_per_stage, "stages": stages},
        "input_shape": list(input_shape), "batch_size": batch_size,
        "train_step_ratio": float(np.median(ratios)),
        "train_step_ratio_min_max": [float(np.min(ratios)), float(np.max(ratios))],
        "train_step_ratio_archs": len(ratios),
        "supernet_path": "sparse" if model.sparse else "folded",
        "folded_step_ms": folded,
        "folded_train_step_ratio": None if folded is None else float(np.median(
            [folded / row["standalone_ms"] for row in rows])),
        "train_step_compiles": compiles.count,
        "train_step_compile_loop_steps": compile_steps,
        "train_step_compile_loop_s": first_loop_s,
        "population_size": int(len(pop)),
        "population_eval_archs_per_s": len(pop) / t_pop,
        "population_eval_vmap_archs": evaluation.default_vmap_archs(),  # None: all vmapped together
        "population_eval_all_vmapped_archs_per_s": len(pop) / t_vmapped,
        "loop_eval_archs_per_s": len(pop) / t_loop,
        "per_arch": rows,
        "machine": {"backend": jax.default_backend(), "devices": [str(d) for d in jax.devices()],
                    "cpu_count": os.cpu_count(), "platform": platform.platform(),
                    "jax": jax.__version__},
    }


def _folded_step_ms(space, optimizer, mesh, xs, ys, archs, repeats: int, seed: int) -> float:
    """Median training-step time (ms) of the folded supernet (every edge pays a 3x3 conv)."""
    model = space.supernet(sparse=False)
    state = training.create_state(space, model, optimizer, jax.random.key(seed), xs.shape[1:])
    step = training.make_train_step(space, model, optimizer)
    carry = [sharding.replicate(mesh, state)]

    def run(arch):
        carry[0], metrics = step(carry[0], xs, ys, arch[None])
        return metrics

    jax.block_until_ready(run(archs[0]))  # compile
    return 1e3 * float(np.median([profiling.median_seconds(run, a, repeats=repeats) for a in archs]))


# -- throughput (the `gpu` variant): images/s and compile seconds per kind of step ------------------

def _timed_step(step, carry, args_for, archs, repeats: int) -> dict:
    """Compile seconds (lower + compile on the first inputs) and images/s (median step time over
    `archs`, each timed `repeats` times) of a donated `step(carry, *args) -> (carry, metrics)`."""
    tic = time.perf_counter()
    compiled = step.lower(carry[0], *args_for(archs[0])).compile()
    compile_s = time.perf_counter() - tic

    def run(arch):
        carry[0], metrics = compiled(carry[0], *args_for(arch))
        return metrics

    jax.block_until_ready(run(archs[0]))
    seconds = float(np.median([profiling.median_seconds(run, a, repeats=repeats) for a in archs]))
    batch = args_for(archs[0])[0].shape[0]
    return {"compile_s": compile_s, "step_ms": 1e3 * seconds, "images_per_s": batch / seconds}


def throughput(space, batch_size: int, num_archs: int, repeats: int, seed: int = 0) -> dict:
    """Images/s and compile seconds at one batch size for: single-path supernet steps (sparse and
    folded cell, float32 and bfloat16), the same architectures standalone, DARTS and GDAS steps."""
    from supernet import backend, differentiable
    mesh = sharding.make_mesh()
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch_size, *space.input_shape)).astype(np.float32)
    xs, ys = sharding.shard_batch(mesh, x, rng.integers(0, space.num_classes, batch_size).astype(np.int32))
    archs = np.asarray(space.sample(jax.random.key(seed), num_archs))
    optimizer = training.make_optimizer(0.05, steps=1000)
    key = jax.random.key(seed)
    out = {}
    for dtype in ("float32", "bfloat16"):
        backend.configure(**{**_policy_overrides(), "compute_dtype": dtype})
        for cell in ("sparse", "folded"):
            model = space.supernet(sparse=cell == "sparse")
            state = sharding.replicate(mesh, training.create_state(space, model, optimizer, key, space.input_shape))
            out[f"supernet_{cell}_{dtype}"] = _timed_step(training.make_train_step(space, model, optimizer), [state],
                                                          lambda a: (xs, ys, a[None]), archs, repeats)
    backend.configure(**_policy_overrides())
    standalone = []
    for arch in archs:
        network = space.standalone(arch)
        variables = retrain.init_variables(network, key, space.input_shape)
        carry = sharding.replicate(mesh, (variables["params"], variables["batch_stats"],
                                          optimizer.init(variables["params"])))
        standalone.append(_timed_step(retrain.make_standalone_step(network, optimizer), [carry],
                                      lambda a: (xs, ys), [arch], repeats))
    out["standalone_float32"] = {k: float(np.median([row[k] for row in standalone])) for k in standalone[0]}
    alpha_optimizer = differentiable.make_alpha_optimizer()
    for name, model, make, extra in (
            ("darts_float32", space.supernet(mixed=True), differentiable.make_darts_step, (jnp.float32(0.0),)),
            ("gdas_float32", space.supernet(sparse=False), differentiable.make_gdas_step, (key, jnp.float32(5.0)))):
        state = sharding.replicate(mesh, differentiable.create_search_state(space, model, optimizer, alpha_optimizer,
                                                                             key, space.input_shape))
        out[name] = _timed_step(make(space, model, optimizer, alpha_optimizer), [state],
                                lambda a: (xs, ys, xs, ys, *extra), archs[:1], repeats)
    return out


def _policy_overrides() -> dict:
    """The choices the config overrode (kept while the benchmark switches compute_dtype)."""
    from supernet import backend
    described = backend.describe()
    return {k: described[k] for k in described["overridden"] if k != "compute_dtype"}


# -- scaling (the `scaling` variant): one machine's CPU cores as 1..8 devices, or as two processes ---

_CHILD = """
import json, sys
from supernet import distributed
distributed.initialize(*json.loads(sys.argv[1]))
from supernet import spaces
from supernet.jobs import benchmark
space = spaces.get("nas_bench_201", **json.loads(sys.argv[2]))
print("RESULT" + json.dumps(benchmark.supernet_images_per_s(space, *json.loads(sys.argv[3]))))
"""


def supernet_images_per_s(space, batch_size: int, steps: int, seed: int = 0) -> dict:
    """Images/s of `steps` single-path supernet steps (the policy's cell) at a global batch size on
    every device of every process, after one compiling step."""
    mesh = sharding.make_mesh()
    optimizer = training.make_optimizer(0.05, steps=1000)
    model = space.supernet()
    state = sharding.replicate(mesh, training.create_state(space, model, optimizer, jax.random.key(seed), space.input_shape))
    step = training.make_train_step(space, model, optimizer)
    rng = np.random.default_rng(seed)
    xs, ys = sharding.shard_batch(mesh, rng.standard_normal((batch_size, *space.input_shape)).astype(np.float32),
                                  rng.integers(0, space.num_classes, batch_size).astype(np.int32))
    paths = [sharding.replicate(mesh, a[None]) for a in np.asarray(space.sample(jax.random.key(seed), steps + 1))]
    state, metrics = step(state, xs, ys, paths[0])
    jax.block_until_ready(metrics)
    tic = time.perf_counter()
    for path in paths[1:]:
        state, metrics = step(state, xs, ys, path)
    jax.block_until_ready(metrics)
    seconds = time.perf_counter() - tic
    return {"images_per_s": batch_size * steps / seconds, "devices": jax.device_count(), "processes": jax.process_count()}


def scaling(space_options: dict, batch_size: int, steps: int, device_counts, seed: int = 0) -> dict:
    """Images/s of the same global work with 1, 2, 4, 8 forced CPU devices in one process, and with
    two processes of one device each (jax.distributed on localhost), each in fresh subprocesses."""
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    work = json.dumps([batch_size, steps, seed])

    def start(devices: int, dist):
        env = {**os.environ, "PYTHONPATH": repo, "JAX_PLATFORMS": "cpu",
               "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}
        return subprocess.Popen([sys.executable, "-c", _CHILD, json.dumps(dist), json.dumps(space_options), work],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def result(proc):
        out, _ = proc.communicate()
        if proc.returncode:
            raise RuntimeError(f"scaling child failed:\n{out[-2000:]}")
        return json.loads(out.split("RESULT", 1)[1])

    rows = {f"{n}_devices": result(start(n, ["no"])) for n in device_counts}
    with socket.socket() as s:
        s.bind(("localhost", 0))
        port = s.getsockname()[1]
    pair = [start(1, ["auto", f"localhost:{port}", 2, p]) for p in range(2)]
    rows["2_processes"] = [result(p) for p in pair][0]
    return {"batch_size": batch_size, "steps": steps, "space": space_options, "rows": rows,
            "load_average": list(os.getloadavg()), "cpu_count": os.cpu_count()}


def run(config, workdir: str) -> dict:
    """The `benchmark` job: `measure` with the config's sizes; writes results.json."""
    b = config.benchmark
    results = measure(channels=b.channels, cells_per_stage=b.cells_per_stage, stages=b.stages,
                      input_shape=tuple(b.input_shape), batch_size=b.batch_size, num_archs=b.num_archs,
                      repeats=b.repeats, compile_steps=b.compile_steps, population=b.population,
                      compare_folded=b.compare_folded, seed=config.seed, progress=config.progress)
    if b.throughput_batch_sizes:
        space = spaces.get("nas_bench_201", num_classes=10, input_shape=tuple(b.input_shape), channels=b.channels,
                           cells_per_stage=b.cells_per_stage, stages=b.stages)
        results["throughput"] = {str(bs): throughput(space, bs, b.num_archs, b.repeats, config.seed)
                                 for bs in b.throughput_batch_sizes}
    if b.scaling_devices:
        results["scaling"] = scaling({"num_classes": 10, "input_shape": list(b.input_shape), "channels": b.channels,
                                      "cells_per_stage": b.cells_per_stage, "stages": b.stages},
                                     b.batch_size, b.compile_steps, b.scaling_devices, config.seed)
    records.write_json(workdir, "benchmark.json", results)
    print(json.dumps({k: v for k, v in results.items() if not isinstance(v, (list, dict))}, indent=2))
    return results
