"""The `search` job: one-shot NAS from a config (`experiments/quickstart.py`)."""

from __future__ import annotations

import importlib
import os

import jax
import numpy as np

import strategies
from strategies.constraints import make_limits
from strategies.registry import closest
from supernet import config_check, data, export, few_shot, one_shot, plots, ranking, retrain, spaces, training
from supernet import task as tasks
from supernet.runtime import InvalidSetting, Runtime
from supernet.ground_truth import check_task, resolve_table, sample_architectures
from supernet.jobs import setup, task_of


RECIPES = {"supernet": one_shot.SupernetRecipe, "search": one_shot.SearchRecipe, "retrain": one_shot.RetrainRecipe,
           "few_shot": one_shot.FewShotRecipe, "hybrid": one_shot.HybridRecipe}
READ_BY_THE_JOB = {"search": ("strategy", "options", "max_params", "max_flops")}  # not a recipe's fields


def recipe(config, section: str):
    """The recipe of one config section, strictly; a bad value's error names its config key."""
    try:
        return one_shot.from_section(RECIPES[section], config.get(section, {}),
                                     read_elsewhere=READ_BY_THE_JOB.get(section, ()))
    except InvalidSetting as error:
        raise config_check.ConfigError(f"{section}.{error.field}: {error}") from None


def task_from(config) -> tasks.Task:
    """The config's `task` section as a `supernet.task.Task`; classification without the section.
    `loss` and `metric` are names ("mse"; "" metric: the loss's own) or "package.module:function"
    of yours; `higher_is_better` ("true", "false", or "": inferred from a named metric)."""
    if "task" not in config:
        return tasks.CLASSIFICATION
    config_check.check_keys(config.task, ["loss", "metric", "higher_is_better"], "task", "the search job")
    higher = str(config.task.get("higher_is_better", "")).lower()
    if higher not in ("", "true", "false"):
        raise config_check.ConfigError(f"task.higher_is_better must be 'true', 'false' or '' (inferred), got {higher!r}.")
    loss = _function(config.task.get("loss"), "task.loss", tasks.LOSSES)
    metric = _function(config.task.get("metric"), "task.metric", tuple(tasks.NAMED))
    try:
        return tasks.resolve(loss, metric, None if not higher else higher == "true")
    except (ValueError, TypeError) as error:
        raise config_check.ConfigError(f"task: {error}") from None


def _function(spec: str, what: str, names):
    """None for "", one of `names` as it is, or the function "package.module:function" names."""
    if not spec or ":" not in spec:
        if spec and spec not in names:
            raise config_check.ConfigError(f"{what}={spec!r} is not valid{closest(spec, names)}; valid: "
                                           f"{', '.join(names)}, or 'package.module:function' of yours.")
        return spec or None
    path, _, name = spec.partition(":")
    try:
        function = getattr(importlib.import_module(path), name)
    except (ImportError, AttributeError) as err:
        raise config_check.ConfigError(f"{what} {spec!r} cannot be imported ({type(err).__name__}: {err}); give a "
                                       f"name or 'package.module:function', importable from where launch.py runs.") from None
    if not callable(function):
        raise config_check.ConfigError(f"{what} {spec!r} is a {type(function).__name__}, not a function "
                                       f"(outputs, targets) -> scalar.")
    return function


def check(config) -> None:
    """This job's fields, before any work (launch.py calls it after the common checks); then the
    data is loaded (what only it can tell) and the strategy built on the space."""
    from supernet import ensemble
    task = task_from(config)
    config_check.check_choice(config.search.strategy, strategies.SEARCH_STRATEGIES, "search.strategy")
    config_check.check_keys(config.search.options, list(strategies.algorithm_options(config.search.strategy)),
                            "search.options", f"strategy {config.search.strategy!r}")
    config_check.check_choice(config.search.ensemble_method, ensemble.METHODS, "search.ensemble_method")
    config_check.check_choice(config.search.get("metric", "accuracy"), one_shot.METRICS, "search.metric")
    config_check.check_choice(config.supernet.sampling, training.SAMPLINGS, "supernet.sampling")
    for key in ("max_params", "max_flops"):
        if config.search[key] < 0:
            raise config_check.ConfigError(f"search.{key} must be >= 0 (0: no limit), got {config.search[key]}; "
                                           f"set --config.search.{key}.")
    recipes = {name: recipe(config, name) for name in RECIPES}
    config_check.check_divisible(config, **{"supernet.batch_size": recipes["supernet"].batch_size,
                                            "search.eval_batch_size": recipes["search"].eval_batch_size,
                                            "retrain.batch_size": recipes["retrain"].batch_size})
    if "hybrid" in config:
        config_check.check_keys(config.hybrid.training_free, list(one_shot.TRAINING_FREE), "hybrid.training_free",
                                "the hybrid fitness")
    if config.ranking.table and task != tasks.CLASSIFICATION:
        raise config_check.ConfigError(f"ranking.table: the tables hold accuracies, but task.loss is "
                                       f"{task.loss_name!r}; set --config.ranking.table='' (the retrained check).")
    if config.ranking.table:
        table = config_check.existing_file(config.ranking.table, "ranking.table", MAKE_A_TABLE)
        try:
            ranking.check_header(table, config.ranking.column)
        except ValueError as error:
            raise config_check.ConfigError(f"ranking.table: {error}") from None
        if config.ranking.check_task:
            check_task(task_of(config), table, "ranking.check_task")
    try:
        one_shot.check_task(task, bool(config.few_shot.decisions), config.get("hybrid", {}).get("training_free", ()),
                            config.search.ensemble_method if config.search.ensemble_size > 1 else None)
    except ValueError as error:
        raise config_check.ConfigError(str(error)) from None
    dataset = data.get(config.dataset.name, seed=config.seed, **config.dataset.options.to_dict())
    check_data(dataset, task, recipes)
    space = spaces.get(config.space.name, num_classes=dataset.num_classes, input_shape=dataset.input_shape,
                       **config.space.options.to_dict())
    if config.few_shot.decisions:  # before the supernet trains, not after
        few_shot.Partition(tuple(config.few_shot.decisions)).sizes(space)
    check_strategy(config, space)


