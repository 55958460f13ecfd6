"""The one-call API, `AutoModel(...).search()`, on tiny settings (behaviour, not accuracy)."""

import json

import numpy as np
import pytest
from sklearn.datasets import load_digits

from supernet import AutoModel, data, spaces
from supernet.api import resolve_data, resolve_space

CHOICES = {"block1": ["conv", "maxpool"], "block2": ["residual", "identity"], "block3": ["linear", "identity"]}
TINY = dict(supernet={"steps": 10}, search={"budget": 4, "population": 2}, retrain={"steps": 5}, progress=False)


def tiny(supernet=(), **search):
    """TINY with more search options (and supernet options, as a dict)."""
    return {**TINY, "supernet": {**TINY["supernet"], **dict(supernet)}, "search": {**TINY["search"], **search}}


@pytest.fixture(scope="module")
def digits_arrays():
    raw = load_digits()
    return raw.images[..., None].astype(np.float32), raw.target


@pytest.fixture(scope="module")
def result(digits_arrays):
    x, y = digits_arrays
    return AutoModel(CHOICES, data=(x, y), **tiny(max_params=10**6, ensemble="vote", ensemble_size=2)).search()


def test_search_unpacks_as_the_founding_document_writes_it(result):
    best_architecture, best_accuracy = result
    assert best_architecture == result.best_architecture and best_accuracy == result.best_accuracy
    assert best_architecture.startswith("block1=") and 0.0 <= best_accuracy <= 1.0
    assert result.best_architecture_dict["block2"] in CHOICES["block2"] and set(result.best_architecture_dict) == set(CHOICES)
    assert result.params > 0 and result.flops > 0 and 0 <= result.supernet_val_accuracy <= 1
    assert len(result.history["archs"]) == 4 and len(result.history["val_accuracy"]) == 4


def test_result_predicts_draws_and_reports_its_front(result, digits_arrays, tmp_path):
    x, y = digits_arrays
    predicted = result.predict(x[:40])
    assert predicted.shape == (40,) and set(predicted.tolist()) <= set(range(10))
    assert result.ensemble["method"] == "vote" and len(result.members) == 2
    assert (tmp_path / "a.png").exists() is False and result.draw(str(tmp_path / "a.png")).endswith("a.png")
    assert (tmp_path / "a.png").stat().st_size > 1000
    assert result.pareto and all(p["params"] <= 10**6 for p in result.pareto)
    with pytest.raises(ValueError, match=r"shape \(64,\) per example.*\(8, 8, 1\)"):
        result.predict(x[:4].reshape(4, 64))
    nan_row = x[:3].copy()
    nan_row[1, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match=r"predict input: rows \[1\] hold NaN or inf"):
        result.predict(nan_row)


def test_result_exports_the_retrained_winner(result, digits_arrays, tmp_path):
    from supernet import export, retrain
    x = (digits_arrays[0][:6] - result.dataset.mean) / result.dataset.std
    forward, variables = export.load(result.export(str(tmp_path / "winner")))
    np.testing.assert_allclose(forward(variables, x), retrain.logits(result.network, result.variables, x), atol=1e-5)


def test_result_explains_its_search(result, tmp_path):
    report = result.explain()
    assert report.effects.shape == (3, 2) and report.decision_names == tuple(CHOICES)
    assert report.num_results == len(result.history["val_accuracy"])
    assert result.results["explain"]["ranking"]
    assert result.plot_explanation(str(tmp_path / "e.png")).endswith("e.png") and (tmp_path / "e.png").stat().st_size > 1000


def test_result_records_where_it_was_measured(result):
    assert {"version", "git", "jax", "jaxlib", "backend", "device_kind", "utc"} <= set(result.results["provenance"])


def test_result_repr_fits_on_a_few_lines(result):
    text = repr(result)
    assert len(text) < 400 and text.count("\n") == 0, text
    assert text.startswith("SearchResult(best_architecture='block1=") and "ensemble of 2 (vote)" in text


def test_data_in_every_form():
    x, y = load_digits(return_X_y=True)
    carved = resolve_data((x, y), seed=3)
    assert len(carved.train) + len(carved.val) + len(carved.test) == len(y) and carved.input_shape == (64,)
    again = resolve_data((x, y), seed=3)
    np.testing.assert_array_equal(carved.test.y, again.test.y)  # carved reproducibly from the seed
    splits = resolve_data(((x[:1000], y[:1000]), (x[1000:1300], y[1000:1300]), (x[1300:], y[1300:])))
    assert (len(splits.train), len(splits.val), len(splits.test)) == (1000, 300, len(y) - 1300)
    assert resolve_data("digits").name == "digits"
    with pytest.raises(TypeError, match="data must be a dataset name"):
        resolve_data(42)


