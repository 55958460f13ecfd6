"""Datasets that need no download, behind a small registry.

    from supernet import data
    ds = data.get("digits", seed=0)          # -> Dataset
    ds.train.x, ds.train.y                   # float32 [n, *input_shape], int32 [n]
    for x, y in data.epoch_batches(ds.train, 64, seed=0, epoch=3): ...

Every dataset has three splits. `val` is always carved out of the original training data
(deterministically from `seed`), never from test: search uses `val`, final numbers use `test`.
Inputs are channels-last and standardised per channel (last axis) with the statistics of the
`train` split; the same statistics are applied to `val` and `test` and kept on the Dataset as
`mean` / `std`.

Registered names:
  digits     scikit-learn's bundled 8x8 digits (1,797 images), shape (8, 8, 1).
  mnist1d    MNIST-1D generated offline by the `mnist1d` package (4,000 train / 1,000 test),
             shape (40, 1). Generation takes a few seconds; it is cached per process. Options
             `num_samples` / `train_split` draw a larger dataset from the same generator;
             `extra_val` adds that many validation examples from another stream of it.
  synthetic  random inputs with learnable labels (argmax of a fixed random linear map).
  cifar10    CIFAR-10 read from a local `cifar-10-batches-py` directory (option `data_dir`).
"""

from __future__ import annotations

import dataclasses
import functools
import os
import pickle
import random
import warnings
from typing import Callable, Iterator

import numpy as np

from strategies.registry import Registry

__all__ = ["Split", "Dataset", "get", "names", "register", "options", "from_arrays", "from_splits", "check_split",
           "check_inputs", "check_labels",
           "iterate", "epoch_batches"]


# --------------------------------------------------------------------------- containers


@dataclasses.dataclass(frozen=True, eq=False)
class Split:
    """One split: `x` float32 [n, *input_shape] (int32 for token ids), `y` int32 [n] class labels (or
    a task's targets as given: float32 or int32 [n, ...])."""

    x: np.ndarray
    y: np.ndarray

    def __len__(self) -> int:
        return int(self.y.shape[0])


SPLITS = ("train", "val", "test")


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
    """A dataset with `train` / `val` / `test` splits and the train statistics used to scale it.
    `num_classes`: the labels' classes; for value targets, the values per example (the output
    width a built-in space's head gets). Integer inputs (token ids) are kept as they are: mean 0,
    std 1."""

    name: str
    num_classes: int
    input_shape: tuple
    train: Split
    val: Split
    test: Split
    mean: np.ndarray  # per-channel train mean (before standardisation), float32 [C]
    std: np.ndarray  # per-channel train std (before standardisation), float32 [C]

    @property
    def has_class_labels(self) -> bool:
        """Whether the targets are integers (class labels); real values are for regression."""
        return bool(np.issubdtype(self.train.y.dtype, np.integer))

    def split(self, name: str) -> Split:
        """The split called `name` (train, val or test)."""
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; valid splits are {', '.join(SPLITS)}.")
        return getattr(self, name)


# --------------------------------------------------------------------------- registry

DATASETS = Registry("dataset")


def register(name: str):
    """Decorator: register `builder(seed, **options) -> Dataset` under `name`.

    The builder's keyword-only parameters (with defaults) are the dataset's options.
    """
    return DATASETS.register(name)


def names() -> tuple[str, ...]:
    """The registered dataset names, sorted."""
    return DATASETS.names()


def options(name: str) -> dict:
    """The named dataset's options and their defaults."""
    return DATASETS.defaults(name)


def get(name: str, seed: int = 0, **options) -> Dataset:
    """Build dataset `name`; `seed` fixes the train/val carve (and synthetic data).

    Unknown names raise ValueError listing the registered ones; unknown options raise
    TypeError listing the dataset's valid options.
    """
    seed = _check_seed(seed, "seed")
    dataset = DATASETS.build(name, seed, **options)
    if not isinstance(dataset, Dataset):
        raise TypeError(f"dataset {name!r}: its builder returned a {type(dataset).__name__}, not a supernet.data.Dataset; "
                        f"a builder takes (seed, **options) and returns one (docs/contributing.md).")
    return dataset


# --------------------------------------------------------------------------- helpers


