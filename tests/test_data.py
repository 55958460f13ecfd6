"""Tests for supernet.data: shapes, standardisation, splits, determinism, errors, batching."""

import pickle
import random
import sys

import numpy as np
import pytest

from supernet import data

N_FAKE = 20  # images per fake CIFAR-10 batch file


def _write_cifar(directory, n=N_FAKE, skip=()):
    """Write a tiny CIFAR-10 directory in the exact python-pickle format; returns the arrays."""
    rng = np.random.default_rng(123)
    written = {}
    for i, fname in enumerate(data.CIFAR10_TRAIN_FILES + (data.CIFAR10_TEST_FILE,)):
        pixels = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, size=n)]
        written[fname] = (pixels, labels)
        if fname in skip:
            continue
        with open(directory / fname, "wb") as f:
            pickle.dump({b"batch_label": b"fake", b"labels": labels, b"data": pixels,
                         b"filenames": [b"x.png"] * n}, f)
    return written


@pytest.fixture
def cifar_dir(tmp_path):
    _write_cifar(tmp_path)
    return tmp_path


def _build(name, cifar_dir, seed=0):
    if name == "cifar10":
        return data.get(name, seed=seed, data_dir=str(cifar_dir))
    if name == "synthetic":
        return data.get(name, seed=seed, input_shape=(6, 5, 3), num_train=64, num_val=16,
                        num_test=16)
    return data.get(name, seed=seed)


# how many original training examples (train + val) each build above should hold
_TRAIN_TOTAL = {
    "digits": 1797 - round(1797 * 0.2),
    "mnist1d": 4000,
    "synthetic": 64 + 16,
    "cifar10": 5 * N_FAKE,
}
_TEST_TOTAL = {"digits": round(1797 * 0.2), "mnist1d": 1000, "synthetic": 16, "cifar10": N_FAKE}
_SHAPES = {"digits": (8, 8, 1), "mnist1d": (40, 1), "synthetic": (6, 5, 3), "cifar10": (32, 32, 3)}


def test_names():
    assert data.names() == ("cifar10", "digits", "mnist1d", "sines", "synthetic")


CLASSIFICATION = [name for name in data.names() if name != "sines"]


@pytest.mark.parametrize("name", CLASSIFICATION)
def test_dataset_contract(name, cifar_dir):
    ds = _build(name, cifar_dir)
    assert ds.name == name
    assert ds.num_classes == 10
    assert ds.input_shape == _SHAPES[name]
    for s in data.SPLITS:
        split = ds.split(s)
        assert split is getattr(ds, s)
        assert split.x.dtype == np.float32 and split.y.dtype == np.int32
        assert split.x.shape == (len(split), *ds.input_shape)
        assert split.y.shape == (len(split),)
        assert split.y.min() >= 0 and split.y.max() < ds.num_classes
        assert np.isfinite(split.x).all()
    assert len(ds.train) + len(ds.val) == _TRAIN_TOTAL[name]
    assert len(ds.test) == _TEST_TOTAL[name]
    assert len(ds.val) > 0
    # standardised per channel with the train split's statistics
    axes = tuple(range(ds.train.x.ndim - 1))
    channels = ds.input_shape[-1]
    np.testing.assert_allclose(ds.train.x.mean(axis=axes), np.zeros(channels), atol=1e-4)
    np.testing.assert_allclose(ds.train.x.std(axis=axes), np.ones(channels), atol=1e-3)
    assert ds.mean.shape == (channels,) and ds.std.shape == (channels,)


@pytest.mark.parametrize("name", data.names())
def test_determinism(name, cifar_dir):
    a, b, c = (_build(name, cifar_dir, seed) for seed in (0, 0, 1))
    for s in data.SPLITS:
        np.testing.assert_array_equal(a.split(s).x, b.split(s).x)
        np.testing.assert_array_equal(a.split(s).y, b.split(s).y)
    assert len(a.val) == len(c.val)
    assert not np.array_equal(a.val.x, c.val.x)


def test_sines_is_a_generated_regression():
    ds = data.get("sines", num_samples=500)
    assert ds.input_shape == (64, 1) and ds.num_classes == 1
    assert ds.train.y.dtype == np.float32 and len(ds.train) + len(ds.val) + len(ds.test) == 500
    assert abs(float(ds.train.y.mean())) < 0.2 and 0.8 < float(ds.train.y.std()) < 1.2   # standardised frequencies
    again, other = data.get("sines", seed=1, num_samples=500), data.get("sines", num_samples=500, generator_seed=1)
    everything = lambda d: np.sort(np.concatenate([d.train.y, d.val.y, d.test.y]))
    np.testing.assert_array_equal(everything(ds), everything(again))   # seed carves, the examples stay
    assert not np.array_equal(everything(ds), everything(other))
    with pytest.raises(ValueError, match="sines noise must be >= 0"):
        data.get("sines", noise=-1)


