"""The jobs `launch.py` runs: one module per job, each with `run(config, workdir) -> results dict`.

Only jobs read a config; they unpack it into the library's explicit arguments and recipes.
A new job is one module plus one `JOBS.register` line.
"""

from __future__ import annotations

import importlib

from strategies.registry import Registry

JOBS = Registry("job")
JOBS.register("search", "supernet.jobs.search")
JOBS.register("differentiable", "supernet.jobs.differentiable")
JOBS.register("strategies_nb201", "supernet.jobs.strategies_nb201")
JOBS.register("benchmark", "supernet.jobs.benchmark")
JOBS.register("ground_truth", "supernet.jobs.ground_truth")
JOBS.register("ranking", "supernet.jobs.ranking")


def get(name: str):
    """The job's module (it has `run(config, workdir)`)."""
    return importlib.import_module(JOBS.get(name))


def setup(config):
    """Dataset, space (sized to the dataset) and mesh from a config's common fields."""
    from supernet import data, sharding, spaces
    dataset = data.get(config.dataset.name, seed=config.seed, **config.dataset.options.to_dict())
    space = spaces.get(config.space.name, num_classes=dataset.num_classes, input_shape=dataset.input_shape,
                       **config.space.options.to_dict())
    mesh = sharding.make_mesh(config.num_devices or None)
    return dataset, space, mesh


def task_of(config) -> dict:
    """The task a config trains on, as ground-truth tables record it (`supernet.ground_truth.task`)."""
    from supernet import ground_truth
    return ground_truth.task(config.dataset.name, config.dataset.options.to_dict(), config.space.name,
                             config.space.options.to_dict(), config.seed)
