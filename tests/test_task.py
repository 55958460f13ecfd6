"""Any task in AutoModel: a user's loss and metric, value targets, token-id inputs, and the errors."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from experiments import own_regression
from supernet import AutoModel, data, ensemble, evaluation, nas, retrain, sharding, training
from supernet import task as tasks


def test_names_resolve_to_a_task_with_its_direction():
    assert tasks.resolve() == tasks.CLASSIFICATION and tasks.CLASSIFICATION.labels
    regress = tasks.resolve(loss="mse")
    assert (regress.metric_name, regress.higher_is_better, regress.labels) == ("mse", False, False)
    assert tasks.resolve(loss="mae", metric="mse").metric is tasks.mse
    np.testing.assert_allclose(regress.fitness(np.array([0.5, 2.0])), [-0.5, -2.0])
    outputs, targets = jnp.array([[1.0], [3.0]]), jnp.array([0.0, 1.0])   # [n, 1] against [n]
    assert float(tasks.mse(outputs, targets)) == pytest.approx(2.5) and float(tasks.mae(outputs, targets)) == 1.5


def r2(outputs, targets):
    return 1 - jnp.mean((outputs.ravel() - targets) ** 2) / jnp.var(targets)


def test_a_metric_function_takes_its_name_and_needs_a_direction():
    custom = tasks.resolve(loss="mse", metric=r2, higher_is_better=True)
    assert (custom.metric_name, custom.higher_is_better) == ("r2", True)
    with pytest.raises(ValueError, match=r"metric 'r2' is a function.*pass higher_is_better=True"):
        tasks.resolve(loss="mse", metric=r2)


@pytest.mark.parametrize("kwargs,message", [
    ({"loss": "mse", "higher_is_better": True}, r"metric 'mse' is better when lower.*pass higher_is_better=False"),
    ({"metric": "mse"}, r"metric 'mse' compares values.*pass loss='mse'"),
    ({"loss": "accuracy"}, r"unknown loss 'accuracy'; valid names: cross_entropy, mse, mae"),
    ({"loss": "mse", "higher_is_better": "no"}, r"higher_is_better must be True or False"),
])
def test_bad_combinations_are_one_line_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        AutoModel({"op": ["conv", "maxpool"]}, **kwargs)


@pytest.mark.parametrize("options,message", [
    ({"search": {"ensemble": "vote", "ensemble_size": 2}}, r"voting ensemble needs class labels.*ensemble='average'"),
    ({"search": {"hybrid": ("synflow",)}}, r"hybrid rankers \['synflow'\] score with cross-entropy.*'params' or 'flops'"),
    ({"supernet": {"few_shot": ("op",)}}, r"few-shot sub-supernets .* drop few_shot"),
])
def test_what_only_classification_supports_is_refused_for_a_regression(options, message):
    with pytest.raises(ValueError, match=message):
        AutoModel({"op": ["conv", "maxpool"]}, loss="mse", **options)


def test_float_targets_pass_as_values_and_are_refused_as_labels():
    x = np.random.default_rng(0).standard_normal((50, 4)).astype(np.float32)
    y = x.sum(1) * 0.5
    values = data.from_arrays(x, y, labels=False)
    assert values.train.y.dtype == np.float32 and values.num_classes == 1
    np.testing.assert_allclose(np.sort(np.concatenate([values.train.y, values.val.y, values.test.y])), np.sort(y))
    with pytest.raises(ValueError, match=r"non-integer values such as .* pass loss=\"mse\""):
        data.from_arrays(x, y)
    y[3] = np.nan
    with pytest.raises(ValueError, match=r"targets of rows 3 are NaN or inf"):
        data.from_arrays(x, y, labels=False)


def test_token_ids_are_kept_as_integers():
    tokens = np.random.default_rng(0).integers(0, 8, (40, 6))
    found = data.from_arrays(tokens, tokens[:, ::-1], labels=False)
    assert found.train.x.dtype == np.int32 and found.train.y.dtype == np.int32
    assert set(np.unique(found.train.x)) <= set(range(8))   # not standardised


def test_averaging_combines_any_outputs_and_voting_needs_classes():
    outputs = np.stack([np.full((3, 1), 1.0), np.full((3, 1), 3.0)])
    np.testing.assert_allclose(ensemble.combine(outputs), np.full((3, 1), 2.0))
    with pytest.raises(ValueError, match=r"voting needs class logits"):
        ensemble.combine(outputs[..., 0], method="vote")


class Reverse(nn.Module):
    """Per-token logits over 8 tokens: a sequence task on token ids (one-hot inside the model, so
    the ids must arrive as integers)."""

    @nn.compact
    def __call__(self, x):
        h = jax.nn.one_hot(x, 8).reshape(x.shape[0], -1)
        h = nas.Choice([nn.Dense(16, name="a"), nn.Dense(16, name="b")], name="mix")(h)
        return nn.Dense(6 * 8)(nn.relu(nas.Dense(features=(8, 16), name="fc")(h))).reshape(x.shape[0], 6, 8)


def sequence_loss(outputs, targets):
    return optax.softmax_cross_entropy_with_integer_labels(outputs, targets).mean()


def token_accuracy(outputs, targets):
    return (outputs.argmax(-1) == targets).mean()


def test_a_sequence_task_on_token_ids_searches_with_the_users_loss_and_metric():
    tokens = np.random.default_rng(0).integers(0, 8, (120, 6))
    found = AutoModel(Reverse(), data=(tokens, tokens[:, ::-1]), loss=sequence_loss, metric=token_accuracy,
                      higher_is_better=True, supernet={"steps": 6, "batch_size": 16},
                      search={"budget": 3, "population": 3, "ensemble": "average", "ensemble_size": 2},
                      retrain={"steps": 4, "batch_size": 16}, progress=False).search()
    test = found.dataset.test
    expected = float(token_accuracy(retrain.logits(found.network, found.variables, test.x), test.y))
    assert found.metric == "token_accuracy" and found.test_metric == pytest.approx(expected, abs=1e-6)
    assert found.best_accuracy is None and found.results["metric"] == "token_accuracy"
    assert len(found.history["val_metric"]) == 3 and np.all(np.isfinite(found.history["val_metric"]))
    assert found.ensemble["method"] == "average" and 0 <= found.ensemble["test_metric"] <= 1
    assert found.predict(test.x[:5]).shape == (5, 6, 8)   # outputs as the model returns them


def test_the_regression_example_runs_tiny():
    summary = own_regression.main("tiny", progress=False)
    assert summary["metric"] == "mse" and np.isfinite(summary["test_mse"])
    assert summary["baseline"]["test_mse"] > 0 and summary["predict_the_training_mean"]["test_mse"] > 0.5
    assert summary["evaluated"] == 2 and "stage.depth" in summary["decisions"]


def test_evaluation_with_a_task_scores_whole_outputs():
    """The supernet's score under a task equals the metric of its extracted network's outputs on
    the whole split (10 examples in batches of 4: the padded last batch does not count)."""
    tokens = np.random.default_rng(1).integers(0, 8, (10, 6)).astype(np.int32)
    space = nas.space(Reverse(), tokens[:2])
    model = space.supernet()
    params = training.init_params(space, model, jax.random.key(0), tokens.shape[1:], jnp.int32)
    arch = space.largest()[None]
    task = tasks.resolve(loss=sequence_loss, metric=token_accuracy, higher_is_better=True)
    found = evaluation.evaluate_population(space, model, params, arch, tokens[:4], tokens, tokens[:, ::-1],
                                           mesh=sharding.make_mesh(), batch_size=4, task=task)
    network, variables = evaluation.extract(space, params, arch[0], tokens[:4], model=model)
    outputs = jnp.asarray(retrain.logits(network, variables, tokens))
    assert found["metric"][0] == pytest.approx(float(token_accuracy(outputs, tokens[:, ::-1])), abs=1e-6)
    assert found["loss"][0] == pytest.approx(float(sequence_loss(outputs, tokens[:, ::-1])), rel=1e-4)
    assert set(found) == {"metric", "loss"}
