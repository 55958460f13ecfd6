"""Side-by-side speed measurements of a supernet against its extracted networks, in one process.

The NAS-Bench-201 supernet (`measure`):

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

A user's module searched with `supernet.nas` (`measure_nas`, config `benchmark.nas_module`):
* largest_step_ratio: the supernet's training step over the step of `space.largest()` extracted
  (`space.standalone`), timed in interleaved rounds; `largest_variant` times a second reference,
  the largest with some decisions changed.
* train_step_ratio: as above, per random architecture, over that architecture's own standalone step.
* train_step_compiles: XLA compilations while compiling the step and taking `compile_steps` steps,
  each with a different architecture.
* cold_start: seconds to trace the module (`nas.space`) and build the supernet's training state,
  against the seconds to compile its first training step.
* supernet_xla, standalone_xla: XLA's cost analysis (FLOPs, bytes accessed) of the compiled steps,
  to say what the time buys (XLA compiles away layers whose result is unused).
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

from supernet import evaluation, nas, profiling, records, retrain, sharding, spaces, training


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

    carry = [sharding.replicate(mesh, training.create_state(space, model, optimizer, jax.random.key(seed), input_shape))]
    xs, ys = sharding.shard_batch(mesh, x, y)
    step = training.make_train_step(space, model, optimizer)
    paths = [sharding.replicate(mesh, a[None]) for a in archs]

    with profiling.count_compilations() as compiles:
        first_loop_s = _step_loop_seconds(step, carry, xs, ys, paths[:compile_steps], progress)

    rows = step_ratio_rows(space, step, carry, archs[:num_archs], paths, optimizer, mesh, xs, ys,
                           repeats=repeats, seed=seed, progress=progress)
    ratios = [row["ratio"] for row in rows]
    state = carry[0]

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
        "machine": _machine(),
    }


# -- shared by both measurements: step loops, standalone steps, interleaved timing -----------------

def _machine() -> dict:
    """The backend, devices, cores, platform and jax version the figures were taken on, and the
    load average at the end (other work on a shared machine slows both sides of a ratio, unevenly)."""
    return {"backend": jax.default_backend(), "devices": [str(d) for d in jax.devices()],
            "cpu_count": os.cpu_count(), "platform": platform.platform(), "jax": jax.__version__,
            "load_average": list(os.getloadavg())}


def _stepper(step, carry: list, *args):
    """A zero-argument call of a donated `step(carry, *args) -> (carry, out)` that keeps the new
    carry in `carry[0]` and returns `out` (what a timer waits for)."""
    def run():
        carry[0], out = step(carry[0], *args)
        return out
    return run


def _step_loop_seconds(step, carry: list, xs, ys, paths, progress: bool) -> float:
    """Wall seconds of one supernet step per architecture in `paths` (device arrays [1, D])."""
    tic = time.perf_counter()
    for path in tqdm(paths, desc="compile count", disable=not progress):
        metrics = _stepper(step, carry, xs, ys, path)()
    jax.block_until_ready(metrics)
    return time.perf_counter() - tic


def side_by_side(runs: dict, repeats: int, rounds: int = 1) -> dict:
    """Median seconds of each named call (compiled and warmed): `rounds` rounds, each timing every
    call `repeats` times in turn, so a slow spell of a shared machine falls on all of them alike."""
    times = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            times[name].append(profiling.median_seconds(run, repeats=repeats))
    return {name: float(np.median(t)) for name, t in times.items()}


def standalone_step(space, arch, optimizer, mesh, xs, ys, seed: int):
    """(run, compiled): a warmed training step of `arch`'s standalone network on the batch (fresh
    weights, the same optimiser), and its executable. The carry is committed to the mesh like the
    step's outputs, so every call reuses the one compilation."""
    network = space.standalone(arch)
    variables = retrain.init_variables(network, jax.random.key(seed), xs.shape[1:], xs.dtype)
    carry = [sharding.replicate(mesh, (variables["params"], variables.get("batch_stats", {}),
                                       optimizer.init(variables["params"])))]
    compiled = retrain.make_standalone_step(network, optimizer).lower(carry[0], xs, ys).compile()
    run = _stepper(compiled, carry, xs, ys)
    jax.block_until_ready(run())
    return run, compiled


