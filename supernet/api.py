"""The one-call API: `AutoModel(search_space, data).search()`.

    from supernet import AutoModel
    model = AutoModel({"block1": ["conv", "maxpool"], "block2": ["residual"], "block3": ["linear"]}, data="digits")
    best_architecture, best_accuracy = model.search()

It trains a weight-sharing supernet, searches it with a strategy, retrains the winner (and the
ensemble's members) from scratch and reports test accuracy: `supernet.one_shot` underneath.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import warnings
from typing import Any, Literal

import jax
import numpy as np

import strategies
from strategies import constraints, pareto
from supernet import data as data_lib
from supernet import ensemble as ensembling
from supernet import export as export_lib
from strategies.registry import closest
from supernet import few_shot, one_shot, plots, records, retrain, run_identity, sharding, spaces
from supernet import task as tasks
from supernet.runtime import Runtime


def resolve_data(data, seed: int = 0, labels: bool = True) -> data_lib.Dataset:
    """A registered dataset name, a `data.Dataset`, numpy `(x, y)` (validation and test carved off
    reproducibly from `seed`) or `((x, y), (x, y), (x, y))` train / val / test splits. `labels`:
    arrays' targets are class labels 0..K-1 (checked); False: any finite targets (values, token ids)."""
    if isinstance(data, str):
        dataset = data_lib.get(data, seed=seed)
        if labels and not dataset.has_class_labels:
            raise ValueError(f"dataset {data!r} has {dataset.train.y.dtype} targets, not class labels; to regress "
                             f"them pass loss=\"mse\" (AutoModel).")
        return dataset
    if isinstance(data, data_lib.Dataset):
        return data
    if isinstance(data, (tuple, list)) and len(data) == 2:
        return data_lib.from_arrays(data[0], data[1], seed=seed, labels=labels)
    if isinstance(data, (tuple, list)) and len(data) == 3 and all(len(split) == 2 for split in data):
        return data_lib.from_splits(*data, labels=labels)
    raise TypeError(f"data must be a dataset name ({', '.join(data_lib.names())}), numpy arrays (x, y), "
                    f"train/val/test pairs ((x, y), (x, y), (x, y)) or a supernet.data.Dataset; got {type(data).__name__}.")


def resolve_space(search_space, dataset: data_lib.Dataset, options: dict) -> spaces.Space:
    """A dict of decisions (a chain space), a registered space name or a `Space`, sized to the data."""
    sized = dict(num_classes=dataset.num_classes, input_shape=dataset.input_shape)
    if isinstance(search_space, spaces.Space):
        traced = getattr(search_space, "example", None)
        if traced is not None and tuple(traced.shape[1:]) != tuple(dataset.input_shape):
            raise ValueError(f"the nas space was traced on examples of shape {tuple(traced.shape[1:])}, but the data's "
                             f"are {tuple(dataset.input_shape)}; trace it on the data, nas.space(module, x[:2]) (a "
                             f"batch: the first axis counts examples).")
        for name, value in sized.items():
            have = getattr(search_space, name, value)
            if tuple(np.atleast_1d(have)) != tuple(np.atleast_1d(value)):
                raise ValueError(f"the space was built with {name}={have}, the data has {name}={value}; "
                                 f"build the space with {name}={value}.")
        return search_space
    if isinstance(search_space, dict):
        return spaces.get("chain", choices=search_space, **sized, **options)
    if search_space == "chain" and "choices" not in options:
        raise ValueError("the chain space is made of your decisions: pass them as a dict, AutoModel({\"block1\": "
                         "[\"conv\", \"maxpool\"], ...}), or as space_options={\"choices\": {...}}.")
    if isinstance(search_space, str):
        return spaces.get(search_space, **sized, **options)
    if _is_flax_module_class(search_space):
        raise TypeError(f"search_space is the class {search_space.__name__}; pass an instance, {search_space.__name__}().")
    if _is_flax_module(search_space):   # a user's module with nas primitives: trace it on a batch
        from supernet import nas
        return nas.space(search_space, dataset.train.x[:2], **options)
    raise TypeError(f"search_space must be a dict of decisions, a space name ({', '.join(spaces.names())}), "
                    f"a supernet.spaces.Space or a Flax module using supernet.nas; got {type(search_space).__name__}.")


