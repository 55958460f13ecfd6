"""What a search optimises: a loss to train with, a metric to rank and report with.

    from supernet import task
    classify = task.CLASSIFICATION                     # cross-entropy, accuracy (the default)
    regress = task.resolve(loss="mse")                 # MSE loss, MSE metric (lower is better)
    custom = task.resolve(loss=my_loss, metric=my_metric, higher_is_better=True)

`loss(outputs, targets)` and `metric(outputs, targets)` are JAX functions of a whole batch that
return a scalar mean; the loss is differentiated, both are jitted. The supernet's training, the
search's fitness (the metric, negated when lower is better), the retrained winner, the ensemble
and the reported test number all use the same task.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax


def cross_entropy(outputs: jax.Array, targets: jax.Array) -> jax.Array:
    """Mean softmax cross-entropy of logits [..., K] against integer labels [...]."""
    return optax.softmax_cross_entropy_with_integer_labels(outputs, targets).mean()


def accuracy(outputs: jax.Array, targets: jax.Array) -> jax.Array:
    """Share of examples whose largest logit is the label."""
    return (outputs.argmax(-1) == targets).mean()


def _like_targets(outputs: jax.Array, targets: jax.Array) -> jax.Array:
    """Outputs reshaped to the targets' shape when they hold as many values per example (a
    network's [n, 1] against targets [n]); otherwise unchanged, so a mismatch fails loudly."""
    if outputs.shape != targets.shape and outputs.size == targets.size:
        return outputs.reshape(targets.shape)
    return outputs


def mse(outputs: jax.Array, targets: jax.Array) -> jax.Array:
    """Mean squared error."""
    return jnp.mean((_like_targets(outputs, targets) - targets) ** 2)


def mae(outputs: jax.Array, targets: jax.Array) -> jax.Array:
    """Mean absolute error."""
    return jnp.mean(jnp.abs(_like_targets(outputs, targets) - targets))


# name -> (function, higher is better as a metric)
NAMED = {"cross_entropy": (cross_entropy, False), "accuracy": (accuracy, True), "mse": (mse, False),
         "mae": (mae, False)}
LOSSES = ("cross_entropy", "mse", "mae")   # accuracy has no gradient


@dataclasses.dataclass(frozen=True)
class Task:
    """A loss and a metric, with their names.

    labels: the targets are class indices 0..K-1 (the data checks them and infers K, predictions
        are the argmax, ensembles may vote); False: targets are used as given (values, token ids).
    """
    loss: Callable
    metric: Callable
    loss_name: str
    metric_name: str
    higher_is_better: bool
    labels: bool

    def fitness(self, values):
        """Higher-is-better form of metric values (what a search maximises)."""
        return values if self.higher_is_better else -values

    def fitness_name(self, measured: str = "supernet validation") -> str:
        """What `fitness` of the `measured` metric is called, e.g. "supernet validation mse, negated"."""
        return f"{measured} {self.metric_name}" + ("" if self.higher_is_better else ", negated")

    def describe(self) -> dict:
        """The task's loss, metric and direction by name (for results.json)."""
        return {"loss": self.loss_name, "metric": self.metric_name, "higher_is_better": self.higher_is_better}

    def check_outputs(self, output_shape: tuple, targets, num_classes: int | None = None) -> None:
        """Raises a one-line ValueError, before any training, when a network whose examples give
        outputs of `output_shape` cannot be scored against `targets` [n, ...]: logits that are not
        one per class, or a loss or metric that fails on those shapes."""
        output_shape, target_shape = tuple(output_shape), tuple(np.shape(targets)[1:])
        if self.labels and num_classes is not None and output_shape[-1:] != (num_classes,):
            raise ValueError(f"the network returns outputs of shape {output_shape} per example, but the data has "
                             f"{num_classes} classes; end it with nn.Dense({num_classes}), or pass loss=... for "
                             f"another task.")
        outputs = jax.ShapeDtypeStruct((2, *output_shape), jnp.float32)
        target = jax.ShapeDtypeStruct((2, *target_shape), np.asarray(targets).dtype)
        for what, name, function in (("loss", self.loss_name, self.loss), ("metric", self.metric_name, self.metric)):
            try:
                jax.eval_shape(function, outputs, target)
            except Exception as err:   # noqa: BLE001 - any failure of the user's function is the finding
                first = str(err).strip().splitlines()[0] if str(err).strip() else ""
                raise ValueError(f"the {what} {name!r} fails on outputs of shape {output_shape} per example against "
                                 f"targets of shape {target_shape} ({type(err).__name__}: {first}); make the "
                                 f"network's outputs fit the targets.") from None