def test_space_in_every_form():
    ds = data.get("digits")
    assert resolve_space(CHOICES, ds, {}).name == "chain"
    assert resolve_space("nas_bench_201", ds, {"channels": 4}).input_shape == (8, 8, 1)
    wrong = spaces.get("nas_bench_201", input_shape=(32, 32, 3))
    with pytest.raises(ValueError, match="built with input_shape=.*build the space with input_shape=\\(8, 8, 1\\)"):
        resolve_space(wrong, ds, {})


def test_hybrid_fitness_by_name(digits_arrays):
    x, y = digits_arrays
    found = AutoModel(CHOICES, data=(x, y), **tiny(hybrid=("params", "naswot"))).search()
    assert found.results["search_fitness"] == "mean quantile of supernet validation accuracy, params, naswot"
    assert len(found.history["archs"]) == 4 and 0 <= found.supernet_val_accuracy <= 1
    with pytest.raises(ValueError, match="hybrid: unknown training-free ranker.*'grasp'.*valid: params, flops"):
        AutoModel(CHOICES, data=(x, y), **tiny(hybrid=("grasp",)))


def test_few_shot_sub_supernets_by_decision_name(digits_arrays):
    x, y = digits_arrays
    found = AutoModel(CHOICES, data=(x, y), **tiny(supernet={"few_shot": ("block1",)})).search()
    assert found.results["timings"]["few_shot_training_s"] > 0 and len(found.history["archs"]) == 4
    with pytest.raises(ValueError, match="'blok1' is not a decision of the space \\(did you mean 'block1'\\?\\)"):
        AutoModel(CHOICES, data=(x, y), **tiny(supernet={"few_shot": ("blok1",)})).search()
    with pytest.raises(ValueError, match="few-shot split decision 7 is not a decision"):
        AutoModel(CHOICES, data=(x, y), **tiny(supernet={"few_shot": (7,)})).search()


def test_bad_options_fail_before_any_work():
    with pytest.raises(ValueError, match=r"SearchOptions.ensemble='vot' is not valid \(did you mean 'vote'\?\)"):
        AutoModel(CHOICES, search={"ensemble": "vot"})
    with pytest.raises(ValueError, match="unknown strategy 'evolutoin' \\(did you mean 'evolution'\\?\\)"):
        AutoModel(CHOICES, strategy="evolutoin")
    with pytest.raises(ValueError, match="SearchOptions.budget must be a positive int, got 0"):
        AutoModel(CHOICES, search={"budget": 0})


@pytest.mark.parametrize("name,options", [
    ("nas_bench_201", {}),
    ("mobilenet", {}),
    ("chain", {"choices": CHOICES}),
])
def test_every_space_draws_its_architecture(name, options, tmp_path):
    from supernet import plots
    space = spaces.get(name, **options)
    file = plots.architecture(space, space.largest(), str(tmp_path / f"{name}.png"))
    assert (tmp_path / f"{name}.png").stat().st_size > 2000 and file.endswith(".png")


def test_a_workdir_holds_one_run(digits_arrays, tmp_path):
    """The same options and data resume; other data or options are refused, naming the way out;
    restart=True deletes the old run and starts the new one."""
    from supernet import run_identity
    x, y = digits_arrays
    first = AutoModel(CHOICES, data=(x, y), workdir=str(tmp_path), **TINY).search()
    written = json.loads((tmp_path / "results.json").read_text())
    assert written["best_arch"] == first.best_architecture and written["provenance"]["package"] == "supernet-nas"
    again = AutoModel(CHOICES, data=(x, y), workdir=str(tmp_path), **TINY).search()  # resumes every stage
    assert again.best_architecture == first.best_architecture and again.best_accuracy == first.best_accuracy
    with pytest.raises(run_identity.RunIdentityError, match=r"holds a run of another config.*restart=True"):
        AutoModel(CHOICES, data=(x[:1000], y[:1000]), workdir=str(tmp_path), **TINY).search()
    with pytest.raises(run_identity.RunIdentityError, match=r"recipes"):
        AutoModel(CHOICES, data=(x, y), workdir=str(tmp_path), **tiny(supernet={"steps": 12})).search()
    other = AutoModel(CHOICES, data=(x[:1000], y[:1000]), workdir=str(tmp_path), restart=True, **TINY).search()
    assert 0.0 <= other.best_accuracy <= 1.0