def _is_flax_module(obj) -> bool:
    import flax.linen as nn
    return isinstance(obj, nn.Module)


def _is_flax_module_class(obj) -> bool:
    import flax.linen as nn
    return isinstance(obj, type) and issubclass(obj, nn.Module)


def distinct_feasible(space, limits: dict) -> int | None:
    """How many distinct architectures (one per function, `space.canonical`) meet `limits`
    (`max_flops`, `max_params`, `constraints`), or None for a space too large to enumerate."""
    if space.size > constraints.DEFAULT_ENUMERATE_LIMIT:
        return None
    archs = constraints.all_architectures(space)
    feasible = np.asarray(constraints.Feasibility(space, constraints.make_limits(space, **limits)).check(archs))
    return len(np.unique(np.asarray(space.canonical(archs[feasible])), axis=0))


@dataclasses.dataclass
class SearchResult:
    """What `AutoModel.search()` found. Unpacks as `best_architecture, best_accuracy = result`
    (with another metric: `best_architecture, test_metric`).

    best_architecture: the space's string; best_architecture_dict: {decision: option}.
    inactive_decisions: the decisions the winner's network does not use (e.g. blocks past its
        depth); their options in the two above are placeholders.
    metric: the task's metric ("accuracy" by default, "mse", or a function's name).
    test_metric: that metric on the test split of the winner retrained from scratch (the honest
        number); supernet_val_metric: the winner's supernet estimate of it on validation.
    best_accuracy, supernet_val_accuracy: the same two numbers when the metric is accuracy, else None.
    params, flops: the winner's analytic counts.
    network, variables: the retrained standalone Flax network and its variables.
    history: every architecture the search evaluated and its supernet validation metric
        ("val_metric"; also "val_accuracy" when the metric is accuracy).
    pareto: the front of (validation metric, constrained cost) when a limit was set, else None.
    ensemble: the ensemble's members, weights and "test_metric" when `ensemble` was set, else None.
    results: the full results dict (what the `search` job writes to results.json).
    """
    best_architecture: str
    best_accuracy: float | None
    best_architecture_dict: dict
    architecture: np.ndarray
    supernet_val_accuracy: float | None
    params: int
    flops: int
    network: Any
    variables: dict
    history: dict
    pareto: list | None
    ensemble: dict | None
    results: dict
    space: Any = dataclasses.field(repr=False)
    dataset: Any = dataclasses.field(repr=False)
    members: list = dataclasses.field(repr=False, default_factory=list)
    metric: str = "accuracy"
    test_metric: float = float("nan")
    supernet_val_metric: float = float("nan")
    task: Any = dataclasses.field(repr=False, default=tasks.CLASSIFICATION)
    inactive_decisions: list = dataclasses.field(default_factory=list)

    def __iter__(self):
        return iter((self.best_architecture, self.test_metric))

    def __repr__(self) -> str:
        ensemble = (f", ensemble of {len(self.ensemble['members'])} ({self.ensemble['method']}): "
                    f"{self.ensemble['test_metric']:.4f}" if self.ensemble else "")
        best = "best_accuracy" if self.metric == "accuracy" else f"test_{self.metric}"
        return (f"SearchResult(best_architecture={self.best_architecture!r}, {best}={self.test_metric:.4g}, "
                f"supernet_val_{self.metric}={self.supernet_val_metric:.4g}, params={self.params:,}, "
                f"flops={self.flops:,}, evaluated={len(self.history['val_metric'])}{ensemble})")

    def predict(self, x) -> np.ndarray:
        """Predictions for raw inputs `x` [n, *input_shape] (scaled like the training data), by the
        ensemble when there is one (averaged outputs, or votes), else by the retrained winner:
        classes int[n] for classification, else the network's outputs."""
        tokens = np.issubdtype(self.dataset.train.x.dtype, np.integer)
        x = np.asarray(x, np.int32 if tokens else np.float32)
        bad = ~np.isfinite(x.reshape(len(x), -1)).all(axis=1)
        if bad.any():
            raise ValueError(f"predict input: rows {np.flatnonzero(bad)[:10].tolist()} hold NaN or inf; drop or "
                             "impute them first (a prediction for them would be meaningless).")
        x = x if tokens else (x - self.dataset.mean) / self.dataset.std
        data_lib.check_split(data_lib.Split(x, np.zeros(len(x), np.int32)),
                             input_shape=getattr(self.space, "input_shape", self.dataset.input_shape),
                             what="predict input", rebuild=False)
        if not self.ensemble:
            outputs = retrain.logits(self.network, self.variables, x)
        else:
            stacked = np.stack([retrain.logits(net, v, x) for net, v in self.members])
            outputs = np.asarray(ensembling.combine(stacked, self.ensemble["weights"], self.ensemble["method"]))
        return outputs.argmax(-1) if self.task.labels else outputs

    def explain(self) -> "strategies.explanation.Explanation":
        """What the search's history says about each decision: the additive effect of every option on
        the supernet's validation metric (negated when lower is better), with bootstrap intervals,
        each decision's share of the variance, and interactions worth naming (`strategies.explain`)."""
        return strategies.explain(self.space, self.history["archs"], self.task.fitness(self.history["val_metric"]),
                                  seed=0)

    def plot_explanation(self, path: str, kind: str = "effects") -> str:
        """A PNG of `explain()`: kind "effects" draws each option's effect with its interval, one
        panel per decision, most important first; "importance" draws each decision's share as a bar."""
        draw = {"effects": plots.effects, "importance": plots.importance}
        if kind not in draw:
            raise ValueError(f"plot_explanation: kind={kind!r} is not one of {sorted(draw)}; pass kind='effects'.")
        return draw[kind](self.explain(), path)

    def export(self, directory: str) -> str:
        """Writes the retrained winner (`network` with `variables`, inference mode) to `directory` as
        files that plain JAX loads and differentiates, with no Flax and no `supernet`
        (`supernet.export`: `forward.jax` and `variables.npz`). Inputs are scaled like the training
        data, as `predict` scales them. Returns the directory."""
        return export_lib.save(self.network, self.variables, self.dataset.train.x[:2], directory)

    def draw(self, path: str) -> str:
        """A PNG of the found architecture (the NAS-Bench-201 cell as a graph, a chain as a
        sequence of blocks, a MobileNet as its stages, a module of yours as its layers)."""
        return plots.architecture(self.space, self.architecture, path)