def xla_cost(compiled) -> dict:
    """XLA's cost analysis of a compiled step: FLOPs and bytes accessed (None where the backend
    reports none). Layers whose result is unused are compiled away, so they cost nothing here."""
    cost = compiled.cost_analysis()
    cost = (cost[0] if cost else {}) if isinstance(cost, (list, tuple)) else (cost or {})
    pick = lambda key: float(cost[key]) if key in cost else None
    return {"flops": pick("flops"), "bytes_accessed": pick("bytes accessed")}


def step_ratio_rows(space, supernet_step, carry: list, archs, paths, optimizer, mesh, xs, ys, *, repeats: int,
                    rounds: int = 1, seed: int = 0, progress: bool = True, desc: str = "step ratio") -> list:
    """Per architecture: the supernet's step (`supernet_step`, its state in `carry[0]`, the
    architecture as `paths[i]`) and the standalone network's step, timed side by side; their
    milliseconds, ratio and the standalone step's XLA cost."""
    rows = []
    for arch, path in tqdm(list(zip(archs, paths)), desc=desc, disable=not progress):
        run_alone, compiled = standalone_step(space, arch, optimizer, mesh, xs, ys, seed)
        t = side_by_side({"supernet": _stepper(supernet_step, carry, xs, ys, path), "standalone": run_alone},
                         repeats, rounds)
        rows.append({"arch": space.to_string(arch), "supernet_ms": 1e3 * t["supernet"],
                     "standalone_ms": 1e3 * t["standalone"], "ratio": t["supernet"] / t["standalone"],
                     "standalone_xla": xla_cost(compiled)})
    return rows


# -- a user's module searched with supernet.nas ------------------------------------------------------

def load_module(spec: str):
    """The Linen module `package.module:Class` names, built with no arguments."""
    return spaces.module.load_module(spec, "benchmark.nas_module")


def with_decisions(space, arch, changes: str) -> np.ndarray:
    """`arch` with the decisions `changes` names ("name=option,...", options as `to_string` writes
    them) set to those options."""
    parts = dict(part.split("=", 1) for part in space.to_string(arch).split(","))
    for change in filter(None, changes.split(",")):
        name, _, option = change.partition("=")
        if name not in parts:
            raise ValueError(f"benchmark.largest_variant names {name!r}, which is no decision of the space; "
                             f"decisions: {', '.join(space.decision_names)}.")
        parts[name] = option
    return space.from_string(",".join(f"{n}={o}" for n, o in parts.items()))


def measure_nas(module, *, input_shape: tuple, batch_size: int, num_archs: int, repeats: int, rounds: int,
                compile_steps: int, largest_variant: str = "", seed: int = 0, progress: bool = True) -> dict:
    """Times the training step of `module`'s supernet (`nas.space`) against its extracted networks'
    steps, side by side on one synthetic float batch: the largest, `largest_variant` (the largest
    with those decisions changed; "" for none) and `num_archs` random architectures. Also counts
    compilations over `compile_steps` architectures and times the cold start (trace, build, compile)."""
    jax.devices()  # the runtime starts before the clock: the cold start times the trace, not the backend
    mesh = sharding.make_mesh(1)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch_size, *input_shape)).astype(np.float32)

    tic = time.perf_counter()
    space = nas.space(module, x[:2])
    trace_s = time.perf_counter() - tic
    tic = time.perf_counter()
    model = space.supernet()
    optimizer = training.make_optimizer(0.05, steps=1000)
    carry = [jax.block_until_ready(sharding.replicate(mesh, training.create_state(
        space, model, optimizer, jax.random.key(seed), input_shape)))]
    build_s = time.perf_counter() - tic

    largest = space.largest()
    outputs = jax.eval_shape(lambda p: model.apply({"params": p}, x[:2], training.one_hot(space, largest)),
                             carry[0].params).shape[-1]
    xs, ys = sharding.shard_batch(mesh, x, rng.integers(0, outputs, batch_size).astype(np.int32))
    step = training.make_train_step(space, model, optimizer)
    archs = np.asarray(space.sample(jax.random.key(seed), max(num_archs, compile_steps)))
    references = [largest] + ([with_decisions(space, largest, largest_variant)] if largest_variant else [])
    paths = [sharding.replicate(mesh, a[None]) for a in (*references, *archs)]

    with profiling.count_compilations() as compiles:   # the step compiles once; the loop reuses it
        tic = time.perf_counter()
        compiled = step.lower(carry[0], xs, ys, paths[0]).compile()
        compile_s = time.perf_counter() - tic
        loop_s = _step_loop_seconds(step, carry, xs, ys, paths[len(references):][:compile_steps], progress)

    timing = dict(repeats=repeats, rounds=rounds, seed=seed, progress=progress)
    reference_rows = step_ratio_rows(space, compiled, carry, references, paths, optimizer, mesh, xs, ys,
                                     desc="largest", **timing)
    rows = step_ratio_rows(space, compiled, carry, archs[:num_archs], paths[len(references):], optimizer, mesh,
                           xs, ys, **timing)
    ratios = [row["ratio"] for row in rows]
    return {
        "nas_module": f"{type(module).__module__}:{type(module).__name__}",
        "space": space.describe() | {"num_decisions": space.num_decisions},
        "input_shape": list(input_shape), "batch_size": batch_size, "repeats": repeats, "rounds": rounds,
        "largest_step_ratio": reference_rows[0]["ratio"],
        "largest": reference_rows[0],
        "largest_variant": reference_rows[1] if largest_variant else None,
        "train_step_ratio": float(np.median(ratios)),
        "train_step_ratio_min_max": [float(np.min(ratios)), float(np.max(ratios))],
        "train_step_ratio_archs": len(ratios),
        "supernet_xla": xla_cost(compiled),
        "train_step_compiles": compiles.count,
        "train_step_compile_loop_steps": compile_steps,
        "train_step_compile_loop_s": loop_s,
        "cold_start": {"trace_s": trace_s, "build_s": build_s, "trace_and_build_s": trace_s + build_s,
                       "first_step_compile_s": compile_s,
                       "trace_and_build_over_compile": (trace_s + build_s) / compile_s},
        "per_arch": rows,
        "machine": _machine(),
    }


