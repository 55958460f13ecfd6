"""Inputs checked at the door: every bad input a user can hand AutoModel or launch.py gets one
line naming the problem and the fix, before any training."""

import os
import subprocess
import sys
import warnings

import flax.linen as nn
import numpy as np
import pytest
from sklearn.datasets import load_digits

from supernet import AutoModel, nas, one_shot
from supernet.spaces.chain import OPERATIONS

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHOICES = {"block1": ["conv", "maxpool"], "block2": ["linear"]}
TINY = dict(supernet={"steps": 8}, search={"budget": 4, "population": 2}, retrain={"steps": 4}, progress=False)


@pytest.fixture(scope="module")
def digits():
    raw = load_digits()
    return raw.images[..., None].astype(np.float32), raw.target


@pytest.fixture
def no_training(monkeypatch):
    """Fails the test if the pipeline (supernet training onwards) is ever entered."""
    def refuse(*args, **kwargs):
        raise AssertionError("training started before the bad input was refused")
    monkeypatch.setattr(one_shot, "run_one_shot_nas", refuse)


def search(data, **options):
    return AutoModel(CHOICES, data=data, **{**TINY, **options}).search()


@pytest.mark.parametrize("damage,message", [
    ("nan", r"train inputs hold 1 non-finite values \(NaN or inf\) in rows 5; drop or impute"),
    ("inf", r"train inputs hold 1 non-finite values .* rows 5"),
    ("huge", r"train inputs hold 1e\+30 \(row 5\), over 1e\+06 times .*clip"),
])
def test_bad_input_values_are_refused(digits, no_training, damage, message):
    x, y = digits[0].copy(), digits[1]
    x[5, 1, 1, 0] = {"nan": np.nan, "inf": np.inf, "huge": 1e30}[damage]
    with pytest.raises(ValueError, match=message):
        search((x, y))


def test_a_huge_value_in_the_test_split_is_refused(digits, no_training):
    x, y = digits
    test_x = x[:100].copy()
    test_x[3, 0, 0, 0] = 1e12
    with pytest.raises(ValueError, match=r"test inputs hold 1e\+12 \(row 3\)"):
        search(((x[200:], y[200:]), (x[100:200], y[100:200]), (test_x, y[:100])))


def test_channels_first_images_warn_naming_the_transpose(digits, no_training):
    x, y = digits
    with pytest.warns(UserWarning, match=r"look channels-first.*np.moveaxis\(x, 1, -1\)"):
        with pytest.raises(AssertionError, match="training started"):  # a warning, not an error
            search((np.moveaxis(x, -1, 1), y))


def test_integer_images_warn_that_they_are_read_unscaled(digits, no_training):
    x, y = digits
    with pytest.warns(UserWarning, match=r"integer inputs of shape \(8, 8, 1\) are read as token ids and not "
                                         r"scaled; if they are images, pass x.astype\(np.float32\)"):
        with pytest.raises(AssertionError, match="training started"):  # a warning, not an error
            search((x.astype(np.uint8), y))


@pytest.mark.parametrize("labels,message", [
    ("gap", r"consecutive integers 0..K-1, got 10 distinct labels from 0 to 50 .*np.unique\(y, return_inverse=True\)"),
    ("strings", r"labels must be integer class indices, got <U\d+ values .*np.unique"),
    ("fractions", r"non-integer values such as \[0.5\]"),
    ("one class", r"the training labels hold one class \(0\); a classifier needs at least two.*loss=\"mse\""),
])
def test_bad_labels_are_refused(digits, no_training, labels, message):
    x, y = digits
    y = {"gap": np.where(y == 9, 50, y), "strings": y.astype(str),
         "fractions": np.where(np.arange(len(y)) == 0, 0.5, y), "one class": np.zeros_like(y)}[labels]
    with pytest.raises(ValueError, match=message):
        search((x, y))