MAKE_A_TABLE = ("set --config.ranking.table to a ground-truth table (`python launch.py --config "
                "experiments/ground_truth.py --workdir DIR` makes DIR/ground_truth.csv), or to '' for the retrained "
                "check.")


def check_data(dataset, task: tasks.Task, recipes: dict) -> None:
    """The targets fit the loss, and each batch size fits the examples it is drawn from."""
    if task.labels and not dataset.has_class_labels:
        raise config_check.ConfigError(f"task.loss={task.loss_name!r} needs class labels, but dataset "
                                       f"{dataset.name!r} has real-valued targets; set --config.task.loss=mse "
                                       f"(or mae).")
    retrained = len(dataset.train) + (len(dataset.val) if recipes["retrain"].with_val else 0)  # RetrainRecipe.split
    for key, examples, what in (("supernet.batch_size", len(dataset.train), "train split"),
                                ("retrain.batch_size", retrained, "examples retraining uses")):
        size = recipes[key.split(".")[0]].batch_size
        if size > examples:
            raise config_check.ConfigError(f"{key}={size} is larger than the {what} ({examples} examples of "
                                           f"{dataset.name}); lower --config.{key} to at most {examples}.")


def limits_of(config) -> dict:
    """The search's `max_params` / `max_flops` that are set (0: no limit)."""
    return {key: config.search[key] for key in ("max_params", "max_flops") if config.search[key]}


def check_strategy(config, space) -> None:
    """The strategy builds on the space with the config's options (their values, not only their
    names), and some architecture meets the limits."""
    try:
        strategies.get(config.search.strategy, space, **config.search.options.to_dict())
    except (ValueError, TypeError) as error:
        raise config_check.ConfigError(f"search.options: {error}") from None
    limits = limits_of(config)
    try:
        strategies.Feasibility(space, make_limits(space, **limits))
    except ValueError as error:
        raise config_check.ConfigError(f"search.{' and search.'.join(limits)}: {str(error).rstrip('.')}; raise "
                                       f"the limit, or set it to 0 (none).") from None


def run(config, workdir: str) -> dict:
    """The `search` job: the one-shot pipeline (`one_shot.run_one_shot_nas`) on the config's space
    and data; writes results.json, the pictures and the retrained winner (`winner/`, `supernet.export`)."""
    dataset, space, runtime = setup(config, workdir)
    strategy = strategies.get(config.search.strategy, space, **limits_of(config), **config.search.options.to_dict())
    task = task_from(config)
    results = one_shot.run_one_shot_nas(
        space, dataset, strategy, runtime=runtime, key=jax.random.key(config.seed),
        supernet=recipe(config, "supernet"), search_recipe=recipe(config, "search"),
        retrain_recipe=recipe(config, "retrain"), few_shot_recipe=recipe(config, "few_shot"),
        hybrid_recipe=recipe(config, "hybrid"), task=task)
    models = results.pop("_models")
    results["ranking"] = ranking_report(config, dataset, space, models, runtime, task)
    results["architecture_png"] = plots.architecture(space, results["best_arch_int"],
                                                     os.path.join(workdir, "architecture.png"))
    results.update(export_winner(models["retrained"][0], dataset.train.x[:2], os.path.join(workdir, "winner")))
    results.update(explain_history(space, models["history"], workdir, task))
    metric = task.metric_name
    print(f"best architecture: {results['best_arch']}\n"
          f"  supernet val {metric} {results['supernet_val_metric']:.4f}, "
          f"test {metric} retrained from scratch {results['test_metric']:.4f} "
          f"({results['params']:,} params)")
    if "ensemble" in results:
        print(f"  ensemble of {len(results['ensemble']['members'])} ({results['ensemble']['method']}): "
              f"test {metric} {results['ensemble']['test_metric']:.4f}")
    r = results["ranking"]
    print(f"  ranking ({r['kind']}, n={r['n']}): Kendall tau {r['kendall_tau']:+.3f}, "
          f"Spearman {r['spearman_rho']:+.3f}, top-1 pick true rank {r['top1_true_rank']:g}")
    return results