def _check_seed(seed, what: str) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"{what} must be a non-negative integer, got {seed!r}.")
    return int(seed)


def _check_fraction(value, what: str, allow_zero: bool) -> float:
    lo = "0 <=" if allow_zero else "0 <"
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a number with {lo} {what} < 1, got {value!r}.") from None
    if not ((0.0 <= f if allow_zero else 0.0 < f) and f < 1.0):
        raise ValueError(f"{what} must satisfy {lo} {what} < 1, got {value!r}.")
    return f


def _check_count(value, what: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{what} must be an integer >= {minimum}, got {value!r}.")
    return int(value)


def _carve(n: int, fraction: float, rng: np.random.Generator, what: str, source: str):
    """Random disjoint index sets (kept, carved) with len(carved) = round(n * fraction).

    Both index sets are sorted, so each split keeps the original order of the examples.
    """
    k = int(round(n * fraction))
    if n - k < 1:
        raise ValueError(
            f"{what}={fraction} leaves no {source} examples out of {n}; use a smaller {what}."
        )
    perm = rng.permutation(n)
    return np.sort(perm[k:]), np.sort(perm[:k])


def _finish(name, num_classes, x_train, y_train, x_val, y_val, x_test, y_test) -> Dataset:
    """Standardise with train per-channel stats (last axis) and pack the Dataset. Integer inputs
    (token ids, indices) are left as they are; labels become int32, other targets keep their kind."""
    axes = tuple(range(x_train.ndim - 1))
    tokens = np.issubdtype(np.asarray(x_train).dtype, np.integer)
    mean = np.zeros(x_train.shape[-1]) if tokens else x_train.mean(axis=axes, dtype=np.float64)
    std = np.ones(x_train.shape[-1]) if tokens else x_train.std(axis=axes, dtype=np.float64)
    std = np.where(std > 1e-8, std, 1.0)  # a constant channel is only centred

    def scale(x):
        if tokens:
            return np.ascontiguousarray(x, dtype=np.int32)
        x = np.asarray(x, dtype=np.float32)
        x = (x - mean.astype(np.float32)) / std.astype(np.float32)
        return np.ascontiguousarray(x, dtype=np.float32)

    def targets(y):
        y = np.asarray(y)
        return np.ascontiguousarray(y, dtype=np.int32 if np.issubdtype(y.dtype, np.integer) else np.float32)

    def split(x, y):
        return Split(x=scale(x), y=targets(y))

    return Dataset(
        name=name,
        num_classes=int(num_classes),
        input_shape=tuple(int(d) for d in x_train.shape[1:]),
        train=split(x_train, y_train),
        val=split(x_val, y_val),
        test=split(x_test, y_test),
        mean=mean.astype(np.float32),
        std=std.astype(np.float32),
    )


def _carve_val(name, num_classes, x, y, x_test, y_test, val_fraction, seed) -> Dataset:
    val_fraction = _check_fraction(val_fraction, "val_fraction", allow_zero=True)
    tr, va = _carve(len(y), val_fraction, np.random.default_rng(seed), "val_fraction", "train")
    return _finish(name, num_classes, x[tr], y[tr], x[va], y[va], x_test, y_test)


# --------------------------------------------------------------------------- datasets

# The digits test split is fixed (independent of `seed`) so test numbers are comparable
# across seeds; only the train/val carve follows `seed`.
_DIGITS_TEST_SEED = 12345


@register("digits")
def _digits(seed: int, *, val_fraction: float = 0.2, test_fraction: float = 0.2) -> Dataset:
    from sklearn.datasets import load_digits

    test_fraction = _check_fraction(test_fraction, "test_fraction", allow_zero=False)
    raw = load_digits()
    x = raw.images.astype(np.float32).reshape(-1, 8, 8, 1)  # pixel values 0..16
    y = raw.target.astype(np.int32)
    rest, test = _carve(
        len(y), test_fraction, np.random.default_rng(_DIGITS_TEST_SEED), "test_fraction", "train"
    )
    return _carve_val("digits", 10, x[rest], y[rest], x[test], y[test], val_fraction, seed)


@functools.lru_cache(maxsize=2)
def _mnist1d_raw(num_samples: int = 5000, train_split: float = 0.8, generator_seed: int = 42, noise: float = 1.0):
    """MNIST-1D arrays generated offline by the author's procedure (deterministic, cached per
    process). The defaults give the official 4,000 / 1,000 dataset (~5 s); a larger
    `num_samples` draws more examples from the same generator (how the ground-truth tables get
    a test split large enough to tell architectures apart). `generator_seed` 42 is the official
    stream; another seed draws other examples of the same distribution. `noise` multiplies the
    generator's correlated and i.i.d. noise scales (1: the official task; more: a harder one).

    `make_dataset` reseeds Python's and numpy's global RNGs; their states are restored afterwards
    so importing the data does not perturb other code.
    """
    try:
        from mnist1d.data import get_dataset_args, make_dataset  # never get_dataset: it downloads
    except ModuleNotFoundError as err:
        if err.name != "mnist1d.data":
            raise
        raise ModuleNotFoundError(
            "the mnist1d package is shadowed by a module named mnist1d on sys.path (a script run by path "
            "from experiments/ puts experiments/mnist1d.py first): run it as a module from the repository "
            "root, e.g. `python -m experiments.own_transformer`.") from err

    py_state, np_state = random.getstate(), np.random.get_state()
    try:
        args = get_dataset_args()
        args.num_samples, args.train_split, args.seed = num_samples, train_split, generator_seed
        args.corr_noise_scale *= noise
        args.iid_noise_scale *= noise
        d = make_dataset(args)
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
    out = (
        np.asarray(d["x"], dtype=np.float32),
        np.asarray(d["y"], dtype=np.int32),
        np.asarray(d["x_test"], dtype=np.float32),
        np.asarray(d["y_test"], dtype=np.int32),
    )
    for a in out:
        a.setflags(write=False)
    return out


@register("mnist1d")
def _mnist1d(seed: int, *, val_fraction: float = 0.2, num_samples: int = 5000, train_split: float = 0.8,
             extra_val: int = 0, noise: float = 1.0) -> Dataset:
    """`extra_val` > 0 appends that many examples to `val`, drawn from the generator's stream 43
    (the official data is stream 42), so the training split stays exactly the same: a larger
    validation set for scoring architectures without touching what the networks train on.
    `noise` > 1 scales up the generator's noise: a harder, less saturated variant of the task."""
    num_samples = _check_count(num_samples, "num_samples", 20)
    train_split = _check_fraction(train_split, "train_split", allow_zero=False)
    if not float(noise) > 0:
        raise ValueError(f"mnist1d noise must be > 0 (1: the official task), got {noise}.")
    x, y, x_test, y_test = _mnist1d_raw(num_samples, train_split, noise=float(noise))
    dataset = _carve_val("mnist1d", 10, x[..., None], y, x_test[..., None], y_test, val_fraction, seed)
    if _check_count(extra_val, "extra_val", 0):
        extra_x, extra_y, _, _ = _mnist1d_raw(extra_val, 1.0, 43, noise=float(noise))
        extra_x = (extra_x[:extra_val, :, None] - dataset.mean) / dataset.std  # the train statistics
        val = Split(np.concatenate([dataset.val.x, extra_x.astype(np.float32)]),
                    np.concatenate([dataset.val.y, extra_y[:extra_val]]))
        dataset = dataclasses.replace(dataset, val=val)
    return dataset


SINE_LENGTH = 64


def noisy_sines(n: int, seed: int, noise: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """A regression task, generated: x float32[n, 64, 1], noisy sines of random amplitude (0.5-1.5),
    phase and frequency; y float32[n], the frequency (uniform on 1-6 cycles per window) minus 3.5,
    over 5 / sqrt(12) (the generator's own mean and spread: predicting the mean scores an MSE near 1)."""
    rng = np.random.default_rng(seed)
    freq = rng.uniform(1.0, 6.0, n)
    amplitude = rng.uniform(0.5, 1.5, n)
    phase = rng.uniform(0.0, 2 * np.pi, n)
    t = np.arange(SINE_LENGTH) / SINE_LENGTH
    x = amplitude[:, None] * np.sin(2 * np.pi * freq[:, None] * t + phase[:, None])
    x = x + noise * rng.standard_normal(x.shape)
    return x[..., None].astype(np.float32), ((freq - 3.5) / (5 / np.sqrt(12))).astype(np.float32)


@register("sines")
def _sines(seed: int, *, num_samples: int = 4000, noise: float = 0.3, generator_seed: int = 0,
           val_fraction: float = 0.2, test_fraction: float = 0.2) -> Dataset:
    """Regression (`noisy_sines`): regress a noisy sine's frequency, with a value loss such as
    `task.loss="mse"`. The examples come from `generator_seed`; `seed` carves the splits."""
    if not float(noise) >= 0:
        raise ValueError(f"sines noise must be >= 0, got {noise}.")
    x, y = noisy_sines(_check_count(num_samples, "num_samples", 10), _check_seed(generator_seed, "generator_seed"),
                       float(noise))
    return from_arrays(x, y, seed=seed, val_fraction=val_fraction, test_fraction=test_fraction, name="sines",
                       labels=False)


@register("synthetic")
def _synthetic(
    seed: int,
    *,
    input_shape: tuple = (32, 32, 3),
    num_classes: int = 10,
    num_train: int = 512,
    num_val: int = 128,
    num_test: int = 128,
) -> Dataset:
    try:
        shape = tuple(input_shape)
    except TypeError:
        shape = (input_shape,)
    if not shape or any(
        isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 1 for d in shape
    ):
        raise ValueError(
            f"input_shape must be a non-empty tuple of positive ints (channels last), "
            f"got {input_shape!r}."
        )
    num_classes = _check_count(num_classes, "num_classes", 2)
    num_train = _check_count(num_train, "num_train", 1)
    num_val = _check_count(num_val, "num_val", 0)
    num_test = _check_count(num_test, "num_test", 1)

    rng = np.random.default_rng(seed)
    n = num_train + num_val + num_test
    dim = int(np.prod(shape))
    x = rng.standard_normal((n, dim), dtype=np.float32)
    w = rng.standard_normal((dim, num_classes), dtype=np.float32)
    y = np.argmax(x @ w, axis=1).astype(np.int32)  # learnable: a linear classifier is exact
    x = x.reshape(n, *shape)
    a, b = num_train, num_train + num_val
    return _finish("synthetic", num_classes, x[:a], y[:a], x[a:b], y[a:b], x[b:], y[b:])


CIFAR10_TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_TEST_FILE = "test_batch"


def _cifar_expected() -> str:
    return (
        "a directory holding the standard CIFAR-10 python-pickle batches "
        f"{', '.join(CIFAR10_TRAIN_FILES)} and {CIFAR10_TEST_FILE} "
        "(the contents of `cifar-10-batches-py` from cifar-10-python.tar.gz)"
    )


def _read_cifar_batch(path: str):
    with open(path, "rb") as f:
        d = pickle.load(f, encoding="bytes")
    if not isinstance(d, dict) or b"data" not in d or b"labels" not in d:
        raise ValueError(
            f"{path} is not a CIFAR-10 python batch: expected a pickled dict with keys "
            "b'data' and b'labels'."
        )
    data = np.asarray(d[b"data"], dtype=np.uint8)
    labels = np.asarray(d[b"labels"], dtype=np.int32)
    if data.ndim != 2 or data.shape[1] != 3072 or data.shape[0] != labels.shape[0]:
        raise ValueError(
            f"{path}: expected b'data' uint8 [n, 3072] and n labels, got data "
            f"{data.shape} and {labels.shape[0]} labels."
        )
    # channel-major rows (1024 R, 1024 G, 1024 B, each row-major 32x32) -> NHWC
    x = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return x, labels


@register("cifar10")
def _cifar10(
    seed: int, *, data_dir: str | None = None, val_fraction: float = 0.1, max_train: int | None = None
) -> Dataset:
    if data_dir is None:
        raise ValueError(f"cifar10 needs option data_dir: {_cifar_expected()}.")
    data_dir = os.fspath(data_dir)
    if not os.path.isdir(data_dir):
        raise ValueError(f"cifar10 data_dir {data_dir!r} is not a directory; expected {_cifar_expected()}.")
    missing = [
        f for f in CIFAR10_TRAIN_FILES + (CIFAR10_TEST_FILE,)
        if not os.path.isfile(os.path.join(data_dir, f))
    ]
    if missing:
        raise ValueError(
            f"cifar10 data_dir {data_dir!r} lacks {', '.join(missing)}; expected {_cifar_expected()}."
        )
    if max_train is not None:
        max_train = _check_count(max_train, "max_train", 1)

    xs, ys = [], []
    for f in CIFAR10_TRAIN_FILES:
        x, y = _read_cifar_batch(os.path.join(data_dir, f))
        xs.append(x)
        ys.append(y)
    x, y = np.concatenate(xs), np.concatenate(ys)
    if max_train is not None:
        x, y = x[:max_train], y[:max_train]
    x_test, y_test = _read_cifar_batch(os.path.join(data_dir, CIFAR10_TEST_FILE))
    for labels, where in ((y, "training"), (y_test, "test")):
        if labels.size and (labels.min() < 0 or labels.max() > 9):
            raise ValueError(f"cifar10 {where} labels must lie in 0..9, found {labels.min()}..{labels.max()}.")
    x = x.astype(np.float32) / 255.0
    x_test = x_test.astype(np.float32) / 255.0
    return _carve_val("cifar10", 10, x, y, x_test, y_test, val_fraction, seed)


# --------------------------------------------------------------------------- arrays a user brings


# Beyond this many robust deviations (after the library's own scaling) a value is treated as a
# data error: one such value dominates a channel's statistics and the network learns nothing.
ABSURD_SCALE = 1e6


def _as_labels(y, what: str) -> np.ndarray:
    y = np.asarray(y)
    fix = "map them to 0..K-1 with `classes, y = np.unique(y, return_inverse=True)`"
    if not (np.issubdtype(y.dtype, np.number) or y.dtype == bool):
        raise ValueError(f"{what}: labels must be integer class indices, got {y.dtype} values such as "
                         f"{y.ravel()[:3].tolist()}; {fix}.")
    if y.ndim != 1:
        raise ValueError(f"{what}: labels must be integer class indices of shape [n], got shape {y.shape}.")
    if not np.all(np.isfinite(y)) or not np.all(y == np.round(y)):
        raise ValueError(f"{what}: labels must be integer class indices, got non-integer values such as "
                         f"{y[~np.isfinite(y) | (y != np.round(y))][:3].tolist()}; {fix}, or, to regress "
                         f"values, pass loss=\"mse\" (AutoModel).")
    return y.astype(np.int32)


def _as_targets(y, what: str) -> np.ndarray:
    """A task's targets as given (values or token ids), checked numeric and finite; float32 or int32."""
    y = np.asarray(y)
    if not (np.issubdtype(y.dtype, np.number) or y.dtype == bool) or y.ndim < 1:
        raise ValueError(f"{what}: targets must be numbers of shape [n, ...], got {y.dtype} of shape {y.shape}.")
    bad = ~np.isfinite(y.reshape(len(y), -1)).all(axis=1)
    if bad.any():
        raise ValueError(f"{what}: the targets of rows {_brief(np.flatnonzero(bad))} are NaN or inf; drop or "
                         "impute those rows before searching.")
    return y.astype(np.int32 if np.issubdtype(y.dtype, np.integer) or y.dtype == bool else np.float32)


def _inputs(x) -> np.ndarray:
    """Inputs as float32, or int32 when they are integers (token ids are not scaled)."""
    x = np.asarray(x)
    return x.astype(np.int32) if np.issubdtype(x.dtype, np.integer) else x.astype(np.float32)


def check_labels(train_y: np.ndarray, others: dict, what: str) -> None:
    """Training labels must be the consecutive integers 0..K-1, and every label of another split
    (`{"val": y, "test": y}`) must occur in training."""
    present = np.unique(train_y)
    if len(present) < 2:
        raise ValueError(f"{what}: the training labels hold one class ({present[0]}); a classifier needs at least "
                         "two. Pass data with examples of every class, or targets to regress with loss=\"mse\".")
    if present[0] != 0 or present[-1] != len(present) - 1:
        raise ValueError(f"{what}: training labels must be the consecutive integers 0..K-1, got {len(present)} "
                         f"distinct labels from {present[0]} to {present[-1]} ({_brief(present)}); remap them with "
                         "`classes, y = np.unique(y, return_inverse=True)`.")
    for split, y in others.items():
        unseen = np.setdiff1d(np.unique(y), present)
        if len(unseen):
            raise ValueError(f"{what}: the {split} split has labels never seen in training ({_brief(unseen)}); "
                             f"training holds 0..{present[-1]}: fix those labels or move such examples into training.")


def _brief(values: np.ndarray) -> str:
    shown = ", ".join(str(v) for v in values[:6])
    return shown + (", ..." if len(values) > 6 else "")


def check_inputs(name: str, splits: dict) -> None:
    """Errors for inputs that would train silently wrong: non-finite values, and values so far
    from the training data's typical scale (ABSURD_SCALE robust deviations) that standardising
    cannot help; warnings for images that look channels-first or hold integers (read as token ids,
    unscaled). `splits`: {split name: x}."""
    for split, x in splits.items():
        bad = ~np.isfinite(x)
        if bad.any():
            rows = np.flatnonzero(bad.reshape(len(x), -1).any(axis=1))
            raise ValueError(f"{name}: the {split} inputs hold {int(bad.sum())} non-finite values (NaN or inf) in "
                             f"rows {_brief(rows)}; drop or impute those rows before searching.")
    train = splits["train"]
    q1, q25, centre, q75, q99 = np.percentile(train, [1, 25, 50, 75, 99])
    typical = max(q75 - q25, (q99 - q1) / 10, 1e-12)  # robust: a few extreme values do not move it
    for split, x in splits.items():
        deviation = np.abs(x - centre) / typical
        if deviation.max() > ABSURD_SCALE:
            worst = int(np.argmax(deviation))
            row, value = worst // (x.size // len(x)), x.flat[worst]
            raise ValueError(f"{name}: the {split} inputs hold {value:.3g} (row {row}), over {ABSURD_SCALE:.0e} times "
                             f"the training data's typical spread ({typical:.3g}); fix or clip it (e.g. np.clip) "
                             "before searching.")
    if np.issubdtype(train.dtype, np.integer) and train.ndim >= 4:
        warnings.warn(f"{name}: integer inputs of shape {train.shape[1:]} are read as token ids and not scaled; if "
                      f"they are images, pass x.astype(np.float32) (then standardised).", stacklevel=3)
    if train.ndim == 4 and train.shape[1] in (1, 3, 4) and train.shape[-1] > 4:
        warnings.warn(f"{name}: inputs of shape {train.shape[1:]} look channels-first; the library reads the last "
                      f"axis as channels ({train.shape[-1]} here). If they are, pass np.moveaxis(x, 1, -1).",
                      stacklevel=3)


def from_arrays(x, y, *, seed: int = 0, val_fraction: float = 0.2, test_fraction: float = 0.2,
                num_classes: int | None = None, name: str = "arrays", labels: bool = True) -> Dataset:
    """A Dataset from numpy inputs `x` [n, *input_shape] (channels last; a flat [n, d] is a 1-D
    signal with d channels; integers such as token ids are kept unscaled) and integer labels `y`
    [n] (`labels=False`: any finite targets [n, ...], e.g. values to regress; no class checks).
    Test and validation splits are carved off at random, reproducibly from `seed` (test first,
    then validation from the rest)."""
    x = _inputs(x)
    y = _as_labels(y, name) if labels else _as_targets(y, name)
    if x.ndim < 2:
        raise ValueError(f"{name}: x of shape {x.shape} has no feature axis; x must be [n, ...] with one row per "
                         "example (one feature each: pass x[:, None]).")
    if len(x) != len(y):
        raise ValueError(f"{name}: x must be [n, ...] with one row per label; got x {x.shape} and {len(y)} labels.")
    test_fraction = _check_fraction(test_fraction, "test_fraction", allow_zero=False)
    check_inputs(name, {"train": x})
    if labels:
        check_labels(y, {}, name)
    rng = np.random.default_rng(_check_seed(seed, "seed"))
    rest, test = _carve(len(y), test_fraction, rng, "test_fraction", "training")
    classes = int(num_classes or (y.max() + 1 if labels else np.prod(y.shape[1:])))
    return _carve_val(name, classes, x[rest], y[rest], x[test], y[test], val_fraction, seed)


def from_splits(train, val, test, *, num_classes: int | None = None, name: str = "arrays",
                labels: bool = True) -> Dataset:
    """A Dataset from `(x, y)` pairs for train, val and test, standardised like the others
    (`labels=False`: targets as given, as in `from_arrays`)."""
    as_y = _as_labels if labels else _as_targets
    (xt, yt), (xv, yv), (xs, ys) = ((_inputs(x), as_y(y, f"{name} {split}"))
                                    for (x, y), split in zip((train, val, test), SPLITS))
    for x, y, split in ((xt, yt, "train"), (xv, yv, "val"), (xs, ys, "test")):
        if len(x) != len(y) or x.shape[1:] != xt.shape[1:]:
            raise ValueError(f"{name}: the {split} split has x {x.shape} and {len(y)} labels; every split needs "
                             f"one label per row and inputs of shape {xt.shape[1:]}.")
    check_inputs(name, {"train": xt, "val": xv, "test": xs})
    if labels:
        check_labels(yt, {"val": yv, "test": ys}, name)
    classes = int(num_classes or (yt.max() + 1 if labels else np.prod(yt.shape[1:])))
    return _finish(name, classes, xt, yt, xv, yv, xs, ys)


def check_split(split: Split, *, batch_size: int | None = None, input_shape=None, num_classes: int | None = None,
                what: str = "train split", rebuild: bool = True) -> None:
    """Errors, before any compilation, for data that would train silently wrong or crash later:
    a batch larger than the split, inputs of another shape than the network was built for, labels
    outside 0..num_classes-1. `rebuild`: an input shape error may suggest building the space anew."""
    if batch_size is not None and batch_size > len(split):
        raise ValueError(f"batch size {batch_size} is larger than the {what} ({len(split)} examples); "
                         f"use a batch size <= {len(split)} (AutoModel: supernet={{'batch_size': ...}} and "
                         f"retrain={{'batch_size': ...}}; launch.py: supernet.batch_size, retrain.batch_size) or "
                         f"more data.")
    if input_shape is not None and tuple(split.x.shape[1:]) != tuple(input_shape):
        shape = tuple(split.x.shape[1:])
        rebuilt = (f" or build the space for them (input_shape={shape}; a nas.space: trace it on x[:2] of these "
                   f"inputs)" if rebuild else "")
        raise ValueError(f"the {what}'s inputs have shape {shape} per example, but the space was built for "
                         f"{tuple(input_shape)} (channels last); reshape the inputs to "
                         f"[n, {', '.join(map(str, input_shape))}]{rebuilt}.")
    if num_classes is not None and len(split) and (split.y.min() < 0 or split.y.max() >= num_classes):
        raise ValueError(f"the {what}'s labels lie in {split.y.min()}..{split.y.max()}, but the network has "
                         f"{num_classes} classes (labels 0..{num_classes - 1}); build the space with "
                         f"num_classes={int(split.y.max()) + 1} or fix the labels.")


# --------------------------------------------------------------------------- batching


def iterate(
    split: Split, batch_size: int, rng: np.random.Generator
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """One shuffled epoch of `(x, y)` batches of exactly `batch_size` (the remainder is dropped).

    Arguments are checked when called, not when the first batch is drawn.
    """
    n = len(split)
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
    if batch_size > n:
        raise ValueError(
            f"batch_size {batch_size} is larger than the split ({n} examples); "
            f"use batch_size <= {n}."
        )
    if not isinstance(rng, np.random.Generator):
        raise TypeError(
            f"rng must be a numpy.random.Generator (np.random.default_rng(seed)), got "
            f"{type(rng).__name__}; use epoch_batches(split, batch_size, seed, epoch) for a seed."
        )
    perm = rng.permutation(n)
    batch_size = int(batch_size)

    def gen():
        for i in range(n // batch_size):
            idx = perm[i * batch_size : (i + 1) * batch_size]
            yield split.x[idx], split.y[idx]

    return gen()


def epoch_batches(
    split: Split, batch_size: int, seed: int, epoch: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Like `iterate`, with the shuffle fixed by (seed, epoch): a resumed run sees the same batches."""
    seed = _check_seed(seed, "seed")
    epoch = _check_seed(epoch, "epoch")
    return iterate(split, batch_size, np.random.default_rng([seed, epoch]))
