"""The `search` job: one-shot NAS from a config (`experiments/quickstart.py`)."""

from __future__ import annotations

import os

import jax

import strategies
from supernet import one_shot, plots
from supernet.jobs import setup


def run(config, workdir: str) -> dict:
    dataset, space, mesh = setup(config)
    limits = {k: v for k, v in (("max_params", config.search.max_params), ("max_flops", config.search.max_flops)) if v}
    strategy = strategies.get(config.search.strategy, space, **limits, **config.search.options.to_dict())
    results = one_shot.run_one_shot_nas(
        space, dataset, strategy, mesh=mesh, key=jax.random.key(config.seed),
        supernet=one_shot.from_section(one_shot.SupernetRecipe, config.supernet),
        search_recipe=one_shot.from_section(one_shot.SearchRecipe, config.search),
        retrain_recipe=one_shot.from_section(one_shot.RetrainRecipe, config.retrain),
        workdir=workdir, progress=config.progress)
    results.pop("_models")
    results["architecture_png"] = plots.architecture(space, results["best_arch_int"],
                                                     os.path.join(workdir, "architecture.png"))
    print(f"best architecture: {results['best_arch']}\n"
          f"  supernet val accuracy {results['supernet_val_accuracy']:.4f}, "
          f"test accuracy retrained from scratch {results['best_accuracy']:.4f} "
          f"({results['params']:,} params)")
    if "ensemble" in results:
        print(f"  ensemble of {len(results['ensemble']['members'])} ({results['ensemble']['method']}): "
              f"test accuracy {results['ensemble']['test_accuracy']:.4f}")
    return results
