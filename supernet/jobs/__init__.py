"""The jobs `launch.py` runs: one module per job, each with `run(config, workdir) -> results dict`.

Only jobs read a config; they unpack it into the library's explicit arguments and recipes.
A new job is one module plus one `JOBS.register` line.
"""

from __future__ import annotations


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
    return JOBS.module(name, ("run",))


# What a user of launch.py changes when a stage's loss turns NaN/inf, by the stage's name
# (`supernet.runtime.Runtime.hints`): the config keys of that stage.
HINTS = {
    "supernet": "Lower the supernet's learning rate (supernet.learning_rate).",
    "few_shot": "Lower the few-shot learning rate (few_shot.learning_rate).",
    "retrain": "Lower the retraining learning rate (retrain.learning_rate).",
    "ranking_check": "Lower the retraining learning rate (retrain.learning_rate).",
    "darts": "Lower the search's learning rates (search.weight_lr, search.alpha_lr).",
    "gdas": "Lower the search's learning rates (search.weight_lr, search.alpha_lr).",
    "compare": "Lower the comparison's learning rate (compare.learning_rate).",
}


def setup(config, workdir: str | None):
    """Dataset, space (sized to the dataset) and the `Runtime` (mesh of `config.num_devices`,
    `workdir`, `config.progress`, the config keys as hints) from a config's common fields."""
    from supernet import data, sharding, spaces
    from supernet.runtime import Runtime
    dataset = data.get(config.dataset.name, seed=config.seed, **config.dataset.options.to_dict())
    space = spaces.get(config.space.name, num_classes=dataset.num_classes, input_shape=dataset.input_shape,
                       **config.space.options.to_dict())
    runtime = Runtime(sharding.make_mesh(config.num_devices or None), workdir, config.progress, HINTS)
    return dataset, space, runtime


def task_of(config) -> dict:
    """The task a config trains on, as ground-truth tables record it (`supernet.ground_truth.task`)."""
    from supernet import ground_truth
    return ground_truth.task(config.dataset.name, config.dataset.options.to_dict(), config.space.name,
                             config.space.options.to_dict(), config.seed)
