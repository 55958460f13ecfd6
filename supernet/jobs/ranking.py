"""The `ranking` job: how well do cheap rankers order architectures the way training them from
scratch does (`experiments/ranking.py`)?

Reads a ground-truth table (`supernet.ground_truth`), scores its architectures with every
ranker in `config.rankers` and compares each ranking with the table's `config.ground_truth.column`
(`supernet.ranking.report`): analytic parameter and FLOP counts, the training-free proxies
(`supernet.proxies`, at initialisation, on one batch of training examples) and the trained
single-path supernet (validation accuracy with inherited weights, BN recalibrated per
architecture, as the one-shot pipeline's search sees it). A ranker named `a+b+...` is a hybrid:
the average of those rankers' ranks (`supernet.ranking.rank_average`). Writes one scatter plot per
ranker.
"""

from __future__ import annotations

import os
import time

import jax
import numpy as np

from strategies.registry import closest
from supernet import config_check, evaluation, one_shot, proxies, ranking, training
from supernet import ground_truth
from supernet.ground_truth import resolve_table
from supernet.jobs import setup, task_of
from supernet.runtime import Runtime

SUPERNET_RANKERS = ("supernet", "supernet_loss", "few_shot", "fine_tuned")
RANKERS = (*one_shot.TRAINING_FREE, *SUPERNET_RANKERS)


def components(ranker: str) -> list[str]:
    """The single rankers a ranker name stands for: `few_shot+naswot` -> [few_shot, naswot]."""
    return ranker.split("+")


def check_rankers(rankers) -> None:
    """A ConfigError naming each ranker (or hybrid component) that is not in `RANKERS`."""
    unknown = [r for r in rankers if any(c not in RANKERS for c in components(r))]
    if unknown:
        first = next(c for c in components(unknown[0]) if c not in RANKERS)
        raise ValueError(f"unknown ranker(s) {unknown}{closest(first, RANKERS)}; valid: {', '.join(RANKERS)}, or "
                         f"several of them joined by '+' for the average of their ranks (e.g. 'few_shot+naswot').")


def check(config) -> None:
    """The rankers exist, the table exists and, unless `ground_truth.check_task` is off, was made
    on this run's task."""
    check_rankers(config.rankers)
    table = config_check.existing_file(config.ground_truth.table, "ground_truth.table",
                                       "make one with `python launch.py --config experiments/ground_truth.py "
                                       "--workdir DIR` and pass --config.ground_truth.table=DIR/ground_truth.csv.")
    if config.ground_truth.check_task:
        ground_truth.check_task(task_of(config), table, "ground_truth.check_task")


def _supernet_scores(config, dataset, space, runtime: Runtime, archs) -> dict:
    """Every supernet ranker's scores from one training of the one-shot supernet: validation
    accuracy and negative validation loss with inherited weights (BN recalibrated per architecture)
    and, when asked for, the few-shot sub-supernets' validation accuracy and the validation accuracy
    after fine-tuning each architecture's inherited weights alone (`fine_tuned`)."""
    s = config.supernet
    recipe = one_shot.from_section(one_shot.SupernetRecipe, s, read_elsewhere=("seed", "calib_size", "eval_batch_size"))
    model = space.supernet()
    state = training.train_supernet(space, model, dataset.train, steps=recipe.steps, batch_size=recipe.batch_size,
                                    optimizer=recipe.optimizer(), key=jax.random.key(config.seed + s.seed),
                                    runtime=runtime, sampling=recipe.sampling, checkpoint_every=recipe.checkpoint_every)
    mesh = runtime.mesh
    calib_x = one_shot.calibration_inputs(dataset.train, s.calib_size, config.seed, mesh)
    scores = evaluation.evaluate_population(space, model, state.params, archs, calib_x, dataset.val.x,
                                            dataset.val.y, mesh=mesh, batch_size=s.eval_batch_size)
    out = {"supernet": scores["accuracy"], "supernet_loss": -scores["loss"]}
    wanted = {c for r in config.rankers for c in components(r)}
    if "few_shot" in wanted:
        subs = one_shot.train_few_shot(space, model, state.params, dataset.train, recipe,
                                       one_shot.from_section(one_shot.FewShotRecipe, config.few_shot),
                                       key=jax.random.key(config.seed + 1), runtime=runtime)
        # Each architecture scored by its own sub-supernet, as the search scores it.
        out["few_shot"] = one_shot.supernet_objective(space, model, subs, dataset.val, calib_x, mesh=mesh,
                                                      batch_size=s.eval_batch_size)(archs)
    if "fine_tuned" in wanted:
        t = config.fine_tune
        optimizer = training.make_optimizer(t.learning_rate, recipe.momentum, recipe.weight_decay, t.steps)
        tuned = evaluation.evaluate_fine_tuned(space, model, state.params, archs, dataset.train, calib_x,
                                               dataset.val.x, dataset.val.y, runtime=runtime, steps=t.steps,
                                               optimizer=optimizer, batch_size=recipe.batch_size,
                                               seed=config.seed + 2, eval_batch_size=s.eval_batch_size,
                                               record=os.path.join(runtime.workdir, "fine_tuned.jsonl"))
        out["fine_tuned"] = tuned["accuracy"]
    return out


