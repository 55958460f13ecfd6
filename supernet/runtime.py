"""What every long-running call shares: the `Runtime` it runs in, and its recipes' checks.

`Runtime` holds the mesh, the work directory (metrics log and checkpoints), progress bars and the
entry point's hints; training, retraining, evaluation and the one-shot pipeline take one instead
of threading each of them.

Library code raises `InvalidSetting` with messages that name a recipe field ("steps must be a
positive int, got 0") and nothing about where the value came from; an entry point (a job run by
launch.py, or AutoModel) catches it and adds its own hint (a config key, an argument name) from
`error.field`.
"""

from __future__ import annotations

import dataclasses
import functools
import numbers
import threading
from typing import Any, Iterable, Mapping

from jax.sharding import Mesh

from strategies.registry import closest
from supernet import checkpoint, records, sharding


@dataclasses.dataclass(frozen=True, eq=False)
class Runtime:
    """Where a long-running call runs, where it writes, and how it reports.

    Args:
      mesh: the devices to shard batches over (None: every device, across processes, `sharding.make_mesh()`).
      workdir: where `metrics.jsonl` and `checkpoints/<stage>` go, and what a rerun resumes from;
        None writes and resumes nothing.
      progress: show progress bars.
      hints: what the user should change when a stage's loss turns NaN/inf, in the entry point's
        own words (a config key for launch.py, an argument for AutoModel), by the start of the
        stage's name ("supernet", "few_shot", "retrain", ...; the longest that fits). A stage
        without one gets the neutral "Lower the learning rate of that stage."
    """

    mesh: Mesh | None = None
    workdir: str | None = None
    progress: bool = True
    hints: Mapping[str, str] = dataclasses.field(default_factory=dict)
    _checkpoints: dict = dataclasses.field(default_factory=dict, init=False, repr=False)  # by stage

    def __post_init__(self):
        if self.mesh is None:
            object.__setattr__(self, "mesh", sharding.make_mesh())

    @functools.cached_property
    def log(self) -> records.MetricsLog | None:
        """The work directory's metrics log (one per runtime), or None without a workdir."""
        return records.MetricsLog(self.workdir) if self.workdir else None

    def checkpoints(self, stage: str) -> checkpoint.Checkpoints | None:
        """The checkpoints of `stage` under the workdir (one object per stage), or None without one."""
        if not self.workdir:
            return None
        if stage not in self._checkpoints:
            self._checkpoints[stage] = checkpoint.Checkpoints(checkpoint.stage_dir(self.workdir, stage))
        return self._checkpoints[stage]

    def hint(self, stage: str) -> str:
        """What to change when `stage` diverges (see `hints`)."""
        fits = [prefix for prefix in self.hints if stage.startswith(prefix)]
        return self.hints[max(fits, key=len)] if fits else ""


_INTERRUPTED = threading.Event()


def interrupt_handler(signum, frame) -> None:
    """launch.py's Ctrl-C (SIGINT) handler: raises KeyboardInterrupt as Python's own does, and also
    records the interrupt for `raise_pending_interrupt`, because a KeyboardInterrupt raised while
    JAX runs Python code of its own (a garbage-collection callback, a C++ dispatch path) can be
    swallowed there (jax-ml/jax#18246): a run then trained on as if nothing had happened."""
    del signum, frame
    _INTERRUPTED.set()
    raise KeyboardInterrupt


def raise_pending_interrupt() -> None:
    """Raise KeyboardInterrupt if `interrupt_handler` recorded one; the long loops call this once
    per step. Without the handler installed (the library used from your own code) it never raises."""
    if _INTERRUPTED.is_set():
        _INTERRUPTED.clear()
        raise KeyboardInterrupt


class InvalidSetting(ValueError):
    """A recipe field that cannot take its value. `field` is the field's name (for a caller's hint)."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def check_int(field: str, value, minimum: int = 1) -> None:
    """Raise `InvalidSetting` unless `value` is an int (not a bool) of at least `minimum`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        kind = "a positive int" if minimum == 1 else f"an int >= {minimum}"
        raise InvalidSetting(field, f"{field} must be {kind}, got {value!r}.")


def check_real(field: str, value, *, low: float = 0.0, high: float = float("inf"), low_open: bool = True,
               high_open: bool = True) -> None:
    """Raise `InvalidSetting` unless `value` is a real number in the interval from `low` to `high`
    (each end open or closed as asked)."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    ok = ok and (value > low if low_open else value >= low) and (value < high if high_open else value <= high)
    if not ok:
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        raise InvalidSetting(field, f"{field} must be a number in {interval}, got {value!r}.")


def check_choice(field: str, value, choices: Iterable[str]) -> None:
    """Raise `InvalidSetting` unless `value` is one of `choices` (naming the closest one)."""
    choices = tuple(choices)
    if value not in choices:
        raise InvalidSetting(field, f"{field} must be one of {', '.join(map(repr, choices))}, got {value!r}"
                                    f"{closest(value, choices)}.")


def check_bool(field: str, value) -> None:
    """Raise `InvalidSetting` unless `value` is True or False."""
    if not isinstance(value, bool):
        raise InvalidSetting(field, f"{field} must be True or False, got {value!r}.")


def recipe_from_section(recipe_type, section, *, read_elsewhere: Iterable[str] = ()) -> Any:
    """A recipe dataclass built from a config section (a ConfigDict or a dict), strictly.

    Args:
      recipe_type: the recipe's dataclass.
      section: its values; every key must be one of the recipe's fields or in `read_elsewhere`.
      read_elsewhere: keys of the section that the caller reads itself (not the recipe's).

    Returns:
      `recipe_type(**fields)`. Raises `InvalidSetting` (field: the key) for an unknown key, naming
      the closest valid one, and whatever the recipe's own checks raise.
    """
    section = section.to_dict() if hasattr(section, "to_dict") else dict(section)
    names = [f.name for f in dataclasses.fields(recipe_type)]
    valid = names + list(read_elsewhere)
    for key in section:
        if key not in valid:
            raise InvalidSetting(key, f"{key} is not a setting of {recipe_type.__name__}{closest(key, valid)}; "
                                      f"valid: {', '.join(sorted(valid))}.")
    return recipe_type(**{k: v for k, v in section.items() if k in names})