CLASSIFICATION = Task(cross_entropy, accuracy, "cross_entropy", "accuracy", True, True)


def _named(value, what: str, valid) -> tuple[Callable, str, bool | None]:
    """(function, name, higher_is_better or None) for a name of `valid` or a callable."""
    if isinstance(value, str):
        if value not in valid:
            raise ValueError(f"unknown {what} {value!r}; valid names: {', '.join(valid)}, or pass a function "
                             f"{what}(outputs, targets) -> scalar.")
        function, higher = NAMED[value]
        return function, value, higher
    if callable(value):
        name = getattr(value, "__name__", what)
        return value, what if name == "<lambda>" else name, None
    raise TypeError(f"{what} must be a name ({', '.join(valid)}) or a function {what}(outputs, targets) -> scalar, "
                    f"got {type(value).__name__}.")


def resolve(loss=None, metric=None, higher_is_better: bool | None = None) -> Task:
    """The task for `AutoModel(loss=, metric=, higher_is_better=)`.

    Args:
        loss: a name ("cross_entropy", "mse", "mae") or a function (outputs, targets) -> scalar mean;
            None: cross-entropy.
        metric: a name ("accuracy", "cross_entropy", "mse", "mae") or a function (outputs, targets)
            -> scalar; None: accuracy with the cross-entropy loss, else the loss itself.
        higher_is_better: whether a larger metric is better; needed for a metric function, checked
            against a named metric.
    Returns:
        a `Task`; `CLASSIFICATION` when nothing is given.
    Raises:
        ValueError naming the fix for an unknown name, a metric function without
        `higher_is_better`, a `higher_is_better` that contradicts a named metric, or a value metric
        with the classification loss.
    """
    if higher_is_better is not None and not isinstance(higher_is_better, bool):
        raise ValueError(f"higher_is_better must be True or False, got {higher_is_better!r}.")
    loss_fn, loss_name, _ = _named("cross_entropy" if loss is None else loss, "loss", LOSSES)
    if metric is None:
        metric = "accuracy" if loss_name == "cross_entropy" else loss
    metric_fn, metric_name, higher = _named(metric, "metric", tuple(NAMED))
    if higher is None and higher_is_better is None:
        raise ValueError(f"metric {metric_name!r} is a function, so whether higher is better cannot be inferred; "
                         f"pass higher_is_better=True (e.g. accuracy, R^2) or False (e.g. an error).")
    if higher is not None and higher_is_better is not None and higher != higher_is_better:
        raise ValueError(f"metric {metric_name!r} is better when {'higher' if higher else 'lower'}, but "
                         f"higher_is_better={higher_is_better}; pass higher_is_better={higher} or omit it.")
    if loss_name == "cross_entropy" and metric_name in ("mse", "mae"):
        raise ValueError(f"metric {metric_name!r} compares values, but the loss is cross-entropy over class labels; "
                         f"pass loss={metric_name!r} to regress values.")
    labels = loss is None or loss == "cross_entropy"   # a function of the user's may take any targets
    return Task(loss_fn, metric_fn, loss_name, metric_name, higher if higher is not None else higher_is_better,
                labels)