def test_inputs_without_a_feature_axis_are_refused_naming_the_reshape(digits, no_training):
    x, y = digits
    with pytest.raises(ValueError, match=r"x of shape \(\d+,\) has no feature axis.*pass x\[:, None\]"):
        search((x[:, 0, 0, 0], y))


def test_a_validation_label_unseen_in_training_is_refused(digits, no_training):
    x, y = digits
    val_y = y[100:200].copy()
    val_y[0] = 12
    with pytest.raises(ValueError, match=r"the val split has labels never seen in training \(12\)"):
        search(((x[200:], y[200:]), (x[100:200], val_y), (x[:100], y[:100])))


@pytest.mark.parametrize("options,message", [
    ({"search": {"budget": "4"}}, r"SearchOptions.budget must be a positive int, got '4' \(str\); pass budget=4"),
    ({"search": {"budget": 4.7}}, r"SearchOptions.budget must be a positive int, got 4.7 \(float\); pass budget=5"),
    ({"search": {"budget": True}}, r"SearchOptions.budget must be a positive int, got True"),
    ({"supernet": {"steps": "60"}}, r"SupernetOptions.steps must be a positive int, got '60' \(str\); pass steps=60"),
    ({"supernet": {"learning_rate": -0.1}}, r"SupernetOptions.learning_rate must be a positive number, got -0.1"),
    ({"retrain": {"learning_rate": 0}}, r"RetrainOptions.learning_rate must be a positive number"),
    ({"supernet": {"weight_decay": -1e-4}}, r"SupernetOptions.weight_decay must be a number >= 0"),
    ({"supernet": {"sampling": "unifrom"}}, r"SupernetOptions.sampling='unifrom' is not valid \(did you mean 'uniform'\?\)"),
    ({"search": {"ensemble": "average", "ensemble_size": 10, "budget": 4}},
     r"ensemble_size=10 is larger than budget=4.*pass ensemble_size <= 4"),
    ({"search": {"max_params": -5}}, r"SearchOptions.max_params must be a positive number"),
    ({"search": {"budjet": 4}}, r"SearchOptions has no option 'budjet' \(did you mean 'budget'\?\)"),
    ({"seed": -1}, r"seed must be a non-negative int"),
])
def test_bad_options_are_refused_when_built(options, message):
    with pytest.raises(ValueError, match=message):
        AutoModel(CHOICES, **options)


def test_an_ensemble_larger_than_the_space_is_refused(digits, no_training):
    with pytest.raises(ValueError, match=r"ensemble_size=3 is larger than the 2 distinct architectures"):
        search(digits, search={"budget": 4, "population": 2, "ensemble": "average", "ensemble_size": 3})


def test_a_workdir_that_is_a_file_is_refused(tmp_path):
    file = tmp_path / "results"
    file.write_text("a user's file")
    with pytest.raises(ValueError, match=r"workdir .* is a file, not a directory"):
        AutoModel(CHOICES, workdir=str(file))
    assert file.read_text() == "a user's file"


def test_a_space_smaller_than_the_budget_is_searched_once_each(digits):
    x, y = digits
    with pytest.warns(UserWarning, match=r"the space holds 2 distinct architectures .* fewer than budget=4: each is "
                                         r"evaluated once"):
        found = search((x[:600], y[:600]))
    assert len(found.history["val_accuracy"]) == 2
    assert len({tuple(a) for a in found.history["archs"]}) == 2


