"""Hybrid rankers: quantiles against a reference sample, and a search whose fitness averages the
supernet's validation accuracy with training-free rankers."""

import jax
import numpy as np
import pytest

from supernet import data, one_shot, ranking, sharding, spaces
from supernet.runtime import Runtime


def test_quantiles_place_values_among_the_reference():
    reference = [1.0, 2.0, 3.0, 4.0]
    np.testing.assert_allclose(ranking.quantiles([0.5, 2.0, 2.5, 9.0], reference), [0.0, 0.375, 0.5, 1.0])
    assert np.isnan(ranking.quantiles([np.nan], reference)[0])
    with pytest.raises(ValueError, match="no finite score"):
        ranking.quantiles([1.0], [np.nan])


def test_hybrid_fitness_of_an_architecture_does_not_depend_on_its_batch():
    space = spaces.get("nas_bench_201")
    scorers = {"params": lambda archs: np.asarray([space.params(a) for a in np.asarray(archs)], np.float64)}
    accuracy = lambda archs: np.asarray(np.asarray(archs).sum(axis=1) % 7, np.float32)  # a stand-in supernet
    reference = np.asarray(space.sample(jax.random.key(0), 64))
    hybrid = one_shot.HybridFitness(scorers, accuracy, reference)
    archs = np.asarray(space.sample(jax.random.key(1), 8))
    together = hybrid(archs, accuracy(archs))
    alone = [hybrid(archs[i:i + 1], accuracy(archs[i:i + 1]))[0] for i in range(len(archs))]
    np.testing.assert_allclose(together, alone)
    expected = (ranking.quantiles(accuracy(archs), accuracy(reference))
                + ranking.quantiles(scorers["params"](archs), scorers["params"](reference))) / 2
    np.testing.assert_allclose(together, expected, rtol=1e-6)
    assert np.isnan(hybrid(archs[:1], np.asarray([np.nan], np.float32))[0])  # a failed evaluation stays failed


def test_unknown_training_free_ranker_is_named():
    space = spaces.get("nas_bench_201")
    with pytest.raises(ValueError, match="hybrid: unknown training-free ranker.*valid: params, flops, synflow, naswot, snip"):
        one_shot.training_free_scorers(space, ("params", "grasp"))


def test_the_pipeline_searches_with_a_hybrid_fitness_and_resumes(tmp_path):
    import strategies
    ds = data.get("digits")
    space = spaces.get("nas_bench_201", num_classes=10, input_shape=(8, 8, 1), channels=4, cells_per_stage=1,
                       stages=1)
    mesh = sharding.make_mesh(1)
    recipe = one_shot.HybridRecipe(training_free=("params", "naswot"), reference_size=16, proxy_batch=16)

    def run():
        return one_shot.run_one_shot_nas(
            space, ds, strategies.get("random", space), key=jax.random.key(0),
            supernet=one_shot.SupernetRecipe(steps=4, batch_size=32, checkpoint_every=2),
            search_recipe=one_shot.SearchRecipe(budget=6, population=3, calib_size=64, eval_batch_size=64,
                                                ensemble_size=2),
            retrain_recipe=one_shot.RetrainRecipe(steps=2, batch_size=32), hybrid_recipe=recipe,
            runtime=Runtime(mesh, str(tmp_path), progress=False))

    results = run()
    models = results["_models"]
    history, hybrid = models["history"], models["hybrid"]
    assert results["search_fitness"] == "mean quantile of supernet validation accuracy, params, naswot"
    # The strategy saw the hybrid of the supernet's accuracy; the accuracy itself is kept beside it.
    accuracy = one_shot.supernet_objective(space, models["supernet"], models["params"], ds.val, models["calib_x"],
                                           mesh=mesh, batch_size=64)(history["archs"])
    np.testing.assert_allclose(history["val_accuracy"], accuracy, atol=1e-6)
    np.testing.assert_allclose(history["fitness"], hybrid(history["archs"], accuracy), atol=1e-6)
    best = int(np.argmax(history["fitness"]))
    assert results["best_arch"] == space.to_string(history["archs"][best])
    assert results["supernet_val_accuracy"] == pytest.approx(history["val_accuracy"][best])
    assert results["top10"][0]["fitness"] == pytest.approx(history["fitness"][best])
    again = run()  # every stage resumes from its checkpoints: the same search, the same winner
    assert again["best_arch"] == results["best_arch"] and again["best_accuracy"] == results["best_accuracy"]
    np.testing.assert_array_equal(again["_models"]["history"]["fitness"], history["fitness"])
    assert "reference" not in vars(again["_models"]["hybrid"])  # the search was complete: no rescoring


def test_the_search_can_maximise_the_supernets_negative_loss_and_keeps_the_accuracy(tmp_path):
    import strategies
    ds = data.get("digits")
    space = spaces.get("nas_bench_201", num_classes=10, input_shape=(8, 8, 1), channels=4, cells_per_stage=1,
                       stages=1)
    mesh = sharding.make_mesh(1)

    def run(metric="loss"):
        return one_shot.run_one_shot_nas(
            space, ds, strategies.get("random", space), key=jax.random.key(0),
            supernet=one_shot.SupernetRecipe(steps=4, batch_size=32, checkpoint_every=2),
            search_recipe=one_shot.SearchRecipe(budget=6, population=3, calib_size=64, eval_batch_size=64,
                                                ensemble_size=1, metric=metric),
            retrain_recipe=one_shot.RetrainRecipe(steps=2, batch_size=32),
            runtime=Runtime(mesh, str(tmp_path), progress=False))

    results = run()
    models = results["_models"]
    history = models["history"]
    assert results["search_fitness"] == "negative supernet validation loss"
    scores = one_shot.supernet_scores(space, models["supernet"], models["params"], ds.val, models["calib_x"],
                                      mesh=mesh, batch_size=64)(history["archs"])
    np.testing.assert_allclose(history["fitness"], -scores["loss"], rtol=1e-5)
    np.testing.assert_allclose(history["val_accuracy"], scores["accuracy"], atol=1e-6)
    best = int(np.argmin(scores["loss"]))
    assert results["best_arch"] == space.to_string(history["archs"][best])
    assert results["supernet_val_accuracy"] == pytest.approx(scores["accuracy"][best])
    assert results["top10"][0]["fitness"] == pytest.approx(-scores["loss"][best], rel=1e-5)
    again = run()  # the search resumes from its checkpoint, accuracies included
    np.testing.assert_array_equal(again["_models"]["history"]["val_accuracy"], history["val_accuracy"])
    with pytest.raises(ValueError, match="unknown search metric 'lost'; valid: accuracy, loss"):
        one_shot.search(space, models["supernet"], models["params"], strategies.get("random", space), ds.val,
                        models["calib_x"], budget=3, population=3, key=jax.random.key(1), runtime=Runtime(mesh), metric="lost")
