"""The one-shot NAS pipeline: train the supernet, search it with a strategy, retrain the winner.

`run_one_shot_nas(space, dataset, strategy, supernet=SupernetRecipe(), search_recipe=SearchRecipe(),
retrain_recipe=RetrainRecipe(), runtime=Runtime(), key=...)`; `supernet.AutoModel` wraps it in one call and
the `search` job (`supernet.jobs.search`) runs it from a config.

Splits are used honestly: supernet weights train on `train`, the search's fitness is accuracy on
`val` (with BN recalibrated on `train` inputs; optionally averaged with training-free rankers,
`HybridRecipe`), and the reported number is the winner's `test` accuracy after retraining it from
scratch as a standalone network.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from typing import Any, Literal

import jax
import numpy as np
import optax
from jax.sharding import Mesh
from tqdm.auto import tqdm

from supernet import checkpoint, data, evaluation, few_shot, proxies, ranking, retrain, training
from supernet import task as tasks
from supernet.runtime import (Runtime, check_bool, check_choice, check_int, check_real,
                              raise_pending_interrupt, recipe_from_section)
from supernet.spaces.base import Space
from supernet import ensemble as ensembling


def calibration_inputs(train: data.Split, size: int, seed: int, mesh: Mesh) -> np.ndarray:
    """A fixed random subset of training inputs for BN recalibration (size rounded to the mesh)."""
    n_dev = mesh.devices.size
    size = max(n_dev, min(size, len(train)) // n_dev * n_dev)
    idx = np.random.default_rng(seed).choice(len(train), size, replace=False)
    return train.x[np.sort(idx)]


# What a search maximises from the supernet: its validation accuracy, or the negative of its
# validation loss (`search.metric`; the better ranker on the shipped table, README ranking section).
METRICS = ("accuracy", "loss")


def supernet_scores(space: Space, model, weights, split: data.Split, calib_x: np.ndarray, *, mesh: Mesh,
                    batch_size: int = 256, task: tasks.Task = tasks.CLASSIFICATION):
    """`scores(archs int32[n, D]) -> {"metric", "loss": float32[n]}` (plus "accuracy" when the task's
    metric is accuracy) on `split` with shared weights, each architecture's BN recalibrated on
    `calib_x`. `weights`: the supernet's params, or few-shot `SubSupernets` (each architecture
    scored by its own; the default task only)."""
    def scores(archs) -> dict:
        if isinstance(weights, few_shot.SubSupernets):
            found = few_shot.evaluate_routed(space, model, weights.params, weights.partition, np.asarray(archs),
                                                 calib_x, split.x, split.y, mesh=mesh, batch_size=batch_size)
        else:
            found = evaluation.evaluate_population(space, model, weights, np.asarray(archs), calib_x, split.x,
                                                   split.y, mesh=mesh, batch_size=batch_size, task=task)
        if "metric" not in found:   # routed few-shot scores name only the accuracy
            found = {**found, "metric": found["accuracy"]}
        return {name: np.asarray(value, np.float32) for name, value in found.items()}
    return scores


def check_metric(metric: str) -> None:
    """A ValueError unless `metric` is one of `METRICS`."""
    if metric not in METRICS:
        raise ValueError(f"unknown search metric {metric!r}; valid: {', '.join(METRICS)} (search.metric).")


def metric_fitness(scores: dict, metric: str, task: tasks.Task = tasks.CLASSIFICATION) -> np.ndarray:
    """Higher is better: the task's metric ("accuracy": the accuracy by default; negated when
    lower is better), or the negative loss."""
    check_metric(metric)
    return task.fitness(scores["metric"]) if metric == "accuracy" else -scores["loss"]


def supernet_objective(space: Space, model, weights, split: data.Split, calib_x: np.ndarray, *, mesh: Mesh,
                       batch_size: int = 256, metric: str = "accuracy", task: tasks.Task = tasks.CLASSIFICATION):
    """`objective(archs int32[n, D]) -> float32[n]`: `metric_fitness` of `supernet_scores`. Same
    shape as the tabular objective."""
    scores = supernet_scores(space, model, weights, split, calib_x, mesh=mesh, batch_size=batch_size, task=task)
    return lambda archs: metric_fitness(scores(archs), metric, task)


TRAINING_FREE = ("params", "flops", *proxies.PROXIES)


def check_training_free(names, what: str = "hybrid") -> None:
    """A ValueError naming each scorer that is not in `TRAINING_FREE`."""
    unknown = [n for n in names if n not in TRAINING_FREE]
    if unknown:
        raise ValueError(f"{what}: unknown training-free ranker(s) {unknown}; valid: {', '.join(TRAINING_FREE)}.")


def proxy_inputs(space: Space, train: data.Split, input_shape, key: jax.Array, proxy_batch: int = 64) -> tuple:
    """(model, params, x, y) for the training-free proxies: freshly initialised supernet weights and
    `proxy_batch` training examples, both drawn from `key`."""
    init_key, pick_key = jax.random.split(key)
    model = space.supernet()
    params = training.init_params(space, model, init_key, input_shape)
    pick = np.sort(np.asarray(jax.random.choice(pick_key, len(train), (min(proxy_batch, len(train)),),
                                                replace=False)))
    return model, params, train.x[pick], train.y[pick]


def training_free_scorers(space: Space, names, inputs: tuple | None = None) -> dict:
    """`{name: score(archs) -> float[n]}` for each of `names` (`TRAINING_FREE`): the analytic counts,
    or a proxy at `inputs` (`proxy_inputs`: model, params, x, y; needed only for proxies)."""
    check_training_free(names)

    def scorer(name):
        if name in proxies.PROXIES:
            if inputs is None:
                raise ValueError(f"training-free ranker {name!r} needs proxy inputs (one_shot.proxy_inputs).")
            model, params, x, y = inputs
            return lambda archs: proxies.score(space, model, params, archs, x, y, name)
        count = getattr(space, name)
        return lambda archs: np.asarray([count(a) for a in np.asarray(archs)], np.float64)

    return {name: scorer(name) for name in names}


class HybridFitness:
    """A search's fitness that averages rankers: the supernet's (validation accuracy or negative
    loss, `supernet_of`) and each
    training-free score, mapped to their quantiles in a fixed reference sample of the space
    (`ranking.quantiles`), so an architecture's fitness does not depend on what else was
    evaluated. NaN when the supernet's score is NaN. The `ranking` job's hybrid rankers
    (`ranking.rank_average`), for a search. The reference is scored on first use, so a resumed
    run whose search is already complete does not score it again."""

    def __init__(self, scorers: dict, supernet_of, reference: np.ndarray, metric: str = "accuracy"):
        self.scorers = scorers
        self._supernet_of = supernet_of
        self._reference_archs = reference
        self.metric = metric

    @functools.cached_property
    def reference(self) -> dict:
        """Each ranker's scores of the reference sample ("supernet": the supernet's)."""
        scores = {name: score(self._reference_archs) for name, score in self.scorers.items()}
        return {"supernet": self._supernet_of(self._reference_archs), **scores}

    def __call__(self, archs, supernet_fitness) -> np.ndarray:
        parts = [ranking.quantiles(supernet_fitness, self.reference["supernet"])]
        parts += [ranking.quantiles(score(archs), self.reference[name]) for name, score in self.scorers.items()]
        return np.mean(parts, axis=0).astype(np.float32)

    def describe(self) -> str:
        """What the hybrid fitness averages, in words."""
        return f"mean quantile of {describe_metric(self.metric)}, " + ", ".join(self.scorers)


def fitness_is_accuracy(hybrid: HybridFitness | None, metric: str, task: tasks.Task = tasks.CLASSIFICATION) -> bool:
    """Whether a search's fitness is the supernet's validation metric itself (nothing to keep beside it)."""
    return hybrid is None and metric == "accuracy" and task.higher_is_better


def describe_metric(metric: str, task: tasks.Task = tasks.CLASSIFICATION) -> str:
    """What a search maximises from the supernet, in words."""
    if metric == "loss":
        return "negative supernet validation loss"
    sign = "" if task.higher_is_better else "negative "
    return f"{sign}supernet validation {task.metric_name}"


def weights_of(weights, space: Space, arch):
    """The supernet params that serve `arch` (its sub-supernet's, with few-shot `SubSupernets`)."""
    return weights.of(space, arch) if isinstance(weights, few_shot.SubSupernets) else weights


def train_few_shot(space: Space, model, params, train: data.Split, supernet: "SupernetRecipe",
                   recipe: "FewShotRecipe", *, key: jax.Array, runtime: Runtime) -> few_shot.SubSupernets:
    """The few-shot sub-supernets of `recipe`, each warm-started from the one-shot `params` and
    trained on its own architectures with the supernet's batch size, momentum and weight decay
    (uniform over their distinct functions when the supernet's sampling is "distinct"; otherwise
    uniform); together they train `recipe.budget_share` x `supernet.steps` steps."""
    split = few_shot.Partition(tuple(recipe.decisions))
    steps = max(1, int(supernet.steps * recipe.budget_share) // split.count(space))
    optimizer = training.make_optimizer(recipe.learning_rate, supernet.momentum, supernet.weight_decay, steps)
    subs = few_shot.train_sub_supernets(space, model, params, train, split, steps=steps,
                                        batch_size=supernet.batch_size, optimizer=optimizer, key=key, runtime=runtime,
                                        checkpoint_every=supernet.checkpoint_every,
                                        distinct=supernet.sampling == "distinct")
    return few_shot.SubSupernets(split, subs)


def search(space: Space, model, weights, strategy, val: data.Split, calib_x: np.ndarray, *,
           budget: int, population: int, key: jax.Array, runtime: Runtime, eval_batch_size: int = 256,
           stage: str = "search", hybrid: HybridFitness | None = None, metric: str = "accuracy",
           task: tasks.Task = tasks.CLASSIFICATION) -> dict:
    """Asks `strategy` for `population` architectures at a time, scores them with the supernet
    on `val` (`weights`: see `supernet_scores`), tells it their `metric_fitness` (or, with a
    `hybrid`, their hybrid fitness), until `budget` evaluations. The validation accuracies are
    kept beside the fitness whatever it is.

    With a workdir (`runtime`), every round is logged and checkpoints the strategy's state and
    everything evaluated so far (`workdir/checkpoints/<stage>`), and a rerun continues after the
    last saved round. An
    architecture whose logits are NaN/inf scores NaN (the strategies treat it as the worst); if
    every one does, the supernet is broken and the search stops with an error.

    `task`: what the supernet is scored by (`supernet.task`); its metric is kept as "val_metric"
    (and "val_accuracy" when it is the accuracy)."""
    if budget < 1 or population < 1:
        raise ValueError(f"search needs budget >= 1 and population >= 1, got budget={budget}, "
                         f"population={population}; set search.budget / search.population.")
    check_metric(metric)  # before any work
    scores_of = supernet_scores(space, model, weights, val, calib_x, mesh=runtime.mesh, batch_size=eval_batch_size,
                                task=task)
    accuracy_is_fitness = fitness_is_accuracy(hybrid, metric, task)  # "accuracy" below: the task's metric
    init_key, ask_key = jax.random.split(key)
    state = strategy.init(init_key)
    checkpoints, log = runtime.checkpoints(stage), runtime.log

    def snapshot(strategy_state, archs, fitness, accuracy) -> dict:  # what a checkpoint holds
        saved = {"strategy": strategy_state, "archs": np.asarray(archs, np.int32).reshape(-1, space.num_decisions),
                 "fitness": np.asarray(fitness, np.float32)}
        return saved if accuracy_is_fitness else {**saved, "val_accuracy": np.asarray(accuracy, np.float32)}

    def saved_after(rounds: int) -> dict:
        n = min(rounds * population, budget)
        return snapshot(state, np.zeros((n, space.num_decisions)), np.zeros(n), np.zeros(n))

    round_index, saved = training.resume(checkpoints, state, snapshot=lambda _: saved_after)
    if round_index:
        state = saved["strategy"]
    archs_seen = np.asarray(saved["archs"]).tolist() if round_index else []
    fitness_seen = np.asarray(saved["fitness"]).tolist() if round_index else []
    accuracy_key = "fitness" if accuracy_is_fitness else "val_accuracy"
    accuracy_seen = np.asarray(saved[accuracy_key]).tolist() if round_index else []
    if log:
        log.rewind(stage, round_index)
    bar = tqdm(total=budget, initial=len(fitness_seen), desc=stage, disable=not runtime.progress)
    while len(fitness_seen) < budget:
        raise_pending_interrupt()
        n = min(population, budget - len(fitness_seen))
        archs, state = strategy.ask(jax.random.fold_in(ask_key, round_index), state, n)
        scores = scores_of(archs)
        accuracy, fitness = scores["metric"], metric_fitness(scores, metric, task)
        fitness = fitness if hybrid is None else hybrid(archs, fitness)
        state = strategy.tell(state, archs, fitness)
        archs_seen.extend(np.asarray(archs).tolist())
        fitness_seen.extend(fitness.tolist())
        accuracy_seen.extend(accuracy.tolist())
        round_index += 1
        best = _best(fitness_seen, stage, runtime)
        if log:
            log.write(stage, round_index, evaluated=len(fitness_seen), **{f"best_val_{task.metric_name}": accuracy_seen[best]},
                      best_arch=space.to_string(archs_seen[best]),
                      **({} if accuracy_is_fitness else {"best_fitness": fitness_seen[best]}))
        if checkpoints:  # NaN fitness is a legitimate result
            checkpoints.save(round_index, snapshot(state, archs_seen, fitness_seen, accuracy_seen), stage=stage,
                             check_finite=False)
        bar.update(n)
        bar.set_postfix(best_val=f"{accuracy_seen[best]:.3f}")
    bar.close()
    best = _best(fitness_seen, stage, runtime)
    found = {"archs": np.asarray(archs_seen, np.int32), "fitness": np.asarray(fitness_seen),
             "val_metric": np.asarray(accuracy_seen), "best_arch": np.asarray(archs_seen[best], np.int32),
             "best_fitness": fitness_seen[best], "best_val_metric": accuracy_seen[best]}
    if task.metric_name == "accuracy":
        found.update(val_accuracy=found["val_metric"], best_val_accuracy=found["best_val_metric"])
    return found


def _best(fitness: list[float], stage: str, runtime: Runtime) -> int:
    """Index of the best finite fitness; an error when none is finite (a diverged supernet)."""
    values = np.asarray(fitness, np.float64)
    if not np.isfinite(values).any():
        lower = runtime.hint("supernet") or "Lower the supernet's learning rate."
        raise checkpoint.NonFiniteError(
            "validation accuracy of every architecture", stage, len(values),
            f"The supernet's outputs are NaN/inf. {lower} Then {checkpoint.START_AGAIN}.")
    return int(np.nanargmax(np.where(np.isfinite(values), values, np.nan)))


@dataclasses.dataclass(frozen=True)
class OptimizerRecipe:
    """What every training recipe shares: `steps` of SGD with Nesterov momentum on batches of
    `batch_size`, `learning_rate` on a cosine schedule, decoupled `weight_decay`. The fields check
    themselves (`supernet.runtime.InvalidSetting` naming the first bad one)."""
    steps: int = 800
    batch_size: int = 64
    learning_rate: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4

    def __post_init__(self):
        check_int("steps", self.steps)
        check_int("batch_size", self.batch_size)
        check_real("learning_rate", self.learning_rate)
        check_real("momentum", self.momentum, high=1.0, low_open=False)
        check_real("weight_decay", self.weight_decay, low_open=False)

    def optimizer(self) -> optax.GradientTransformation:
        """The optax optimiser this recipe describes (`training.make_optimizer`)."""
        return training.make_optimizer(self.learning_rate, self.momentum, self.weight_decay, self.steps)


@dataclasses.dataclass(frozen=True)
class SupernetRecipe(OptimizerRecipe):
    """How the supernet trains: `sampling` "uniform" (one random path a step), "distinct" (one path a
    step, uniform over the space's distinct functions), "sandwich" (plus the largest and smallest
    paths) or "fair" (every option of every decision once a step; see `training.make_path_sampler`). With a workdir it checkpoints at least 4 times, and at most
    `checkpoint_every` steps apart (0: no cap)."""
    steps: int = 1200
    sampling: Literal["uniform", "distinct", "sandwich", "fair"] = "uniform"
    checkpoint_every: int = 200

    def __post_init__(self):
        super().__post_init__()
        check_choice("sampling", self.sampling, training.SAMPLINGS)
        check_int("checkpoint_every", self.checkpoint_every, minimum=0)


@dataclasses.dataclass(frozen=True)
class FewShotRecipe:
    """Few-shot sub-supernets after the one-shot training (`supernet.few_shot`): split on
    `decisions` (empty: none, the one-shot supernet ranks alone), each sub-supernet warm-started
    from the one-shot weights; together they train `budget_share` x the supernet's steps more,
    at `learning_rate` (cosine)."""
    decisions: tuple[int, ...] = ()
    budget_share: float = 1.0
    learning_rate: float = 0.05

    def __post_init__(self):
        for decision in self.decisions:
            check_int("decisions", decision, minimum=0)
        check_real("budget_share", self.budget_share)
        check_real("learning_rate", self.learning_rate)


@dataclasses.dataclass(frozen=True)
class SearchRecipe:
    """How the search runs: `budget` evaluations, `population` per round, BN recalibration on
    `calib_size` training inputs, the supernet's `metric` maximised ("accuracy" or "loss": its
    negative validation loss; `METRICS`); the `ensemble_size` best distinct architectures are retrained
    and combined (`ensemble_method` "average" or "vote", weights a softmax of validation accuracy
    at `ensemble_temperature`); 0 or 1: the winner alone."""
    budget: int = 200
    population: int = 25
    calib_size: int = 256
    eval_batch_size: int = 256
    metric: Literal["accuracy", "loss"] = "accuracy"
    ensemble_size: int = 3
    ensemble_method: Literal["average", "vote"] = "average"
    ensemble_temperature: float = 0.01

    def __post_init__(self):
        for field in ("budget", "population", "calib_size", "eval_batch_size"):
            check_int(field, getattr(self, field))
        check_choice("metric", self.metric, METRICS)
        check_int("ensemble_size", self.ensemble_size, minimum=0)
        check_choice("ensemble_method", self.ensemble_method, ensembling.METHODS)
        check_real("ensemble_temperature", self.ensemble_temperature)


@dataclasses.dataclass(frozen=True)
class HybridRecipe:
    """The search's fitness (`HybridFitness`): with `training_free` rankers named (of
    `TRAINING_FREE`), the mean quantile of the supernet's validation accuracy and their scores
    among `reference_size` uniform architectures; proxies see `proxy_batch` training examples.
    Empty: the supernet's validation accuracy alone."""
    training_free: tuple[str, ...] = ()
    reference_size: int = 256
    proxy_batch: int = 64

    def __post_init__(self):
        for name in self.training_free:
            check_choice("training_free", name, TRAINING_FREE)
        check_int("reference_size", self.reference_size)
        check_int("proxy_batch", self.proxy_batch)


@dataclasses.dataclass(frozen=True)
class RetrainRecipe(OptimizerRecipe):
    """How the winners are retrained from scratch as standalone networks. `with_val`: on train and
    val together (the search is over, so val has done its job; test stays untouched)."""
    with_val: bool = False

    def __post_init__(self):
        super().__post_init__()
        check_bool("with_val", self.with_val)

    def split(self, dataset: data.Dataset) -> data.Split:
        """The examples the retrainings train on."""
        if not self.with_val:
            return dataset.train
        return data.Split(np.concatenate([dataset.train.x, dataset.val.x]),
                          np.concatenate([dataset.train.y, dataset.val.y]))


def from_section(recipe_type, section, *, read_elsewhere=()) -> Any:
    """A recipe from a config section (or dict), strictly: see `supernet.runtime.recipe_from_section`."""
    return recipe_from_section(recipe_type, section, read_elsewhere=read_elsewhere)


def run_one_shot_nas(space: Space, dataset: data.Dataset, strategy, *, supernet: SupernetRecipe,
                     search_recipe: SearchRecipe, retrain_recipe: RetrainRecipe, key: jax.Array,
                     runtime: Runtime, few_shot_recipe: FewShotRecipe = FewShotRecipe(),
                     hybrid_recipe: HybridRecipe = HybridRecipe(), task: tasks.Task = tasks.CLASSIFICATION) -> dict:
    """Supernet training [-> few-shot sub-supernets] -> search on val -> retraining the winner from
    scratch -> test accuracy (the `task`'s metric: `supernet.task`; its loss trains every network).

    With `search_recipe.ensemble_size` k > 1, the k best distinct architectures by the search's
    fitness (`search_recipe.metric`, or the `hybrid_recipe`'s hybrid) are each retrained from
    scratch and their test predictions combined (`supernet.ensemble`). With a workdir (`runtime`), writes
    `metrics.jsonl` and checkpoints there as it goes, and every stage resumes from its own: the
    supernet (`checkpoints/supernet`), the search (`checkpoints/search`, every round) and each
    retraining (`checkpoints/retrain_<i>`); the ensemble is recomputed from the retrained members.
    Returns the results dict (JSON-friendly) and, under "_models", the model
    objects (supernet, its params, the retrained networks) for in-process callers."""
    if search_recipe.ensemble_method not in ensembling.METHODS:
        raise ValueError(f"unknown ensemble_method {search_recipe.ensemble_method!r}; "
                         f"valid: {', '.join(ensembling.METHODS)}.")
    check_task(task, bool(few_shot_recipe.decisions), hybrid_recipe.training_free,
               search_recipe.ensemble_method if search_recipe.ensemble_size > 1 else None)
    train_key, search_key, retrain_key, calib_key = jax.random.split(key, 4)
    mesh = runtime.mesh
    model = space.supernet()
    timings = {}

    tic = time.perf_counter()
    state = training.train_supernet(space, model, dataset.train, steps=supernet.steps, batch_size=supernet.batch_size,
                                    optimizer=supernet.optimizer(), key=train_key, runtime=runtime,
                                    sampling=supernet.sampling, checkpoint_every=supernet.checkpoint_every, task=task)
    timings["supernet_training_s"] = time.perf_counter() - tic
    shared = state.params  # the weights the search scores with: the supernet's, or its sub-supernets
    if few_shot_recipe.decisions:
        tic = time.perf_counter()
        shared = train_few_shot(space, model, state.params, dataset.train, supernet, few_shot_recipe,
                                 key=jax.random.fold_in(train_key, 1), runtime=runtime)
        timings["few_shot_training_s"] = time.perf_counter() - tic

    tic = time.perf_counter()
    calib_x = calibration_inputs(dataset.train, search_recipe.calib_size,
                                 int(jax.random.randint(calib_key, (), 0, 2**31 - 1)), mesh)
    hybrid = None
    if hybrid_recipe.training_free:
        inputs = proxy_inputs(space, dataset.train, dataset.input_shape, jax.random.fold_in(calib_key, 1),
                              hybrid_recipe.proxy_batch)
        scorers = training_free_scorers(space, hybrid_recipe.training_free, inputs)
        reference = np.asarray(space.sample(jax.random.fold_in(calib_key, 2), hybrid_recipe.reference_size))
        hybrid = HybridFitness(scorers, supernet_objective(space, model, shared, dataset.val, calib_x, mesh=mesh,
                                                           batch_size=search_recipe.eval_batch_size,
                                                           metric=search_recipe.metric, task=task),
                               reference, search_recipe.metric)
    found = search(space, model, shared, strategy, dataset.val, calib_x, budget=search_recipe.budget,
                   population=search_recipe.population, key=search_key, runtime=runtime,
                   eval_batch_size=search_recipe.eval_batch_size, hybrid=hybrid, metric=search_recipe.metric, task=task)
    timings["search_s"] = time.perf_counter() - tic

    best = found["best_arch"]
    network, inherited = evaluation.extract(space, weights_of(shared, space, best), best, calib_x, model=model)
    inherited_test = retrain.score(network, inherited, dataset.test, task)

    tic = time.perf_counter()
    order = np.argsort(-found["fitness"], kind="stable")
    member_rows = first_distinct(found["archs"], order, max(search_recipe.ensemble_size, 1))
    members = found["archs"][member_rows]
    retrained = [retrain_from_scratch(space, arch, retrain_recipe.split(dataset), steps=retrain_recipe.steps,
                                      batch_size=retrain_recipe.batch_size, optimizer=retrain_recipe.optimizer(),
                                      key=jax.random.fold_in(retrain_key, i), runtime=runtime,
                                      stage=f"retrain/{i}", task=task)
                 for i, arch in enumerate(members)]
    timings["retrain_s"] = time.perf_counter() - tic
    test_metric = retrain.score(*retrained[0], dataset.test, task)
    ensemble = {}
    if search_recipe.ensemble_size > 1:
        ensemble = {"ensemble": ensemble_of(space, members, retrained, found["val_metric"][member_rows], dataset.test,
                                            search_recipe, task)}

    order = order[:10]
    accuracy_named = task.metric_name == "accuracy"   # the accuracy keys as well, as results have always had
    return {
        "best_arch": space.to_string(best),
        "best_arch_int": best,
        "inactive_decisions": space.inactive_decisions(best),
        **task.describe(),
        "test_metric": test_metric,
        "test_metric_meaning": f"test {task.metric_name} of the winner retrained from scratch as a standalone network",
        "supernet_val_metric": found["best_val_metric"],
        **({"best_accuracy": test_metric,
            "best_accuracy_meaning": "test accuracy of the winner retrained from scratch as a standalone network",
            "supernet_val_accuracy": found["best_val_metric"],
            "inherited_weights_test_accuracy": inherited_test} if accuracy_named else {}),
        "search_fitness": hybrid.describe() if hybrid else describe_metric(search_recipe.metric, task),
        "inherited_weights_test_metric": inherited_test,
        "params": space.params(best),
        "flops": space.flops(best),
        **({"best_network": space.layer_lines(best)} if hasattr(space, "layer_lines") else {}),
        "evaluated": len(found["val_metric"]),
        "top10": [{"arch": space.to_string(found["archs"][i]), "val_metric": float(found["val_metric"][i]),
                   **({"val_accuracy": float(found["val_metric"][i])} if accuracy_named else {}),
                   **({} if fitness_is_accuracy(hybrid, search_recipe.metric, task)
                      else {"fitness": float(found["fitness"][i])})} for i in order],
        "space": space.describe(),
        "dataset": {"name": dataset.name, "train": len(dataset.train), "val": len(dataset.val),
                    "test": len(dataset.test)},
        "devices": int(mesh.devices.size),
        "timings": timings,
        **ensemble,
        "_models": {"supernet": model, "params": shared, "retrained": retrained, "members": members,
                    "history": found, "calib_x": calib_x, "hybrid": hybrid},
    }


def check_task(task: tasks.Task, few_shot: bool, training_free, ensemble: str | None) -> None:
    """One-line errors for what only classification supports: few-shot sub-supernets (`few_shot`:
    any asked for) and the proxies among the `training_free` rankers (both train or score with
    cross-entropy), and an `ensemble` that votes."""
    if few_shot and task != tasks.CLASSIFICATION:
        raise ValueError(f"few-shot sub-supernets train with cross-entropy and score accuracy; with loss="
                         f"{task.loss_name!r}, metric={task.metric_name!r} drop few_shot (the one-shot supernet "
                         f"ranks alone).")
    proxied = [name for name in training_free if name in proxies.PROXIES]
    if proxied and not task.labels:
        raise ValueError(f"hybrid rankers {proxied} score with cross-entropy over class labels; with loss="
                         f"{task.loss_name!r} use only 'params' or 'flops'.")
    if ensemble == "vote" and not task.labels:
        raise ValueError(f"a voting ensemble needs class labels; with loss={task.loss_name!r} use "
                         f"ensemble='average' (the members' outputs averaged).")


def ensemble_of(space: Space, members, retrained: list, val_metric, test: data.Split, recipe: SearchRecipe,
                task: tasks.Task) -> dict:
    """The retrained members' test outputs combined (`recipe.ensemble_method`) and scored by the
    task's metric. Weights: a softmax of the members' validation accuracy at
    `recipe.ensemble_temperature`; equal for other metrics, whose scale is the user's, so one
    temperature could mean anything from uniform to winner-takes-all."""
    fitness = val_metric if task.metric_name == "accuracy" else np.zeros(len(members))
    weights = ensembling.weights_from_fitness(fitness, recipe.ensemble_temperature)
    outputs = np.stack([retrain.logits(net, v, test.x) for net, v in retrained])
    combined = ensembling.combine(outputs, weights, recipe.ensemble_method)
    if task.metric is tasks.accuracy:   # exactly, in float64, as the members' accuracies
        test_metric = float((np.asarray(combined).argmax(-1) == test.y).mean())
    else:
        test_metric = float(task.metric(combined, jax.numpy.asarray(test.y)))
    members_scores = [retrain.score(n, v, test, task) for n, v in retrained]
    found = {"members": [space.to_string(m) for m in members], "weights": weights, "method": recipe.ensemble_method,
             "member_test_metrics": members_scores, "test_metric": test_metric}
    if task.metric_name == "accuracy":
        found.update(member_test_accuracies=members_scores, test_accuracy=found["test_metric"])
    return found


def first_distinct(archs: np.ndarray, order: np.ndarray, k: int) -> list[int]:
    """Rows of `archs`, visited in `order`, of the first `k` distinct architectures."""
    seen, rows = set(), []
    for row in order:
        if tuple(archs[row]) not in seen and len(rows) < k:
            seen.add(tuple(archs[row]))
            rows.append(int(row))
    return rows


def retrain_from_scratch(space: Space, arch, train: data.Split, **kwargs):
    """(standalone network, its variables trained from fresh weights) for `arch`; `kwargs` go to
    `retrain.train_standalone` (steps, batch_size, optimizer, key, runtime, task, ...)."""
    network = space.standalone(arch)
    return network, retrain.train_standalone(network, train, desc=f"retrain {space.to_string(arch)}", **kwargs)