def _folded_step_ms(space, optimizer, mesh, xs, ys, archs, repeats: int, seed: int) -> float:
    """Median training-step time (ms) of the folded supernet (every edge pays a 3x3 conv)."""
    model = space.supernet(sparse=False)
    state = training.create_state(space, model, optimizer, jax.random.key(seed), xs.shape[1:])
    step = training.make_train_step(space, model, optimizer)
    carry = [sharding.replicate(mesh, state)]
    runs = [_stepper(step, carry, xs, ys, sharding.replicate(mesh, a[None])) for a in archs]
    jax.block_until_ready(runs[0]())  # compile
    return 1e3 * float(np.median([profiling.median_seconds(run, repeats=repeats) for run in runs]))


# -- throughput (the `gpu` variant): images/s and compile seconds per kind of step ------------------

def _timed_step(step, carry, args_for, archs, repeats: int) -> dict:
    """Compile seconds (lower + compile on the first inputs) and images/s (median step time over
    `archs`, each timed `repeats` times) of a donated `step(carry, *args) -> (carry, metrics)`."""
    tic = time.perf_counter()
    compiled = step.lower(carry[0], *args_for(archs[0])).compile()
    compile_s = time.perf_counter() - tic

    runs = [_stepper(compiled, carry, *args_for(a)) for a in archs]
    jax.block_until_ready(runs[0]())
    seconds = float(np.median([profiling.median_seconds(run, repeats=repeats) for run in runs]))
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


def check(config) -> None:
    """Before any work: a `benchmark.nas_module` that names no buildable Linen module, or a
    `largest_variant` naming no decision or option of its space, is an error."""
    b = config.benchmark
    if b.get("nas_module"):
        module = load_module(b.nas_module)
        if b.largest_variant:
            space = nas.space(module, np.zeros((2, *b.input_shape), np.float32))
            with_decisions(space, space.largest(), b.largest_variant)


def run(config, workdir: str) -> dict:
    """The `benchmark` job: `measure_nas` when the config names a `nas_module`, else `measure` (and
    the throughput and scaling sections it asks for) with the config's sizes; writes benchmark.json."""
    b = config.benchmark
    if b.get("nas_module"):
        results = measure_nas(load_module(b.nas_module), input_shape=tuple(b.input_shape), batch_size=b.batch_size,
                              num_archs=b.num_archs, repeats=b.repeats, rounds=b.rounds, compile_steps=b.compile_steps,
                              largest_variant=b.largest_variant, seed=config.seed, progress=config.progress)
        return _written(workdir, results)
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
    return _written(workdir, results)


def _written(workdir: str, results: dict) -> dict:
    """Writes DIR/benchmark.json (with `records.provenance()`: the commit, so the file stands alone
    as a record), prints its single-number fields, and returns `results`."""
    records.write_json(workdir, "benchmark.json", results | {"provenance": records.provenance()})
    print(json.dumps({k: v for k, v in results.items() if not isinstance(v, (list, dict))}, indent=2))
    return results
