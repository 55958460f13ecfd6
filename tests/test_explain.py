"""strategies.explain: a search history's additive explanation, checked against a whole table."""

import json

import numpy as np
import pytest

import strategies
from strategies.benchmarks import tabular
from strategies import explanation
from strategies.explanation import Explanation, agreement_with_table, summary
from strategies.space import Decisions
from supernet import plots, spaces, task
from supernet.jobs.search import explain_history


@pytest.fixture(scope="module")
def table():
    space = spaces.get("nas_bench_201")
    objective = tabular.nas_bench_201(space)
    return space, objective.archs, objective.values("cifar10-val")


def test_random_search_effects_match_the_tables_marginal_means(table):
    """The first 100 queries of a random search against the whole 12-epoch table's CIFAR-10
    column, which the model's penalties were not chosen on (they were chosen on its CIFAR-100 and
    ImageNet16-120 columns; experiments/measured/explain/). Goals: effects Pearson and importance
    Spearman >= 0.8 on average."""
    space, archs, fitness = table
    found = []
    for seed in range(10):
        rows = np.random.default_rng(seed).choice(len(archs), 100, replace=False)
        report = strategies.explain(space, archs[rows], fitness[rows], seed=seed)
        agreement = agreement_with_table(report, archs, fitness)
        found.append((agreement["effects_pearson"], agreement["importance_spearman"]))
    pearson, spearman = np.mean(found, axis=0)
    assert pearson >= 0.8, found
    assert spearman >= 0.8, found


def test_effects_are_the_fitted_models_mean_over_the_other_decisions():
    """The closed-form effects, count terms included, equal the fitted model's prediction averaged
    over every architecture with the option fixed, centred per decision."""
    space = Decisions([("e1", ["x", "y", "z"]), ("e2", ["x", "y", "z"]), ("e3", ["x", "y", "z"]), ("w", ["p", "q"])])
    num_choices, groups = tuple(space.num_choices), explanation.option_groups(space.options)
    assert groups == ((0, 1, 2),)
    rng = np.random.default_rng(3)
    archs = rng.integers(0, [3, 3, 3, 2], (40, 4))
    fitness = (archs[:, :3] == 0).sum(1) ** 2 + 0.5 * archs[:, 3] + 0.1 * rng.standard_normal(40)
    effects = explanation._effects(archs, fitness, explanation._kernel(archs, num_choices, groups),
                                   num_choices, groups)
    every = np.array(np.meshgrid(*[np.arange(k) for k in num_choices], indexing="ij")).reshape(4, -1).T
    kernel = explanation._kernel(np.concatenate([every, archs]), num_choices, groups)
    centred = kernel[-40:, -40:] - kernel[-40:, -40:].mean(0) - kernel[-40:, -40:].mean(1)[:, None] + kernel[-40:, -40:].mean()
    alpha = np.linalg.solve(centred + np.eye(40), fitness - fitness.mean())
    predicted = kernel[:len(every), -40:] @ alpha
    for d, k in enumerate(num_choices):
        means = np.array([predicted[every[:, d] == j].mean() for j in range(k)])
        np.testing.assert_allclose(effects[d, :k], means - means.mean(), atol=1e-9)


def test_decisions_with_the_same_options_are_grouped():
    assert explanation.option_groups(spaces.get("nas_bench_201").options) == ((0, 1, 2, 3, 4, 5),)
    assert explanation.option_groups([("a", "b"), ("c", "d"), ("a", "b", "c")]) == ()


def test_effects_are_centred_with_intervals_and_padded_options_are_nan():
    space = Decisions([("a", ["x", "y", "z"]), ("b", ["p", "q"]), ("c", ["u", "v"])])
    rng = np.random.default_rng(0)
    archs = rng.integers(0, [3, 2, 2], (80, 3))
    fitness = 2.0 * (archs[:, 0] == 2) - 1.0 * (archs[:, 1] == 1) + 0.05 * rng.standard_normal(80)
    report = strategies.explain(space, archs, fitness)
    assert report.effects.shape == (3, 3) and np.isnan(report.effects[1, 2]) and np.isnan(report.effects[2, 2])
    np.testing.assert_allclose(np.nanmean(report.effects, axis=1), 0, atol=1e-9)
    assert report.effects[0, 2] > report.effects[0, 0] + 1.5 and report.effects[1, 0] > report.effects[1, 1] + 0.7
    assert np.all(report.effects_low[0] <= report.effects[0]) and np.all(report.effects[0] <= report.effects_high[0])
    assert report.importance[0] > report.importance[1] > report.importance[2] and report.importance.sum() <= 1.05
    assert report.interactions == []  # the data are additive
    assert set(report.to_dict()["effects"]["a"]) == {"x", "y", "z"}


