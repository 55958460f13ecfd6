"""The `differentiable` job: a DARTS or GDAS search (`experiments/differentiable.py`), then the
derived architecture and random architectures of the space retrained from scratch the same way.

Writes results.json (via launch.py; `best_arch` the derived architecture, `best_accuracy` its test
accuracy retrained from scratch), metrics.jsonl and arch_weights.png. Every stage resumes: the
search (`checkpoints/<method>`) and each retraining of the comparison (`checkpoints/compare_<name>`).
"""

from __future__ import annotations

import os
import time

import jax
import numpy as np

from supernet import config_check, differentiable, plots, retrain, training
from supernet.runtime import InvalidSetting, Runtime, recipe_from_section
from supernet.differentiable import _maybe, parameter_free_share
from supernet.jobs import setup


def retrain_archs(space, dataset, archs, *, retrain_steps: int, batch_size: int, learning_rate: float,
                  weight_decay: float, key: jax.Array, runtime: Runtime, names: list[str] | None = None) -> list[dict]:
    """Trains each architecture from scratch with the same recipe, data order and init key, and
    scores it on `val` and `test`. Returns one dict per architecture. With a workdir (`runtime`),
    each retraining logs, checkpoints and resumes (stage `compare/<name>`)."""
    log = runtime.log
    if log:
        log.rewind("compare_results", 0)  # rewritten below as each (resumed) retraining finishes
    out = []
    for i, arch in enumerate(space.validate(archs).reshape(-1, space.num_decisions)):
        name = names[i] if names else f"arch{i}"
        tic = time.perf_counter()
        module = space.standalone(arch)
        optimizer = training.make_optimizer(learning_rate, 0.9, weight_decay, retrain_steps)
        variables = retrain.train_standalone(module, dataset.train, steps=retrain_steps, batch_size=batch_size,
                                             optimizer=optimizer, key=key, runtime=runtime,
                                             desc=f"retrain_{name}", stage=f"compare/{name}")
        row = {"name": name, "arch": arch.tolist(), "arch_string": space.to_string(arch),
               "val_accuracy": retrain.accuracy(module, variables, dataset.val),
               "test_accuracy": retrain.accuracy(module, variables, dataset.test),
               "param_free_share": parameter_free_share(space, arch),
               "params": _maybe(space.params, arch), "seconds": time.perf_counter() - tic}
        if log:
            log.write("compare_results", i + 1, **row)
        out.append(row)
    return out


def compare_with_random(space, dataset, derived_arch, *, num_random: int = 10, retrain_steps: int = 500,
                        batch_size: int = 64, learning_rate: float = 0.05, weight_decay: float = 5e-4,
                        key: jax.Array, runtime: Runtime) -> dict:
    """Retrains `derived_arch` and `num_random` uniform architectures of `space` from scratch, the
    same way, and reports their test accuracies: the derived one's against the random mean, spread
    and rank."""
    if num_random < 1:
        raise ValueError(f"compare_with_random needs at least one random architecture, got {num_random}.")
    sample_key, train_key = jax.random.split(key)
    randoms = np.asarray(space.sample(sample_key, num_random))
    archs = np.concatenate([space.validate(derived_arch)[None], randoms])
    names = ["derived"] + [f"random{i}" for i in range(num_random)]
    tic = time.perf_counter()
    rows = retrain_archs(space, dataset, archs, retrain_steps=retrain_steps, batch_size=batch_size,
                         learning_rate=learning_rate, weight_decay=weight_decay, key=train_key, runtime=runtime,
                         names=names)
    derived, random_rows = rows[0], rows[1:]
    test = np.asarray([r["test_accuracy"] for r in random_rows])
    comparison = {
        "derived": derived, "random": random_rows,
        "random_test_mean": float(test.mean()), "random_test_std": float(test.std(ddof=1)) if len(test) > 1 else 0.0,
        "random_test_min": float(test.min()), "random_test_median": float(np.median(test)),
        "random_test_max": float(test.max()),
        # Share of random architectures the derived one beats (ties count half).
        "derived_percentile": float(np.mean((test < derived["test_accuracy"]) + 0.5 * (test == derived["test_accuracy"]))),
        "retrain": {"steps": retrain_steps, "batch_size": batch_size, "learning_rate": learning_rate,
                    "weight_decay": weight_decay},
        "seconds": time.perf_counter() - tic,
    }
    return comparison


def search_recipe(config) -> differentiable.Recipe:
    """The search section's recipe, strictly; a bad value's error names its config key."""
    try:
        return recipe_from_section(differentiable.Recipe, config.search)
    except InvalidSetting as error:
        raise config_check.ConfigError(f"search.{error.field}: {error}") from None


def check(config) -> None:
    """This job's fields, before any work (launch.py calls it after the common checks)."""
    recipe = search_recipe(config)
    config_check.check_choice(recipe.method, differentiable.METHODS, "search.method")
    config_check.check_choice(recipe.remedy, differentiable.REMEDIES, "search.remedy")
    config_check.check_choice(recipe.order, (1, 2), "search.order")
    config_check.check_divisible(config, **{"search.batch_size": recipe.batch_size,
                                            "search.val_batch_size": recipe.val_batch_size or recipe.batch_size,
                                            "compare.batch_size": config.compare.batch_size})


def run(config, workdir: str) -> dict:
    """The `differentiable` job: a DARTS or GDAS search, its derived cell retrained from scratch;
    writes results.json."""
    dataset, space, runtime = setup(config, workdir)
    recipe = search_recipe(config)
    recipe.check(space)
    search_key, compare_key = jax.random.split(jax.random.key(config.seed))
    result = differentiable.run_differentiable_search(space, dataset, recipe, key=search_key, runtime=runtime)
    plots.arch_weights(space, result["history"], os.path.join(workdir, "arch_weights.png"),
                       title=f"{recipe.method.upper()} on {result['dataset']} ({space.name})")
    result["architecture_png"] = plots.architecture(space, result["arch"], os.path.join(workdir, "architecture.png"))
    result["best_arch"] = result["arch_string"]
    result["inactive_decisions"] = space.inactive_decisions(result["arch"])
    result["timings"] = {"search_s": result["search_seconds"]}
    if config.compare.num_random:
        result["comparison"] = compare_with_random(space, dataset, np.asarray(result["arch"]),
                                                   **config.compare.to_dict(), key=compare_key, runtime=runtime)
        result["best_accuracy"] = result["comparison"]["derived"]["test_accuracy"]
        result["timings"]["compare_s"] = result["comparison"]["seconds"]
    else:
        result["best_accuracy"] = None
        result["best_accuracy_reason"] = "compare.num_random is 0: the derived architecture was not retrained"
    return result