def test_val_is_carved_from_train_not_test():
    a, b = data.get("digits", seed=0), data.get("digits", seed=1)

    def raw_rows(ds, *splits):  # un-standardised digits are integers 0..16: compare exactly
        x = np.concatenate([ds.split(s).x for s in splits]) * ds.std + ds.mean
        return sorted(map(bytes, np.round(x).astype(np.int8).reshape(len(x), -1)))

    # the test split does not depend on the seed (only the standardising statistics do) ...
    assert raw_rows(a, "test") == raw_rows(b, "test")
    # ... and train + val is the same pool of examples for every seed
    assert raw_rows(a, "train", "val") == raw_rows(b, "train", "val")
    assert raw_rows(a, "val") != raw_rows(b, "val")


def test_digits_total_and_options():
    ds = data.get("digits", val_fraction=0.25, test_fraction=0.3)
    assert len(ds.train) + len(ds.val) + len(ds.test) == 1797
    assert len(ds.test) == round(1797 * 0.3)
    assert len(ds.val) == round((1797 - len(ds.test)) * 0.25)
    # un-standardised pixels are the original 0..16 integers
    raw = ds.train.x * ds.std + ds.mean
    np.testing.assert_allclose(raw, np.round(raw), atol=1e-4)
    assert raw.min() > -1e-4 and raw.max() < 16 + 1e-4


def test_mnist1d_counts_and_determinism():
    ds = data.get("mnist1d")
    assert len(ds.train) + len(ds.val) == 4000 and len(ds.test) == 1000
    assert len(ds.val) == 800 and ds.input_shape == (40, 1)
    # regenerate from scratch (not the per-process cache): identical arrays
    before = data._mnist1d_raw()
    py_state, np_state = random.getstate(), np.random.get_state()
    fresh = data._mnist1d_raw.__wrapped__()
    for u, v in zip(before, fresh):
        np.testing.assert_array_equal(u, v)
    # generation must not disturb the global random states
    assert random.getstate() == py_state
    assert np.random.get_state()[1].tolist() == np_state[1].tolist()


def test_synthetic_labels_learnable_and_options():
    ds = data.get("synthetic", seed=3, input_shape=(12,), num_classes=4, num_train=300,
                  num_val=0, num_test=50)
    assert ds.input_shape == (12,) and ds.num_classes == 4
    assert len(ds.train) == 300 and len(ds.val) == 0 and len(ds.test) == 50
    assert len(np.unique(ds.train.y)) == 4
    # a least-squares linear classifier fits the train labels far above chance
    x = np.c_[ds.train.x, np.ones(len(ds.train))]
    w, *_ = np.linalg.lstsq(x, np.eye(4)[ds.train.y], rcond=None)
    assert (np.argmax(x @ w, 1) == ds.train.y).mean() > 0.8


def test_cifar_layout_and_labels(tmp_path):
    written = _write_cifar(tmp_path)
    # a known pixel: image 7 of data_batch_2 at (row 5, col 9), channel green
    r, c, ch, img = 5, 9, 1, 7
    pixels, labels = written["data_batch_2"]
    pixels[img] = 0
    pixels[img, ch * 1024 + r * 32 + c] = 255
    with open(tmp_path / "data_batch_2", "wb") as f:
        pickle.dump({b"labels": labels, b"data": pixels}, f)

    ds = data.get("cifar10", data_dir=tmp_path, val_fraction=0.0)
    assert len(ds.train) == 5 * N_FAKE and len(ds.val) == 0
    # labels preserved in file order
    all_labels = sum((written[f][1] for f in data.CIFAR10_TRAIN_FILES), [])
    np.testing.assert_array_equal(ds.train.y, all_labels)
    np.testing.assert_array_equal(ds.test.y, written["test_batch"][1])
    # undo standardisation -> the [0, 1] image with a single bright pixel in the right place
    raw = ds.train.x[N_FAKE + img] * ds.std + ds.mean
    expected = np.zeros((32, 32, 3), np.float32)
    expected[r, c, ch] = 1.0
    np.testing.assert_allclose(raw, expected, atol=1e-5)
    # the full decode matches a straightforward reference for the test file
    tp = written["test_batch"][0].astype(np.float32) / 255.0
    ref = np.stack([[[[tp[n, k * 1024 + i * 32 + j] for k in range(3)] for j in range(32)]
                     for i in range(32)] for n in range(2)])
    np.testing.assert_allclose(ds.test.x[:2] * ds.std + ds.mean, ref, atol=1e-5)


def test_cifar_max_train(cifar_dir):
    ds = data.get("cifar10", data_dir=cifar_dir, max_train=30, val_fraction=0.2)
    assert len(ds.train) + len(ds.val) == 30 and len(ds.val) == 6