def test_every_chain_operation_runs_through_automodel(digits):
    x, y = digits
    model = AutoModel({"op": list(OPERATIONS)}, data=(x[:600], y[:600]), supernet={"steps": 4, "batch_size": 16},
                      search={"budget": len(OPERATIONS), "population": 5}, retrain={"steps": 2, "batch_size": 16},
                      space_options={"channels": 4}, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # exactly one architecture per operation: evaluated once each
        found = model.search()
    assert {a[0] for a in found.history["archs"]} == set(range(len(OPERATIONS)))
    assert np.all(np.isfinite(found.history["val_accuracy"]))


def launch(*args):
    return subprocess.run([sys.executable, os.path.join(REPO, "launch.py"), *args], cwd=REPO, capture_output=True,
                          text=True, timeout=300, env={**os.environ, "JAX_PLATFORMS": "cpu"})


def test_launch_names_a_missing_config_file_in_one_line(tmp_path):
    run = launch("--config", "experiments/no_such_experiment.py:runlocal", "--workdir", str(tmp_path / "w"))
    assert run.returncode != 0 and "Traceback" not in run.stderr
    assert run.stderr.strip() == ("error: config file 'experiments/no_such_experiment.py' does not exist; "
                                  "pass --config experiments/<name>.py[:variant].")
    assert not (tmp_path / "w").exists()
    misspelt = launch("--config", "experiments/quickstrat.py", "--workdir", str(tmp_path / "w"))
    assert misspelt.stderr.strip() == ("error: config file 'experiments/quickstrat.py' does not exist (did you mean "
                                       "'experiments/quickstart.py'?); pass --config experiments/<name>.py[:variant].")


def test_launch_names_a_workdir_that_is_a_file_in_one_line(tmp_path):
    file = tmp_path / "notes.txt"
    file.write_text("keep me")
    run = launch("--config", "experiments/quickstart.py:runlocal", f"--workdir={file}")
    assert run.returncode != 0 and "Traceback" not in run.stderr
    assert "is a file, not a directory" in run.stderr and len(run.stderr.strip().splitlines()) == 1
    assert file.read_text() == "keep me"


class OwnNet(nn.Module):
    """A module of the user's: one searched width, `outputs` logits."""
    outputs: int = 10

    @nn.compact
    def __call__(self, x, train=False):
        x = nas.Conv(features=(4, 8), kernel_size=3, name="conv")(x)
        return nn.Dense(self.outputs)(x.mean((1, 2)))


@pytest.mark.parametrize("case,message", [
    ("traced_elsewhere", r"the nas space was traced on examples of shape \(16, 16, 3\), but the data's are \(8, 8, 1\); "
                         r"trace it on the data, nas.space\(module, x\[:2\]\)"),
    ("unbatched", r"traced on examples of shape \(8, 1\), but the data's are \(8, 8, 1\)"),
    ("five_logits", r"outputs of shape \(5,\) per example, but the data has 10 classes; end it with nn.Dense\(10\)"),
    ("mse_on_ten_outputs", r"the loss 'mse' fails on outputs of shape \(10,\) per example against targets of shape "
                           r"\(\)"),
    ("module_class", r"search_space is the class OwnNet; pass an instance, OwnNet\(\)"),
])
def test_a_module_that_does_not_fit_the_data_is_refused(digits, no_training, case, message):
    x, y = digits
    space = {"traced_elsewhere": lambda: nas.space(OwnNet(), np.zeros((2, 16, 16, 3), np.float32)),
             "unbatched": lambda: nas.space(OwnNet(), x[0]),
             "five_logits": lambda: OwnNet(outputs=5),
             "mse_on_ten_outputs": lambda: OwnNet(),
             "module_class": lambda: OwnNet}[case]()
    loss = {"mse_on_ten_outputs": "mse"}.get(case)
    with pytest.raises((ValueError, TypeError), match=message) as err:
        AutoModel(space, data=(x, y.astype(np.float32) if loss else y), loss=loss, **TINY).search()
    assert "\n" not in str(err.value)


def test_a_regression_dataset_with_the_classification_loss_names_the_fix(no_training):
    with pytest.raises(ValueError, match=r"dataset 'sines' has float32 targets, not class labels; to regress them "
                                         r"pass loss=\"mse\""):
        search("sines")


def test_the_chain_space_by_name_asks_for_its_decisions(digits, no_training):
    with pytest.raises(ValueError, match=r"the chain space is made of your decisions: pass them as a dict"):
        AutoModel("chain", data=digits, **TINY).search()