def export_winner(network_and_variables, example_x, directory: str) -> dict:
    """{"winner_dir": directory} once the retrained winner is written there (`supernet.export`);
    a network that cannot be exported (e.g. one whose code fixes the batch size) costs the run
    nothing but this file: {"winner_dir": None, "winner_export_error": why}."""
    try:
        return {"winner_dir": export.save(*network_and_variables, example_x, directory)}
    except Exception as err:  # any lowering failure: the search's results stand without the files
        print(f"warning: the winner could not be exported to {directory}: {type(err).__name__}: {err}")
        return {"winner_dir": None, "winner_export_error": f"{type(err).__name__}: {err}"}


def explain_history(space, history: dict, workdir: str, task: tasks.Task = tasks.CLASSIFICATION) -> dict:
    """The search history explained (`strategies.explanation`) on the search's fitness (the
    validation metric, negated when lower is better, as `AutoModel` explains it): {"explain": the
    JSON-able section (None when fewer than 2 results), "effects_png", "importance_png": its
    pictures' names in `workdir`}."""
    section = strategies.explanation.summary(space, history["archs"], task.fitness(history["val_metric"]), seed=0,
                                             fitness_name=task.fitness_name())
    if section is None:
        return {"explain": None}
    report = strategies.explanation.Explanation.from_dict(section)
    plots.effects(report, os.path.join(workdir, "effects.png"))
    plots.importance(report, os.path.join(workdir, "importance.png"))
    return {"explain": section, "effects_png": "effects.png", "importance_png": "importance.png"}


def ranking_report(config, dataset, space, models, runtime: Runtime, task: tasks.Task = tasks.CLASSIFICATION) -> dict:
    """How well the search's fitness ranked: against `config.ranking.table` when one is named, else
    the cheap check (its `check_size` favourites and as many random architectures, retrained and
    scored by the task's metric)."""
    search_recipe = recipe(config, "search")
    supernet = one_shot.supernet_objective(space, models["supernet"], models["params"], dataset.val, models["calib_x"],
                                           mesh=runtime.mesh, batch_size=search_recipe.eval_batch_size,
                                           metric=search_recipe.metric, task=task)
    hybrid = models["hybrid"]
    objective = supernet if hybrid is None else (lambda archs: hybrid(archs, supernet(archs)))
    scatter = os.path.join(runtime.workdir, "ranking.png") if runtime.workdir else None
    if config.ranking.table:
        return ranking.against_table(objective, space, resolve_table(config.ranking.table), config.ranking.column,
                                     scatter=scatter)
    history, k = models["history"], config.ranking.check_size
    order = np.argsort(-history["fitness"], kind="stable")
    top = history["archs"][one_shot.first_distinct(history["archs"], order, k)]  # the k best distinct, best first
    taken = {tuple(a) for a in top.tolist()}
    pool = sample_architectures(space, min(space.size, 2 * k + len(top)), config.seed + 1)
    extra = np.asarray([a for a in pool if tuple(a.tolist()) not in taken][:k], np.int32)
    archs = np.concatenate([top, extra])
    retrain_recipe = recipe(config, "retrain")
    trained = {tuple(a.tolist()): nv for a, nv in zip(models["members"], models["retrained"])}
    key = jax.random.key(config.seed + 1)
    test = []
    for i, arch in enumerate(archs):
        network, variables = trained.get(tuple(arch.tolist())) or one_shot.retrain_from_scratch(
            space, arch, retrain_recipe.split(dataset), steps=retrain_recipe.steps,
            batch_size=retrain_recipe.batch_size, optimizer=retrain_recipe.optimizer(), key=jax.random.fold_in(key, i),
            runtime=runtime, stage=f"ranking_check/{i}", task=task)  # checkpointed and resumed like every stage
        test.append(retrain.score(network, variables, dataset.test, task))
    truth = f"test {task.metric_name}" if task.higher_is_better else f"negative test {task.metric_name}"
    return ranking.retrained_check(objective(archs), task.fitness(np.asarray(test)), [space.to_string(a) for a in archs],
                                   len(top), scatter=scatter, truth=truth)
