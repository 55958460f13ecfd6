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
from typing import Any

import jax
import numpy as np

import strategies
from strategies import pareto
from supernet import data as data_lib
from supernet import ensemble as ensembling
from strategies.registry import closest
from supernet import few_shot, one_shot, plots, records, retrain, run_identity, sharding, spaces


def resolve_data(data, seed: int = 0) -> data_lib.Dataset:
    """A registered dataset name, a `data.Dataset`, numpy `(x, y)` (validation and test carved off
    reproducibly from `seed`) or `((x, y), (x, y), (x, y))` train / val / test splits."""
    if isinstance(data, str):
        return data_lib.get(data, seed=seed)
    if isinstance(data, data_lib.Dataset):
        return data
    if isinstance(data, (tuple, list)) and len(data) == 2:
        return data_lib.from_arrays(data[0], data[1], seed=seed)
    if isinstance(data, (tuple, list)) and len(data) == 3 and all(len(split) == 2 for split in data):
        return data_lib.from_splits(*data)
    raise TypeError(f"data must be a dataset name ({', '.join(data_lib.names())}), numpy arrays (x, y), "
                    f"train/val/test pairs ((x, y), (x, y), (x, y)) or a supernet.data.Dataset; got {type(data).__name__}.")


def resolve_space(search_space, dataset: data_lib.Dataset, options: dict) -> spaces.Space:
    """A dict of decisions (a chain space), a registered space name or a `Space`, sized to the data."""
    sized = dict(num_classes=dataset.num_classes, input_shape=dataset.input_shape)
    if isinstance(search_space, spaces.Space):
        for name, value in sized.items():
            have = getattr(search_space, name, value)
            if tuple(np.atleast_1d(have)) != tuple(np.atleast_1d(value)):
                raise ValueError(f"the space was built with {name}={have}, the data has {name}={value}; "
                                 f"build the space with {name}={value}.")
        return search_space
    if isinstance(search_space, dict):
        return spaces.get("chain", choices=search_space, **sized, **options)
    if isinstance(search_space, str):
        return spaces.get(search_space, **sized, **options)
    raise TypeError(f"search_space must be a dict of decisions, a space name ({', '.join(spaces.names())}) "
                    f"or a supernet.spaces.Space; got {type(search_space).__name__}.")


@dataclasses.dataclass
class SearchResult:
    """What `AutoModel.search()` found. Unpacks as `best_architecture, best_accuracy = result`.

    best_architecture: the space's string; best_architecture_dict: {decision: option}.
    best_accuracy: test accuracy of the winner retrained from scratch (the honest number).
    supernet_val_accuracy, params, flops: the winner's supernet estimate and analytic counts.
    network, variables: the retrained standalone Flax network and its variables.
    history: every architecture the search evaluated and its supernet validation accuracy.
    pareto: the front of (validation accuracy, constrained cost) when a limit was set, else None.
    ensemble: the ensemble's members, weights and test accuracy when `ensemble` was set, else None.
    results: the full results dict (what the `search` job writes to results.json).
    """
    best_architecture: str
    best_accuracy: float
    best_architecture_dict: dict
    architecture: np.ndarray
    supernet_val_accuracy: float
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

    def __iter__(self):
        return iter((self.best_architecture, self.best_accuracy))

    def predict(self, x) -> np.ndarray:
        """Class predictions for raw inputs `x` [n, *input_shape] (scaled like the training data),
        by the ensemble when there is one, else by the retrained winner."""
        x = (np.asarray(x, np.float32) - self.dataset.mean) / self.dataset.std
        data_lib.check_split(data_lib.Split(x, np.zeros(len(x), np.int32)), input_shape=self.space.input_shape,
                             what="predict input")
        if not self.ensemble:
            return retrain.logits(self.network, self.variables, x).argmax(-1)
        logits = np.stack([retrain.logits(net, v, x) for net, v in self.members])
        return np.asarray(ensembling.predict(logits, self.ensemble["weights"], self.ensemble["method"]))

    def draw(self, path: str) -> str:
        """A PNG of the found architecture (the NAS-Bench-201 cell as a graph, a chain as a
        sequence of blocks, a MobileNet as its stages)."""
        return plots.architecture(self.space, self.architecture, path)