def test_an_interaction_in_the_data_is_named():
    space = Decisions([("a", ["0", "1"]), ("b", ["0", "1"]), ("c", ["0", "1"])])
    archs = np.random.default_rng(1).integers(0, 2, (120, 3))
    fitness = 1.0 * (archs[:, 0] == archs[:, 1])  # neither alone matters, the pair does
    report = strategies.explain(space, archs, fitness)
    assert report.interactions and report.interactions[0]["decisions"] == ["a", "b"]


def test_bad_histories_are_refused_and_failed_evaluations_left_out():
    space = Decisions([("a", ["x", "y"])])
    with pytest.raises(ValueError, match="2 architectures but 3 fitness values"):
        strategies.explain(space, [[0], [1]], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="1 finite results"):
        strategies.explain(space, [[0], [1]], [1.0, np.nan])
    assert strategies.explain(space, [[0], [1], [1]], [1.0, 2.0, np.nan]).num_results == 2


def test_the_json_section_round_trips_and_the_pictures_are_drawn(tmp_path):
    space = Decisions([("a", ["x", "y", "z"]), ("b", ["p", "q"])])
    rng = np.random.default_rng(2)
    archs = rng.integers(0, [3, 2], (30, 2))
    fitness = 1.0 * (archs[:, 0] == 1) + 0.1 * rng.standard_normal(30)
    section = json.loads(json.dumps(summary(space, archs, fitness, fitness_name="accuracy")))
    report = Explanation.from_dict(section)
    original = strategies.explain(space, archs, fitness)
    for field in ("effects", "effects_low", "effects_high", "importance", "counts"):
        np.testing.assert_allclose(getattr(report, field), getattr(original, field))
    assert report.options == original.options and report.decision_names == ("a", "b")
    assert section["fitness"] == "accuracy" and section["ranking"] == ["a", "b"]
    assert section["effects"]["a"]["y"]["count"] == int((archs[:, 0] == 1).sum())
    assert report.to_dict("accuracy") == section
    for draw in (plots.effects, plots.importance):
        file = draw(report, str(tmp_path / f"{draw.__name__}.png"))
        assert (tmp_path / f"{draw.__name__}.png").stat().st_size > 1000 and file.endswith(".png")
    written = explain_history(space, {"archs": archs, "val_metric": fitness}, str(tmp_path))
    assert written["explain"]["ranking"] == ["a", "b"] and written["explain"]["fitness"] == "supernet validation accuracy"
    assert all((tmp_path / written[key]).read_bytes()[:8].startswith(b"\x89PNG") for key in ("effects_png", "importance_png"))
    assert explain_history(space, {"archs": archs[:1], "val_metric": fitness[:1]}, str(tmp_path)) == {"explain": None}
    errors = explain_history(space, {"archs": archs, "val_metric": -fitness}, str(tmp_path), task.resolve(loss="mse"))
    assert errors["explain"]["fitness"] == "supernet validation mse, negated"   # explained as AutoModel does
    assert errors["explain"]["effects"] == written["explain"]["effects"]
    # Decision b never varies: its effects are 0 up to rounding, which the raw resamples can miss.
    few = strategies.explain(space, np.stack([archs[:10, 0], np.zeros(10, int)], 1), fitness[:10])
    assert few.counts[1].tolist() == [10, 0, 0]
    real = ~np.isnan(few.effects)
    assert np.all(few.effects_low[real] <= few.effects[real]) and np.all(few.effects[real] <= few.effects_high[real])
    assert plots.effects(few, str(tmp_path / "few.png")) and (tmp_path / "few.png").stat().st_size > 1000