def _fail(owner: str, name: str, value, wanted: str, fix) -> None:
    raise ValueError(f"{owner}.{name} must be {wanted}, got {value!r} ({type(value).__name__}); pass {name}={fix}.")


def _positive_int(owner: str, name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        _fail(owner, name, value, "a positive int", _suggest_int(value))


def _suggest_int(value):
    try:
        return max(1, int(round(float(value))))
    except (TypeError, ValueError):
        return "<a positive int>"


def _number(owner: str, name: str, value, *, positive: bool) -> None:
    ok = not isinstance(value, bool) and isinstance(value, (int, float, np.integer, np.floating)) \
        and np.isfinite(value) and (value > 0 if positive else value >= 0)
    if not ok:
        _fail(owner, name, value, "a positive number" if positive else "a number >= 0",
              "<a positive float>" if positive else "0.0")


def _optional_limit(owner: str, name: str, value) -> None:
    if value is not None:
        _number(owner, name, value, positive=True)


@dataclasses.dataclass(frozen=True)
class SupernetOptions:
    """How the weight-sharing supernet trains.

    steps: optimiser steps, one sampled path each; batch_size: examples per step.
    learning_rate, weight_decay: SGD with momentum 0.9 and a cosine schedule.
    sampling: "uniform" (one random path a step), "distinct" (uniform over the space's distinct
        functions), "sandwich" (plus the largest and smallest paths) or "fair" (FairNAS).
    few_shot: decisions (names or indices) to split the trained supernet on into few-shot
        sub-supernets (`supernet.few_shot`), which together train `steps` more steps and each score
        only their own architectures; () (default): the one-shot supernet alone.
    """
    steps: int = 1200
    batch_size: int = 64
    learning_rate: float = 0.05
    weight_decay: float = 5e-4
    sampling: Literal["uniform", "distinct", "sandwich", "fair"] = "uniform"
    few_shot: tuple = ()

    def __post_init__(self):
        _positive_int("SupernetOptions", "steps", self.steps)
        _positive_int("SupernetOptions", "batch_size", self.batch_size)
        _number("SupernetOptions", "learning_rate", self.learning_rate, positive=True)
        _number("SupernetOptions", "weight_decay", self.weight_decay, positive=False)
        _choice("SupernetOptions", "sampling", self.sampling, SAMPLINGS)
        object.__setattr__(self, "few_shot", tuple(self.few_shot))


@dataclasses.dataclass(frozen=True)
class SearchOptions:
    """How the search runs on the trained supernet.

    budget: supernet evaluations in all; population: evaluations per round.
    max_flops, max_params, constraints: limits every proposed architecture meets (None: no limit;
        constraints: `strategies.Limit`s of any cost).
    hybrid: training-free rankers ("params", "flops", "synflow", "naswot", "snip") whose quantiles
        are averaged with the supernet's validation accuracy as the fitness; (): the supernet alone.
    ensemble: None, "average" or "vote" over the `ensemble_size` best, each retrained from scratch.
    """
    budget: int = 200
    population: int = 25
    max_flops: float | None = None
    max_params: float | None = None
    constraints: tuple = ()
    hybrid: tuple = ()
    ensemble: Literal["average", "vote"] | None = None
    ensemble_size: int = 3

    def __post_init__(self):
        _positive_int("SearchOptions", "budget", self.budget)
        _positive_int("SearchOptions", "population", self.population)
        _optional_limit("SearchOptions", "max_flops", self.max_flops)
        _optional_limit("SearchOptions", "max_params", self.max_params)
        if self.ensemble is not None:
            _choice("SearchOptions", "ensemble", self.ensemble, ensembling.METHODS)
        _positive_int("SearchOptions", "ensemble_size", self.ensemble_size)
        if self.ensemble and self.ensemble_size > self.budget:
            raise ValueError(f"SearchOptions.ensemble_size={self.ensemble_size} is larger than budget={self.budget}: "
                             f"the search cannot deliver that many members; pass ensemble_size <= {self.budget}.")
        object.__setattr__(self, "constraints", tuple(self.constraints))
        object.__setattr__(self, "hybrid", tuple(self.hybrid))
        one_shot.check_training_free(self.hybrid)


@dataclasses.dataclass(frozen=True)
class RetrainOptions:
    """How the winner (and the ensemble's members) retrain from scratch: `steps` of SGD on
    `batch_size` examples at `learning_rate` (momentum 0.9, weight decay 5e-4, cosine)."""
    steps: int = 800
    batch_size: int = 64
    learning_rate: float = 0.05

    def __post_init__(self):
        _positive_int("RetrainOptions", "steps", self.steps)
        _positive_int("RetrainOptions", "batch_size", self.batch_size)
        _number("RetrainOptions", "learning_rate", self.learning_rate, positive=True)


SAMPLINGS = ("uniform", "distinct", "sandwich", "fair")

# What an AutoModel user changes when a stage's loss turns NaN/inf (`supernet.runtime.Runtime.hints`).
HINTS = {
    "supernet": "Lower the supernet's learning rate (supernet={'learning_rate': ...}).",
    "few_shot": "Search without few-shot sub-supernets (leave out supernet={'few_shot': ...}).",
    "retrain": "Lower the retraining learning rate (retrain={'learning_rate': ...}).",
}


def _choice(owner: str, name: str, value, valid) -> None:
    if value not in valid:
        raise ValueError(f"{owner}.{name}={value!r} is not valid{closest(str(value), valid)}; valid: {', '.join(valid)}.")


def _options(kind, value, argument: str):
    """`value` as the option group `kind`: an instance, a dict of its fields, or None (defaults)."""
    if value is None:
        return kind()
    if isinstance(value, kind):
        return value
    if isinstance(value, dict):
        fields = [f.name for f in dataclasses.fields(kind)]
        for key in value:
            if key not in fields:
                raise ValueError(f"{argument}: {kind.__name__} has no option {key!r}{closest(key, fields)}; "
                                 f"its options: {', '.join(fields)}.")
        return kind(**value)
    raise TypeError(f"{argument} must be a supernet.{kind.__name__} or a dict of its fields, got {type(value).__name__}.")


class AutoModel:
    """One-shot NAS in one call: `AutoModel(search_space, data).search()`.

    Args:
        search_space: a dict {decision: [operations]} (operations of
            `supernet.spaces.chain.OPERATIONS`), a registered space name ("nas_bench_201",
            "mobilenet", "chain") or a `supernet.spaces.Space`.
        data: a dataset name ("digits", "mnist1d", ...), numpy `(x, y)` (validation and test
            carved off reproducibly from `seed`), `((x, y), (x, y), (x, y))` train / val / test
            pairs, or a `supernet.data.Dataset`. Inputs are channels-last; labels 0..K-1.
        strategy: a registered strategy: "local" (the default: the restarted local search, the best
            measured on NAS-Bench-201, docs/strategies.md), "evolution", "bayesian", "reinforce",
            "autoencoder" or "random".
        supernet, search, retrain: `SupernetOptions`, `SearchOptions`, `RetrainOptions` (or dicts
            of their fields); the defaults are a short recipe for small spaces and data.
        seed: every random choice of the run follows from it.
        workdir: where metrics and checkpoints go (None: nowhere). A rerun with the same options
            and data resumes there; other options or data are refused unless `restart=True`,
            which deletes that run's files first.
        progress: show progress bars.
        space_options, strategy_options: passed to `spaces.get` / `strategies.get`.
        loss, metric, higher_is_better: what the networks train with and are ranked and reported
            by (`supernet.task.resolve`): names ("cross_entropy", "mse", "mae"; metrics also
            "accuracy") or JAX functions (outputs, targets) -> scalar mean. Default: cross-entropy
            and accuracy over class labels. With another loss, targets are used as given (values
            to regress, token ids) and a metric defaults to the loss; a metric function needs
            `higher_is_better`.

    Every option is checked here, and the data and the space when `search()` starts, before any
    training.
    """

    def __init__(self, search_space, data="digits", *, strategy: str = "local",
                 supernet: SupernetOptions | dict | None = None, search: SearchOptions | dict | None = None,
                 retrain: RetrainOptions | dict | None = None, seed: int = 0, workdir: str | None = None,
                 restart: bool = False, progress: bool = True, space_options: dict | None = None,
                 strategy_options: dict | None = None, loss=None, metric=None, higher_is_better: bool | None = None):
        strategies.STRATEGIES.get(strategy)  # an unknown name fails here, before any work
        self.task = tasks.resolve(loss, metric, higher_is_better)
        self.supernet_options = _options(SupernetOptions, supernet, "supernet")
        self.search_options = _options(SearchOptions, search, "search")
        self.retrain_options = _options(RetrainOptions, retrain, "retrain")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed!r}; pass seed=0.")
        if workdir is not None and os.path.exists(workdir) and not os.path.isdir(workdir):
            raise ValueError(f"workdir {workdir!r} is a file, not a directory; pass a directory path.")
        self.search_space, self.data = search_space, data
        self.strategy, self.strategy_options = strategy, dict(strategy_options or {})
        self.space_options = dict(space_options or {})
        self.seed, self.workdir, self.restart, self.progress = int(seed), workdir, restart, progress
        sn, se, re_ = self.supernet_options, self.search_options, self.retrain_options
        self.limits = dict(max_flops=se.max_flops, max_params=se.max_params, constraints=se.constraints)
        self.recipes = (
            one_shot.SupernetRecipe(steps=sn.steps, batch_size=sn.batch_size, learning_rate=sn.learning_rate,
                                    weight_decay=sn.weight_decay, sampling=sn.sampling,
                                    checkpoint_every=200 if workdir else 0),
            one_shot.SearchRecipe(budget=se.budget, population=se.population,
                                  ensemble_size=se.ensemble_size if se.ensemble else 1,
                                  ensemble_method=se.ensemble or "average"),
            one_shot.RetrainRecipe(steps=re_.steps, batch_size=re_.batch_size, learning_rate=re_.learning_rate))
        one_shot.check_task(self.task, bool(sn.few_shot), se.hybrid, se.ensemble)

    def __repr__(self) -> str:
        return (f"AutoModel({type(self.search_space).__name__} space, strategy={self.strategy!r}, "
                f"{self.supernet_options}, {self.search_options}, {self.retrain_options}, seed={self.seed})")

    def search(self) -> SearchResult:
        """Trains the supernet, searches it, retrains the winner (and the ensemble) from scratch.

        Returns:
            a `SearchResult`; it unpacks as `best_architecture, best_accuracy`, the latter the test
            accuracy of the winner retrained from scratch.
        """
        dataset = resolve_data(self.data, self.seed, labels=self.task.labels)
        space = resolve_space(self.search_space, dataset, self.space_options)
        if getattr(space, "output_shape", None) is not None:   # a user's module: its outputs against the targets
            self.task.check_outputs(space.output_shape, dataset.train.y, dataset.num_classes)
        supernet_recipe, search_recipe, retrain_recipe = self.recipes
        strategy_name, strategy_options, search_recipe = self._fit_to_space(space, search_recipe)
        strategy = strategies.get(strategy_name, space, **self.limits, **strategy_options)
        if self.workdir:
            run_identity.claim(self.workdir, self._identity(space, dataset), "automodel", restart=self.restart,
                               caller="AutoModel")
        results = one_shot.run_one_shot_nas(space, dataset, strategy, supernet=supernet_recipe,
                                            search_recipe=search_recipe, retrain_recipe=retrain_recipe,
                                            few_shot_recipe=one_shot.FewShotRecipe(self._split(space)),
                                            hybrid_recipe=one_shot.HybridRecipe(self.search_options.hybrid),
                                            key=jax.random.key(self.seed), task=self.task,
                                            runtime=Runtime(sharding.make_mesh(), self.workdir, self.progress, HINTS))
        models = results.pop("_models")
        results["provenance"] = records.provenance()
        found = models["history"]
        network, variables = models["retrained"][0]
        best = np.asarray(results["best_arch_int"])
        history = {"archs": found["archs"], "val_metric": found["val_metric"],
                   **({"val_accuracy": found["val_accuracy"]} if "val_accuracy" in found else {})}
        results["explain"] = strategies.explanation.summary(
            space, history["archs"], self.task.fitness(history["val_metric"]), seed=0,
            fitness_name=self.task.fitness_name())
        if self.workdir:
            records.write_json(self.workdir, "results.json", results)
        return SearchResult(
            best_architecture=results["best_arch"], best_accuracy=results.get("best_accuracy"),
            best_architecture_dict=dict(zip(space.decision_names, (o[c] for o, c in zip(space.options, best)))),
            architecture=best, supernet_val_accuracy=results.get("supernet_val_accuracy"), params=results["params"],
            flops=results["flops"], network=network, variables=variables, history=history,
            pareto=self._pareto(space, found), ensemble=results.get("ensemble"), results=results, space=space,
            dataset=dataset, members=models["retrained"], metric=self.task.metric_name,
            test_metric=results["test_metric"], supernet_val_metric=results["supernet_val_metric"], task=self.task,
            inactive_decisions=results["inactive_decisions"])

    def _fit_to_space(self, space, search_recipe):
        """(strategy, its options, search recipe) for a space with fewer distinct feasible
        architectures than the budget: each is evaluated once (random search without repeats), and
        an ensemble larger than that is refused. Otherwise the options as given."""
        count = distinct_feasible(space, self.limits)
        if count is None or count >= search_recipe.budget:
            return self.strategy, self.strategy_options, search_recipe
        if self.search_options.ensemble and self.search_options.ensemble_size > count:
            raise ValueError(f"SearchOptions.ensemble_size={self.search_options.ensemble_size} is larger than the "
                             f"{count} distinct architectures the space holds (within the limits); pass "
                             f"ensemble_size <= {count}.")
        warnings.warn(f"the space holds {count} distinct architectures (within the limits), fewer than "
                      f"budget={search_recipe.budget}: each is evaluated once instead of searching.", stacklevel=3)
        return "random", {}, dataclasses.replace(search_recipe, budget=count,
                                                 population=min(search_recipe.population, count))

    def _split(self, space) -> tuple[int, ...]:
        """`few_shot` as decision indices of `space`."""
        decisions = []
        for d in self.supernet_options.few_shot:
            if isinstance(d, str) and d not in space.decision_names:
                raise ValueError(f"few_shot: {d!r} is not a decision of the space{closest(d, space.decision_names)}; "
                                 f"its decisions: {', '.join(space.decision_names)}.")
            decisions.append(space.decision_names.index(d) if isinstance(d, str) else int(d))
        few_shot.Partition(tuple(decisions)).sizes(space)  # an index out of range names the valid ones
        return tuple(decisions)

    def _identity(self, space, dataset) -> dict:
        """Everything that changes the results, for the workdir's run identity: the data by a digest
        of its arrays, the space by its decisions and size, the options and recipes."""
        digest = hashlib.sha256()
        for split in (dataset.train, dataset.val, dataset.test):
            digest.update(np.ascontiguousarray(split.x).tobytes())
            digest.update(np.ascontiguousarray(split.y).tobytes())
        smallest = np.zeros(len(space.decision_names), np.int32)
        return {"data": digest.hexdigest()[:16], "seed": self.seed,
                "space": {"kind": type(space).__name__, "decisions": dict(zip(space.decision_names, space.options)),
                          "params_of_first_arch": int(space.params(smallest))},
                "strategy": self.strategy, "strategy_options": self.strategy_options,
                "limits": {k: v for k, v in self.limits.items() if k != "constraints"},
                "constraints": [repr(c) for c in self.limits["constraints"]],
                "recipes": [dataclasses.asdict(r) for r in self.recipes],
                **({"few_shot": self._split(space)} if self.supernet_options.few_shot else {}),
                **({"task": self.task.describe()} if self.task != tasks.CLASSIFICATION else {}),
                **({"hybrid": self.search_options.hybrid} if self.search_options.hybrid else {})}

    def _pareto(self, space, found) -> list | None:
        """The front of (validation metric, each limited cost) over everything evaluated."""
        costs = {name: fn for name, fn, on in (("params", space.params, self.limits["max_params"]),
                                               ("flops", space.flops, self.limits["max_flops"])) if on}
        if not costs:
            return None
        archs, first = np.unique(found["archs"], axis=0, return_index=True)
        metric = found["val_metric"][first]
        table = np.array([[fn(a) for fn in costs.values()] for a in archs], np.float64)
        key = f"val_{self.task.metric_name}"   # val_accuracy by default
        return [{"arch": space.to_string(archs[i]), key: float(metric[i]),
                 **{name: int(table[i, j]) for j, name in enumerate(costs)}}
                for i in pareto.pareto_front(self.task.fitness(metric), table)]