class AutoModel:
    """One-shot NAS in one call. Options (defaults: a short recipe for small spaces and data; on the
    NAS-Bench-201 space the supernet ranked like chance below about 10,000 steps, README ranking):

    search_space: a dict {decision: [operations]} (see `supernet.spaces.chain.OPERATIONS`), a
        registered space name ("nas_bench_201", "mobilenet", "chain") or a `Space`.
    data: a dataset name ("digits", "mnist1d", ...), numpy `(x, y)`, `(train, val, test)` pairs
        or a `supernet.data.Dataset`.
    strategy: a registered strategy ("evolution", "random", "bayesian", "reinforce", "autoencoder").
    max_flops, max_params, constraints: limits every proposed architecture meets.
    budget, population: supernet evaluations in all / per round.
    ensemble: None, "average" or "vote" over the `ensemble_size` best (each retrained from scratch).
    supernet_steps, retrain_steps, batch_size: training lengths and batch.
    few_shot: decisions (names or indices) to split the trained supernet on into few-shot
        sub-supernets (`supernet.few_shot`), which together train supernet_steps more steps and
        each score only their own architectures; () (default): the one-shot supernet alone.
    hybrid: training-free rankers ("params", "flops", "synflow", "naswot", "snip") whose quantiles
        are averaged with the supernet's validation accuracy as the search's fitness
        (`one_shot.HybridRecipe`); () (default): the supernet's accuracy alone.
    workdir: where the metrics and the checkpoints go (None: nowhere); a rerun with the same options
        and data resumes there, other options or data are refused unless `restart=True`, which
        deletes that run's files first.
    space_options, strategy_options: passed to `spaces.get` / `strategies.get`.
    """

    def __init__(self, search_space, data="digits", *, strategy: str = "evolution", max_flops=None, max_params=None,
                 constraints=(), budget: int = 200, population: int = 25, ensemble: str | None = None,
                 ensemble_size: int = 3, supernet_steps: int = 1200, retrain_steps: int = 800, batch_size: int = 64,
                 few_shot=(), hybrid=(), seed: int = 0, workdir: str | None = None, restart: bool = False, progress: bool = True,
                 space_options: dict | None = None, strategy_options: dict | None = None):
        if ensemble not in (None, *ensembling.METHODS):
            raise ValueError(f"ensemble must be None or one of {', '.join(ensembling.METHODS)}, got {ensemble!r}.")
        strategies.STRATEGIES.get(strategy)  # an unknown name fails here, before any work
        for name, value in (("budget", budget), ("population", population), ("supernet_steps", supernet_steps),
                            ("retrain_steps", retrain_steps), ("batch_size", batch_size)):
            if int(value) < 1:
                raise ValueError(f"{name} must be >= 1, got {value}.")
        self.search_space, self.data = search_space, data
        self.strategy, self.strategy_options = strategy, dict(strategy_options or {})
        self.limits = dict(max_flops=max_flops, max_params=max_params, constraints=constraints)
        self.space_options = dict(space_options or {})
        self.few_shot = tuple(few_shot)
        self.hybrid = tuple(hybrid)
        one_shot.check_training_free(self.hybrid)
        self.seed, self.workdir, self.restart, self.progress = seed, workdir, restart, progress
        self.recipes = (
            one_shot.SupernetRecipe(steps=supernet_steps, batch_size=batch_size, checkpoint_every=200 if workdir else 0),
            one_shot.SearchRecipe(budget=budget, population=population,
                                  ensemble_size=ensemble_size if ensemble else 1, ensemble_method=ensemble or "average"),
            one_shot.RetrainRecipe(steps=retrain_steps, batch_size=batch_size))

    def search(self) -> SearchResult:
        dataset = resolve_data(self.data, self.seed)
        space = resolve_space(self.search_space, dataset, self.space_options)
        strategy = strategies.get(self.strategy, space, **self.limits, **self.strategy_options)
        if self.workdir:
            run_identity.claim(self.workdir, self._identity(space, dataset), "automodel", restart=self.restart,
                               caller="AutoModel")
        supernet_recipe, search_recipe, retrain_recipe = self.recipes
        results = one_shot.run_one_shot_nas(space, dataset, strategy, supernet=supernet_recipe,
                                            search_recipe=search_recipe, retrain_recipe=retrain_recipe,
                                            few_shot_recipe=one_shot.FewShotRecipe(self._split(space)),
                                            hybrid_recipe=one_shot.HybridRecipe(self.hybrid),
                                            mesh=sharding.make_mesh(), key=jax.random.key(self.seed),
                                            workdir=self.workdir, progress=self.progress)
        models = results.pop("_models")
        results["provenance"] = records.provenance()
        found = models["history"]
        network, variables = models["retrained"][0]
        best = np.asarray(results["best_arch_int"])
        return SearchResult(
            best_architecture=results["best_arch"], best_accuracy=results["best_accuracy"],
            best_architecture_dict=dict(zip(space.decision_names, (o[c] for o, c in zip(space.options, best)))),
            architecture=best, supernet_val_accuracy=results["supernet_val_accuracy"], params=results["params"],
            flops=results["flops"], network=network, variables=variables,
            history={"archs": found["archs"], "val_accuracy": found["val_accuracy"]},
            pareto=self._pareto(space, found), ensemble=results.get("ensemble"), results=results, space=space,
            dataset=dataset, members=models["retrained"])

    def _split(self, space) -> tuple[int, ...]:
        """`few_shot` as decision indices of `space`."""
        decisions = []
        for d in self.few_shot:
            if isinstance(d, str) and d not in space.decision_names:
                raise ValueError(f"few_shot: {d!r} is not a decision of the space{closest(d, space.decision_names)}; "
                                 f"its decisions: {', '.join(space.decision_names)}.")
            decisions.append(space.decision_names.index(d) if isinstance(d, str) else int(d))
        few_shot.Split(tuple(decisions)).sizes(space)  # an index out of range names the valid ones
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
                **({"few_shot": self._split(space)} if self.few_shot else {}),  # older runs' identity unchanged
                **({"hybrid": self.hybrid} if self.hybrid else {})}

    def _pareto(self, space, found) -> list | None:
        """The front of (validation accuracy, each limited cost) over everything evaluated."""
        costs = {name: fn for name, fn, on in (("params", space.params, self.limits["max_params"]),
                                               ("flops", space.flops, self.limits["max_flops"])) if on}
        if not costs:
            return None
        archs, first = np.unique(found["archs"], axis=0, return_index=True)
        fitness = found["val_accuracy"][first]
        table = np.array([[fn(a) for fn in costs.values()] for a in archs], np.float64)
        return [{"arch": space.to_string(archs[i]), "val_accuracy": float(fitness[i]),
                 **{name: int(table[i, j]) for j, name in enumerate(costs)}}
                for i in pareto.pareto_front(fitness, table)]