def run(config, workdir: str) -> dict:
    """The `ranking` job: trains the supernet once, scores the table's architectures by every
    ranker, writes the reports."""
    check_rankers(config.rankers)
    dataset, space, runtime = setup(config, workdir)
    g = config.ground_truth
    table = resolve_table(g.table)
    archs, truth, rows = ranking.read_ground_truth(table, space, g.column)
    if g.max_rows:
        archs, truth, rows = archs[:g.max_rows], truth[:g.max_rows], rows[:g.max_rows]
    names = [r["arch"] for r in rows]
    scored, at = archs, np.arange(len(rows))  # what the rankers score, and where each table row is in it
    if g.score_sample:
        # The ground-truth job's whole sample: a table still being filled can re-score it later.
        scored = ground_truth.sample_architectures(space, g.score_sample, config.seed)
        where = {space.to_string(a): i for i, a in enumerate(scored)}
        missing = [n for n in names if n not in where]
        if missing:
            raise ValueError(f"{len(missing)} table rows (first {missing[0]}) are not in the ground-truth sample of "
                             f"{g.score_sample} with seed {config.seed}; set ground_truth.score_sample=0.")
        at = np.asarray([where[n] for n in names])

    # Proxies: supernet weights at initialisation and one fixed batch of training examples.
    proxy_model = space.supernet()
    proxy_params = training.init_params(space, proxy_model, jax.random.key(config.seed), dataset.input_shape)
    pick = np.sort(np.random.default_rng(config.seed).choice(len(dataset.train), config.proxy_batch, replace=False))
    proxy_x, proxy_y = dataset.train.x[pick], dataset.train.y[pick]
    wanted = list(dict.fromkeys(c for r in config.rankers for c in components(r)))
    training_free = one_shot.training_free_scorers(space, [n for n in wanted if n in one_shot.TRAINING_FREE],
                                                   (proxy_model, proxy_params, proxy_x, proxy_y))

    labels = {"params": "parameters (analytic)", "flops": "FLOPs (analytic)",
              "supernet": "supernet validation accuracy (inherited weights)",
              "supernet_loss": "minus supernet validation loss (inherited weights)",
              "few_shot": "few-shot sub-supernet validation accuracy",
              "fine_tuned": "validation accuracy after fine-tuning the inherited weights",
              **{p: f"{p} score at initialisation" for p in proxies.PROXIES}}
    singles, seconds, supernet_scores = {}, {}, None
    for name in wanted:
        tic = time.perf_counter()
        if name in training_free:
            singles[name] = training_free[name](scored)
        else:  # one supernet training serves every supernet ranker
            if supernet_scores is None:
                supernet_scores = _supernet_scores(config, dataset, space, runtime, scored)
            singles[name] = supernet_scores[name]
        seconds[name] = time.perf_counter() - tic

    reports = {}
    for name in config.rankers:
        parts = components(name)
        all_scores = singles[name] if len(parts) == 1 else ranking.rank_average(*(singles[c] for c in parts))
        predicted = np.asarray(all_scores)[at]
        report = ranking.report(predicted, truth, names=names)
        label = labels[name] if len(parts) == 1 else "rank average of " + ", ".join(parts)
        png = ranking.draw_scatter(predicted, truth, report, os.path.join(workdir, f"ranking_{name}.png"),
                                   xlabel=label, ylabel=f"{g.column} (trained from scratch)", name=name)
        seconds_taken = sum(seconds[c] for c in parts)
        # The scores themselves, aligned with "archs": a later, larger table can re-score them.
        reports[name] = {**report, "seconds": seconds_taken, "scatter_png": png,
                         "scores": np.asarray(all_scores, np.float64).tolist()}

    # A table with one seed has no seed-to-seed agreement to report.
    ceiling = ranking.table_noise_ceiling(rows)
    print(f"{len(rows)} architectures from {table}; noise ceiling: " + (
        f"seed halves tau {ceiling['test_seed_tau']:.3f}, val vs test tau {ceiling['val_test_tau']:.3f}"
        if ceiling else "none (the table has fewer than 2 seeds)"))
    for name, r in reports.items():
        print(f"  {name:>22}: tau {r['kendall_tau']:+.3f}  rho {r['spearman_rho']:+.3f}  "
              f"P@5% {r['precision_top5pct']:.2f}  P@10% {r['precision_top10pct']:.2f}  "
              f"top-1 true rank {r['top1_true_rank']:g}  regret {r['top1_regret']:.4f}  ({r['seconds']:.1f} s)")
    return {"table": table, "rows": len(rows), "column": g.column, "noise_ceiling": ceiling, "rankers": reports,
            "archs": [space.to_string(a) for a in scored],
            "space": space.describe(),
            "dataset": {"name": dataset.name, "train": len(dataset.train), "val": len(dataset.val)}}
