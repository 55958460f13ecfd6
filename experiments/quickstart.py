"""Quickstart: one-shot NAS on MNIST-1D (generated offline, no download), with a ranking report.

The task and space of the official-task ground-truth table (strategies/benchmarks/
ground_truth_nb201_mnist1d.csv; the noise-2 table, ..._noise2.csv, is a harder variant):
MNIST-1D drawn at 20,000 examples (4,000 train, 1,000 val,
15,000 test), NAS-Bench-201 cells at C=8, one cell per stage. Trains the supernet (single-path,
uniform over distinct functions, weight decay 1e-2) for the budget that ranked best per minute in
the ranking measurements (docs/ranking.md), searches it with regularized evolution on the validation split with a hybrid
fitness (the supernet's accuracy averaged with the parameter count and NASWOT), retrains the 3
best from scratch with the table's recipe (so their test accuracy is comparable with the table's)
and ensembles them, and judges the search's ranking against every row of the table.
About 4 minutes on 2 CPU cores (experiments/measured/quickstart/). Besides results.json, the
workdir gets architecture.png (the winner), and effects.png and importance.png: what the search's
history says each option of each decision did to the supernet's validation accuracy (results.json's
`explain` section; docs/explain.md).

`runlocal` (about a minute) checks the code paths on scikit-learn's bundled 8x8 digits with a
tiny budget and the cheap ranking check (no table exists for digits); its numbers mean little.

`module` searches a Linen module of yours written with `supernet.nas` primitives instead of the
NAS-Bench-201 cell (space "nas"; default: experiments/own_cnn.py's CNN), on digits; `regression`
searches experiments/own_regression.py's 1-D CNN on the generated `sines` data with an MSE loss
(`task.loss`):

    python launch.py --config experiments/quickstart.py --workdir runs/quickstart
    python launch.py --config experiments/quickstart.py:runlocal --workdir runs/quickstart_local
    python launch.py --config experiments/quickstart.py:module --workdir runs/mine \
        --config.space.options.module=experiments.own_cnn:Net     # package.module:Class of yours
    python launch.py --config experiments/quickstart.py:regression --workdir runs/sines
"""

import ml_collections

from experiments import common


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    variants = common.variants(arg, {"runlocal", "module", "regression"}, "quickstart")
    runlocal = bool(variants)   # a module of yours, or a regression: short runs

    c = common.base("search")

    c.dataset = ml_collections.ConfigDict(
        {"name": "digits", "options": {}} if runlocal else  # the ground-truth table's task:
        {"name": "mnist1d", "options": {"num_samples": 20_000, "train_split": 0.25, "val_fraction": 0.2}})
    c.space = ml_collections.ConfigDict({"name": "nas_bench_201",
                                         "options": {"channels": 8, "cells_per_stage": 1, "stages": 3}})
    if "module" in variants:
        c.space = ml_collections.ConfigDict({"name": "nas", "options": {"module": "experiments.own_cnn:Net"}})
    # What the networks learn (supernet.task): the loss ("cross_entropy", "mse", "mae") and the metric
    # that ranks and reports them ("accuracy", "cross_entropy", "mse", "mae"; "": the loss's own,
    # accuracy with cross-entropy), each a name or "package.module:function" of yours (a metric
    # function also needs higher_is_better="true" or "false").
    c.task = ml_collections.ConfigDict({"loss": "cross_entropy", "metric": "", "higher_is_better": ""})
    regression = "regression" in variants
    if regression:
        c.dataset = ml_collections.ConfigDict({"name": "sines", "options": {}})
        c.space = ml_collections.ConfigDict({"name": "nas", "options": {"module": "experiments.own_regression:Net"}})
        c.task.loss = "mse"

    c.supernet = ml_collections.ConfigDict()
    # 10,000 steps: shorter budgets ranked like chance against the table (docs/ranking.md).
    c.supernet.steps = 150 if runlocal else 10_000
    c.supernet.batch_size = 64 if runlocal else 128
    c.supernet.learning_rate = 0.005 if regression else 0.05   # an MSE's gradients grow with the error
    c.supernet.momentum = 0.9
    # Distinct sampling (uniform over distinct functions) with weight decay 1e-2: the recipe that
    # ranked best against both shipped tables (docs/ranking.md, experiments/measured/ranking_options/).
    c.supernet.weight_decay = 1e-2
    c.supernet.sampling = "distinct"  # or "uniform", "sandwich", "fair" (supernet.training.make_path_sampler)
    c.supernet.checkpoint_every = 200 if runlocal else 1000
    # Few-shot sub-supernets after it (supernet.few_shot; decisions=(): none): split on these
    # decisions, each warm-started from the one-shot weights, budget_share x steps more in all.
    c.few_shot = ml_collections.ConfigDict({"decisions": (), "budget_share": 1.0, "learning_rate": 0.05})
    # The search's fitness: the supernet's validation accuracy averaged, as a quantile among
    # reference_size random cells, with the parameter count's and NASWOT's (supernet.one_shot.
    # HybridRecipe; training_free=() for the supernet alone): it ranked this task's table above the
    # supernet alone (docs/ranking.md).
    c.hybrid = ml_collections.ConfigDict({"training_free": () if regression else ("params", "naswot"),
                                          "reference_size": 32 if runlocal else 256, "proxy_batch": 64})

    c.search = ml_collections.ConfigDict()
    c.search.strategy = "evolution"
    # Aging evolution (population 10, no restarts), as measured in experiments/measured/quickstart/.
    # mutation_order="random": the measured search (the default now orders mutations by the surrogate).
    c.search.options = {"population_size": 10, "restart": False, "mutation_order": "random"}
    c.search.budget = 30 if runlocal else 200
    c.search.population = 10 if runlocal else 25
    c.search.calib_size = 256
    c.search.eval_batch_size = 256 if runlocal else 250
    # What the search maximises from the supernet: "accuracy", or "loss" (its negative validation
    # loss; the better ranker on the noise-2 table, docs/ranking.md). The quickstart's figures were
    # measured with accuracy (experiments/measured/quickstart/; with loss: quickstart_loss/).
    c.search.metric = "accuracy"
    c.search.max_params = 0  # 0: no limit
    c.search.max_flops = 0
    c.search.ensemble_size = 3  # the 3 best by validation, each retrained from scratch; 0 or 1: off
    c.search.ensemble_method = "average"  # or "vote"

    c.retrain = ml_collections.ConfigDict()
    # The table's recipe (experiments/ground_truth.py), so the winners compare with its rows.
    c.retrain.steps = 150 if runlocal else 1000
    c.retrain.batch_size = 64 if runlocal else 128
    c.retrain.learning_rate = 0.005 if regression else 0.05
    c.retrain.momentum = 0.9
    c.retrain.weight_decay = 5e-4

    # How well the supernet ranked, in results.json: against a ground-truth table of this space and
    # data when one is named, else (cheaper, coarser) its `check_size` favourites plus as many random
    # architectures, each retrained from scratch with the retrain recipe.
    c.ranking = ml_collections.ConfigDict({
        "table": "" if runlocal else "strategies/benchmarks/ground_truth_nb201_mnist1d.csv",
        "column": "test_accuracy_mean", "check_size": 3,
        "check_task": True})  # a named table must have been made on this task (its .json file says)
    return c
