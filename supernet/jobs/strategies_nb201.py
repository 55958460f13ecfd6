"""The `strategies_nb201` job: every strategy against a lookup table (e.g. NAS-Bench-201).

`run_comparison` runs every strategy for every seed up to the largest budget, feeding it the
table's `fitness_column` (e.g. validation accuracy) as fitness. For each budget B, the architecture
a run "returns" is its best by fitness among its first B queries (so one seed's budgets share a
trajectory, as in a best-so-far curve), and it is judged on `report_column` (e.g. test accuracy).

Seeds run side by side: when `ask` and `tell` are jittable (no host-side constraints) they are
vmapped over the seeds, one call per query for all seeds; otherwise seeds run one after another.

The reference is the table's best architecture by fitness (the best feasible one under a latency
limit); `found_reference` in the table is the fraction of seeds that queried it (or an equally fit
one) within the budget.

`identical_query_sequences`: for every pair of strategies and every budget B, on how many seeds the
two made the same first B queries (compared as `space.canonical` architectures, so two cells that
compute the same function count as the same query). Two strategies that agree on every seed are
one search under two names.

Outputs in `workdir`: `results.json` (the table, the reference architecture, per-strategy wall
time, the Pareto fronts when a latency limit is given), `metrics.jsonl` (one line per
(strategy, budget, seed) run) and `best_so_far.png` (plus `pareto.png` with a latency limit).
Each strategy's queries are saved in `checkpoints/comparison/<strategy>.npz` once it finishes, so
a rerun after a kill redoes only the strategy it was in.
"""

from __future__ import annotations

import contextlib
import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

import strategies as registry
from strategies import explanation, pareto
from strategies.constraints import Limit, analytic_cost
from strategies.benchmarks import tabular
from supernet import config_check, distributed, plots, records, spaces


PRIORS = ("", "params", "flops")


@contextlib.contextmanager
def single_threaded_blas():
    """Pins OpenBLAS (used by JAX's CPU linear algebra) to one thread while the comparison runs.

    Measured: on a 2-core machine shared with other jobs, a threaded 256x256 Cholesky took
    100-1000x longer than a single-threaded one. A no-op when threadpoolctl is not installed.
    """
    try:
        import threadpoolctl
    except ImportError:
        yield
        return
    # threadpoolctl only reaches libraries already loaded: make JAX load its LAPACK first.
    jnp.linalg.cholesky(jnp.eye(2)).block_until_ready()
    with threadpoolctl.threadpool_limits(limits=1, user_api="blas"):
        yield


def _seed_list(seeds):
    return list(range(seeds)) if isinstance(seeds, int) else [int(s) for s in seeds]


def _progress_bar(total, enabled, description):
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc=description, unit="query")


