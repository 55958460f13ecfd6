"""Runs one experiment: `python launch.py --config experiments/NAME.py[:variant] --workdir DIR`.

The config file's `job` picks what runs; everything else in the config is unpacked here into
explicit arguments of library functions (the libraries never read a config). Configs are locked:
a misspelt override such as `--config.supernet.stpes=10` is an error.
"""

from __future__ import annotations

import json
import os

from absl import app, flags
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "experiment config file, e.g. experiments/quickstart.py:runlocal",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "directory for results.json, metrics.jsonl, checkpoints")
flags.mark_flags_as_required(["config", "workdir"])


def _setup(config):
    """Dataset, space (sized to the dataset) and mesh from the config's common fields."""
    from supernet import data, sharding, spaces
    dataset = data.get(config.dataset.name, seed=config.seed, **config.dataset.options.to_dict())
    space = spaces.get(config.space.name, num_classes=dataset.num_classes, input_shape=dataset.input_shape,
                       **config.space.options.to_dict())
    mesh = sharding.make_mesh(config.num_devices or None)
    return dataset, space, mesh


def run_search(config, workdir: str) -> dict:
    import jax
    import strategies
    from supernet import pipeline, training

    dataset, space, mesh = _setup(config)
    limits = {k: v for k, v in (("max_params", config.search.max_params), ("max_flops", config.search.max_flops)) if v}
    strategy = strategies.get(config.search.strategy, space, **limits, **config.search.options.to_dict())
    s, r = config.supernet, config.retrain
    results = pipeline.run_one_shot_nas(
        space, dataset, strategy, mesh=mesh, key=jax.random.key(config.seed),
        supernet_steps=s.steps, batch_size=s.batch_size, sandwich=s.sandwich,
        supernet_optimizer=training.make_optimizer(s.learning_rate, s.momentum, s.weight_decay, s.steps),
        budget=config.search.budget, population=config.search.population, calib_size=config.search.calib_size,
        eval_batch_size=config.search.eval_batch_size, retrain_steps=r.steps,
        retrain_optimizer=training.make_optimizer(r.learning_rate, s.momentum, r.weight_decay, r.steps),
        ensemble_size=config.search.ensemble_size, ensemble_method=config.search.ensemble_method,
        workdir=workdir, checkpoint_every=s.checkpoint_every, progress=config.progress)
    print(f"best architecture: {results['best_arch']}\n"
          f"  supernet val accuracy {results['supernet_val_accuracy']:.4f}, "
          f"test accuracy retrained from scratch {results['best_accuracy']:.4f} "
          f"({results['params']:,} params)")
    if "ensemble" in results:
        print(f"  ensemble of {len(results['ensemble']['members'])} ({results['ensemble']['method']}): "
              f"test accuracy {results['ensemble']['test_accuracy']:.4f}")
    return results


def run_benchmark(config, workdir: str) -> dict:
    from supernet import benchmark
    b = config.benchmark
    results = benchmark.run(channels=b.channels, cells_per_stage=b.cells_per_stage, stages=b.stages, input_shape=tuple(b.input_shape),
                            batch_size=b.batch_size, num_archs=b.num_archs, repeats=b.repeats,
                            compile_steps=b.compile_steps, population=b.population,
                            compare_folded=b.compare_folded, seed=config.seed, progress=config.progress)
    from supernet import records
    records.write_json(workdir, "benchmark.json", results)
    print(json.dumps({k: v for k, v in results.items() if not isinstance(v, (list, dict))}, indent=2))
    return results


def run_strategies_nb201(config, workdir: str) -> dict:
    from strategies import comparison, tabular
    from supernet import spaces
    space = spaces.get(config.space)
    repo = os.path.dirname(os.path.abspath(__file__))
    table = tabular.TabularObjective(os.path.join(repo, config.table), space, fitness_column=config.fitness_column)
    latency = (tabular.TabularObjective(os.path.join(repo, config.latency_table), space)
               if config.latency_table else None)
    return comparison.run_comparison(
        space, table, list(config.strategies), list(config.budgets), config.seeds, workdir,
        fitness_column=config.fitness_column, report_column=config.report_column,
        strategy_options=config.strategy_options.to_dict(), batch_size=config.batch_size,
        latency_table=latency, latency_column=config.latency_column,
        latency_limit=config.latency_limit if latency else None, progress=config.progress)


def run_differentiable(config, workdir: str) -> dict:
    import jax
    from strategies import differentiable
    dataset, space, mesh = _setup(config)
    compare = config.compare.to_dict() if config.compare.num_random else None
    return differentiable.search_and_compare(space, dataset, search=config.search.to_dict(), compare=compare,
                                             key=jax.random.key(config.seed), mesh=mesh, workdir=workdir,
                                             progress=config.progress)


def run_ground_truth(config, workdir: str) -> dict:
    from supernet.jobs import ground_truth
    return ground_truth.run(config, workdir)


JOBS = {
    "ground_truth": run_ground_truth,
    "search": run_search,
    "benchmark": run_benchmark,
    "strategies_nb201": run_strategies_nb201,
    "differentiable": run_differentiable,
}


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}; use --config and --workdir only.")
    config, workdir = _CONFIG.value, _WORKDIR.value
    if config.job not in JOBS:
        raise ValueError(f"config.job {config.job!r} is not a job; valid jobs: {', '.join(sorted(JOBS))}.")
    os.makedirs(workdir, exist_ok=True)
    import time
    from supernet import records
    tic = time.perf_counter()
    results = JOBS[config.job](config, workdir)
    results = {**results, "config": config.to_dict(), "wall_time_s": time.perf_counter() - tic}
    print(f"wrote {records.write_json(workdir, 'results.json', results)}")


if __name__ == "__main__":
    app.run(main)