def test_errors(tmp_path):
    with pytest.raises(ValueError, match="cifar10, digits, mnist1d, sines, synthetic"):
        data.get("imagenet")
    with pytest.raises(TypeError, match="did you mean .val_fraction.*valid options: val_fraction, test_fraction"):
        data.get("digits", val_frac=0.1)
    with pytest.raises(ValueError, match="val_fraction"):
        data.get("digits", val_fraction=1.5)
    with pytest.raises(ValueError, match="test_fraction"):
        data.get("digits", test_fraction=0.0)
    with pytest.raises(ValueError, match="data_batch_1.*test_batch"):
        data.get("cifar10")
    with pytest.raises(ValueError, match="data_batch_1.*test_batch"):
        data.get("cifar10", data_dir=tmp_path / "nope")
    _write_cifar(tmp_path, n=2, skip=("data_batch_4", "test_batch"))
    with pytest.raises(ValueError, match="lacks data_batch_4, test_batch"):
        data.get("cifar10", data_dir=tmp_path)
    ds = data.get("synthetic", input_shape=(4,), num_train=10, num_val=2, num_test=2)
    with pytest.raises(ValueError, match=r"batch_size 11 .*10 examples"):
        data.iterate(ds.train, 11, np.random.default_rng(0))
    with pytest.raises(ValueError, match="batch_size 11"):
        data.epoch_batches(ds.train, 11, seed=0, epoch=0)
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        ds.split("dev")
    with pytest.raises(TypeError, match="Generator"):
        data.iterate(ds.train, 2, 0)


def test_iterate_and_epoch_batches():
    ds = data.get("synthetic", input_shape=(3,), num_train=50, num_val=0, num_test=1)
    batches = list(data.iterate(ds.train, 8, np.random.default_rng(0)))
    assert len(batches) == 50 // 8
    assert all(x.shape == (8, 3) and y.shape == (8,) for x, y in batches)
    seen = np.concatenate([x for x, _ in batches])
    # each example at most once per epoch, and the batch pairs (x, y) stay aligned
    assert len({bytes(r) for r in seen}) == len(seen)
    lookup = {bytes(r): int(t) for r, t in zip(ds.train.x, ds.train.y)}
    assert all(lookup[bytes(r)] == t for x, y in batches for r, t in zip(x, y))

    def run(seed, epoch):
        return [(x.copy(), y.copy()) for x, y in data.epoch_batches(ds.train, 8, seed, epoch)]

    a, b = run(1, 4), run(1, 4)
    assert all(np.array_equal(u[0], v[0]) and np.array_equal(u[1], v[1]) for u, v in zip(a, b))
    assert not np.array_equal(np.concatenate([x for x, _ in a]),
                              np.concatenate([x for x, _ in run(1, 5)]))
    assert not np.array_equal(np.concatenate([x for x, _ in a]),
                              np.concatenate([x for x, _ in run(2, 4)]))


def test_mnist1d_extra_val_adds_validation_only():
    """`extra_val` grows the validation split from another generator stream; train and the
    original validation rows stay exactly as they were, scaled by the same train statistics."""
    base = data.get("mnist1d", seed=0, num_samples=500, train_split=0.5, val_fraction=0.2)
    more = data.get("mnist1d", seed=0, num_samples=500, train_split=0.5, val_fraction=0.2, extra_val=100)
    assert len(more.val) == len(base.val) + 100 and len(more.train) == len(base.train)
    np.testing.assert_array_equal(more.train.x, base.train.x)
    np.testing.assert_array_equal(more.val.x[:len(base.val)], base.val.x)
    extra = more.val.x[len(base.val):]
    assert not any(np.any(np.all(np.isclose(row, base.train.x), axis=(1, 2))) for row in extra[:10])
    assert abs(float(extra.mean())) < 0.2 and 0.8 < float(extra.std()) < 1.2
    with pytest.raises(ValueError, match="extra_val"):
        data.get("mnist1d", seed=0, num_samples=500, extra_val=-1)


def test_a_shadowed_mnist1d_package_is_named_with_the_fix(tmp_path, monkeypatch):
    (tmp_path / "mnist1d.py").write_text("X = 1\n")   # what experiments/mnist1d.py is to a script run by path
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in [m for m in sys.modules if m == "mnist1d" or m.startswith("mnist1d.")]:
        monkeypatch.delitem(sys.modules, name)
    with pytest.raises(ModuleNotFoundError, match=r"shadowed.*python -m experiments\."):
        data._mnist1d_raw.__wrapped__(100, 0.8)


def test_a_dataset_builder_that_returns_no_dataset_is_named(monkeypatch):
    monkeypatch.setitem(data.DATASETS._entries, "returns_none", lambda seed, n=10: None)   # gone after the test
    with pytest.raises(TypeError, match=r"dataset 'returns_none': its builder returned a NoneType, not a "
                                        r"supernet.data.Dataset"):
        data.get("returns_none")