def run_search(strategy, objective, seeds, budget: int, batch_size: int = 1, progress=None, stop_when=None):
    """Runs `strategy` against `objective` for each seed; returns int32[S, budget, D] queried
    architectures in query order. `progress`: an optional tqdm bar, advanced once per query of
    each seed. `stop_when(queried int32[S, t, D]) -> bool` may end the search early (fewer than
    `budget` queries come back); seeds run one by one (host-side constraints) ignore it."""
    seeds = _seed_list(seeds)
    keys = jnp.stack([jax.random.key(s) for s in seeds])
    steps = -(-budget // batch_size)
    try:
        init = jax.vmap(strategy.init)
        ask = jax.jit(jax.vmap(strategy.ask, in_axes=(0, 0, None)), static_argnums=2)
        tell = jax.jit(jax.vmap(strategy.tell))
        states = init(jax.vmap(lambda k: jax.random.fold_in(k, 0))(keys))
        ask(keys, states, batch_size)  # fails fast when `ask` filters on the host
    except TypeError:
        runs = [run_search(strategy, objective, [s], budget, batch_size, progress)[0] for s in seeds]
        return np.stack(runs)
    queried = []
    for step in range(steps):
        step_keys = jax.vmap(lambda k: jax.random.fold_in(k, step + 1))(keys)
        archs, states = ask(step_keys, states, batch_size)
        archs_np = np.asarray(archs)
        fitness = np.asarray(objective(archs_np.reshape(-1, archs_np.shape[-1])), np.float32)
        states = tell(states, archs, fitness.reshape(archs_np.shape[:2]))
        queried.append(archs_np)
        if progress is not None:
            progress.update(batch_size * len(seeds))
        if stop_when is not None and stop_when(np.concatenate(queried, axis=1)):
            break
    return np.concatenate(queried, axis=1)[:, :budget]


def best_so_far(fitness, report):
    """For each prefix length t, `report` of the best-by-`fitness` among the first t: [..., T]."""
    fitness = np.where(np.isnan(fitness), -np.inf, fitness)
    running = np.maximum.accumulate(fitness, axis=-1)
    previous = np.concatenate([np.full(fitness.shape[:-1] + (1,), -np.inf), running[..., :-1]], axis=-1)
    # The first query to beat every earlier one is the architecture returned from then on.
    is_new_best = (fitness > previous) | (np.arange(fitness.shape[-1]) == 0)
    index = np.where(is_new_best, np.arange(fitness.shape[-1]), 0)
    index = np.maximum.accumulate(index, axis=-1)
    return np.take_along_axis(report, index, axis=-1)


def _latency_limit(latency_table, latency_column, latency_limit):
    if latency_table is None or latency_limit is None:
        return None
    name = f"{latency_column} latency (ms)"
    return Limit(name, lambda archs: latency_table.metric(archs, latency_column), float(latency_limit))


def run_comparison(space, table, strategy_names, budgets, seeds, workdir, *, fitness_column="cifar10-val",
                   report_column="cifar10-test", strategy_options=None, batch_size: int = 1,
                   latency_table=None, latency_column="pixel3", latency_limit=None,
                   prior: str = "", progress: bool = True) -> dict:
    """Runs the comparison and writes its outputs to `workdir`; returns what `results.json` holds.

    Args:
      space: the search space. table: a `tabular.TabularObjective` over it.
      strategy_names: registry names. budgets: query counts (ints). seeds: a count or a list.
      fitness_column / report_column: what strategies optimise / what the result is judged on.
      strategy_options: {name: {option: value}} passed to `strategies.get`.
      batch_size: architectures per `ask`.
      latency_table, latency_column, latency_limit: when all given, every strategy is constrained
        to `latency_table.metric(arch, latency_column) <= latency_limit`, the reference becomes the
        best feasible architecture, and Pareto fronts of (fitness, latency) are reported.
      prior: "" (none), "params" or "flops": the space's analytic count as every strategy's
        zero-cost prior (`strategies.get(prior=...)`: initial and restart samples best-scored first).
    """
    if prior not in PRIORS:
        raise ValueError(f"prior must be one of {PRIORS}, got {prior!r}.")
    prior_fn = analytic_cost(space, prior) if prior else None  # tabulated once for every strategy
    os.makedirs(workdir, exist_ok=True)
    seeds, budgets = _seed_list(seeds), sorted(int(b) for b in budgets)
    horizon, options = budgets[-1], dict(strategy_options or {})
    limit = _latency_limit(latency_table, latency_column, latency_limit)
    reference = _reference(table, fitness_column, report_column, limit)
    curves, summary, fronts, wall, canonical, explained = {}, {}, {}, {}, {}, {}
    metrics_path = os.path.join(workdir, "metrics.jsonl")
    bar = _progress_bar(len(strategy_names) * horizon * len(seeds), progress, "strategies")
    with open(metrics_path, "w") as metrics, single_threaded_blas():
        for name in strategy_names:
            if bar is not None:
                bar.set_postfix_str(name)
            strategy = registry.get(name, space, constraints=[limit] if limit else (), prior=prior_fn,
                                    **options.get(name, {}))
            queried, wall[name] = _search_or_resume(strategy, name, table_objective(table, fitness_column), seeds,
                                                    horizon, batch_size, bar, workdir)
            flat = queried.reshape(-1, space.num_decisions)
            canonical[name] = np.asarray(space.canonical(jnp.asarray(flat))).reshape(queried.shape)
            fitness = table.metric(flat, fitness_column).reshape(queried.shape[:2])
            report = table.metric(flat, report_column).reshape(queried.shape[:2])
            curves[name] = best_so_far(fitness, report)
            # what the first seed's history says about the space (strategies.explain)
            explained[name] = explanation.summary(space, queried[0], fitness[0], seed=seeds[0],
                                                  fitness_name=fitness_column)
            summary[name] = _summarise(curves[name], _found(fitness, reference["fitness"]), budgets)
            _write_metrics(metrics, name, seeds, budgets, queried, fitness, report, space, wall[name])
            if limit is not None:
                fronts[name] = _front(queried, fitness, report, limit, space)
    if bar is not None:
        bar.close()
    results = {
        "space": space.name, "fitness_column": fitness_column, "report_column": report_column,
        "budgets": budgets, "seeds": seeds, "batch_size": batch_size, "strategy_options": options, "prior": prior,
        "reference": reference, "table": summary, "wall_seconds": wall,
        "targets": _targets(summary, budgets, reference),
        "identical_query_sequences": identical_query_sequences(canonical, budgets),
        "explain": explained,
        "plot": "best_so_far.png",
    }
    _print_identical(results["identical_query_sequences"], len(seeds))
    if limit is not None:
        results["latency_limit"] = {"column": latency_column, "limit_ms": float(latency_limit)}
        results["pareto"] = fronts
        results["pareto_plot"] = "pareto.png"
        plots.pareto_fronts(fronts, limit, os.path.join(workdir, "pareto.png"))
    plots.best_so_far_curves(curves, reference, report_column, os.path.join(workdir, "best_so_far.png"))
    records.write_json(workdir, "results.json", results)  # atomically, process 0 only
    return results


def _search_or_resume(strategy, name, objective, seeds, horizon, batch_size, bar, workdir):
    """(queries [S, T, D], wall seconds) of one strategy: loaded when a previous run of this
    workdir finished it, else searched and saved (atomically, by process 0)."""
    path = os.path.join(workdir, "checkpoints", "comparison", f"{name}.npz")
    if os.path.isfile(path):
        with np.load(path) as saved:
            if bar is not None:
                bar.update(saved["queried"].shape[0] * saved["queried"].shape[1])
            return saved["queried"], float(saved["wall_seconds"])
    start = time.time()
    queried = run_search(strategy, objective, seeds, horizon, batch_size, bar)
    seconds = time.time() - start
    if distributed.is_writer():
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with records.atomic_file(path, "wb") as f:
            np.savez(f, queried=queried, wall_seconds=seconds)
    return queried, seconds


def table_objective(table, column):
    """`objective(archs) -> float[n]`: the table's `column` for each architecture."""
    return lambda archs: table.metric(archs, column)


def _reference(table, fitness_column, report_column, limit):
    feasible = None
    if limit is not None:
        feasible = np.asarray(limit.cost(table.archs)) <= limit.limit
    arch = table.best(fitness_column, feasible)
    return {"arch": table.space.to_string(arch), "fitness": float(table.metric(arch, fitness_column)[0]),
            "report": float(table.metric(arch, report_column)[0]),
            "best_report_in_table": float(np.max(np.where(feasible if feasible is not None else True,
                                                          table.values(report_column), -np.inf))),
            "feasible_fraction": None if feasible is None else float(np.mean(feasible))}


def _found(fitness, best_fitness):
    """bool[S, T]: whether a seed has queried an architecture as fit as the reference by query t."""
    running = np.maximum.accumulate(np.where(np.isnan(fitness), -np.inf, fitness), axis=-1)
    return running >= best_fitness - 1e-6


def _summarise(curve, found, budgets):
    return {str(b): {"mean": float(np.mean(curve[:, b - 1])), "std": float(np.std(curve[:, b - 1])),
                     "found_reference": float(np.mean(found[:, b - 1])), "n": int(curve.shape[0])}
            for b in budgets}


def _targets(summary, budgets, reference):
    """Figures against the table itself, no fixed thresholds: each strategy vs random at the
    smallest budget, and at every budget each strategy's gap to the reference (the report value of
    the table's best-by-fitness architecture) and which strategy came closest."""
    low = str(budgets[0])
    targets = {"reference_report": reference["report"]}
    if "random" in summary:
        random_mean = summary["random"][low]["mean"]
        targets[f"beats_random_at_{low}"] = {n: s[low]["mean"] > random_mean for n, s in summary.items()
                                             if n != "random"}
    targets["gap_to_reference"] = {n: {str(b): reference["report"] - s[str(b)]["mean"] for b in budgets}
                                   for n, s in summary.items()}
    for b in map(str, budgets):
        best_name = max(summary, key=lambda n: summary[n][b]["mean"])
        targets[f"best_at_{b}"] = {"strategy": best_name,
                                   "gap_to_reference": targets["gap_to_reference"][best_name][b]}
    return targets


def identical_query_sequences(queried: dict, budgets) -> dict:
    """{"a vs b": {budget: seeds}}: for each pair of strategies (in the order given) and budget, on
    how many seeds their first `budget` queries are the same sequence. `queried`: {name:
    int[S, T, D]} over the same seeds, already canonical if equivalent architectures should match."""
    names, counts = list(queried), {}
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            same = np.all(queried[a] == queried[b], axis=-1)  # [S, T]: query t agrees
            counts[f"{a} vs {b}"] = {str(budget): int(np.sum(np.all(same[:, :budget], axis=1)))
                                     for budget in budgets}
    return counts


def _print_identical(counts, num_seeds):
    flagged = {pair: c for pair, c in counts.items() if any(c.values())}
    print(f"identical query sequences (seeds of {num_seeds}): "
          + ("none" if not flagged else "; ".join(f"{pair} {c}" for pair, c in flagged.items())))


def _write_metrics(stream, name, seeds, budgets, queried, fitness, report, space, seconds):
    for budget in budgets:
        prefix = np.where(np.isnan(fitness[:, :budget]), -np.inf, fitness[:, :budget])
        best = np.argmax(prefix, axis=1)
        for i, seed in enumerate(seeds):
            stream.write(json.dumps({
                "strategy": name, "budget": budget, "seed": seed,
                "arch": space.to_string(queried[i, best[i]]), "fitness": float(fitness[i, best[i]]),
                "report": float(report[i, best[i]]), "unique_queries": int(len(np.unique(queried[i, :budget], axis=0))),
                "strategy_wall_seconds_all_seeds": seconds}) + "\n")
    stream.flush()


def _front(queried, fitness, report, limit, space):
    """The Pareto front of (fitness, latency) over every architecture any seed queried."""
    archs, first = np.unique(queried.reshape(-1, queried.shape[-1]), axis=0, return_index=True)
    fit, rep = fitness.reshape(-1)[first], report.reshape(-1)[first]
    cost = np.asarray(limit.cost(archs), np.float64)
    front = pareto.pareto_front(fit, cost)
    return {"violations": int(np.sum(cost > limit.limit)),
            "points": [{"arch": space.to_string(archs[i]), "fitness": float(fit[i]), "report": float(rep[i]),
                        "cost": float(cost[i])} for i in front]}


def _table_path(path: str) -> str:
    """A table path as given, or relative to the installed project (`strategies/benchmarks/...`)."""
    if os.path.isabs(path) or os.path.exists(path):
        return path
    project = os.path.dirname(os.path.dirname(os.path.abspath(registry.__file__)))
    return os.path.join(project, path)


def check(config) -> None:
    """The strategies (each built with its options), the prior, the tables and their columns, before
    any work."""
    space = spaces.get(config.space.name, **config.space.options.to_dict())
    for name in config.strategies:
        config_check.check_choice(name, registry.names(), "strategies")
        try:
            registry.get(name, space, **config.strategy_options.to_dict().get(name, {}))
        except (ValueError, TypeError) as error:
            raise config_check.ConfigError(f"strategy_options.{name}: {error}") from None
    config_check.check_choice(config.get("prior", ""), PRIORS, "prior")
    table = _checked_table(config, "table", space)
    for key in ("fitness_column", "report_column"):
        config_check.check_choice(config[key], table.columns, key)
    if config.latency_table:
        config_check.check_choice(config.latency_column, _checked_table(config, "latency_table", space).columns,
                                  "latency_column")


def _checked_table(config, key: str, space) -> tabular.TabularObjective:
    """The table `config[key]` names, read; a ConfigError when it does not exist."""
    path = config_check.existing_file(config[key], key, f"set --config.{key} to a CSV with an 'arch' column of "
                                                        f"{space.name} architectures (strategies/benchmarks/).")
    return tabular.TabularObjective(path, space)


def run(config, workdir: str) -> dict:
    """The `strategies_nb201` job: `run_comparison` with the config's table, strategies, budgets and
    seeds."""
    space = spaces.get(config.space.name, **config.space.options.to_dict())
    table = tabular.TabularObjective(_table_path(config.table), space, fitness_column=config.fitness_column)
    latency = (tabular.TabularObjective(_table_path(config.latency_table), space) if config.latency_table else None)
    first_seed = config.get("first_seed", 0)
    return run_comparison(
        space, table, list(config.strategies), list(config.budgets),
        list(range(first_seed, first_seed + config.seeds)), workdir,
        fitness_column=config.fitness_column, report_column=config.report_column,
        strategy_options=config.strategy_options.to_dict(), batch_size=config.batch_size,
        latency_table=latency, latency_column=config.latency_column,
        latency_limit=config.latency_limit if latency else None, prior=config.get("prior", ""),
        progress=config.progress)


__all__ = ["run", "run_comparison", "run_search", "best_so_far", "identical_query_sequences", "single_threaded_blas",
           "table_objective"]
