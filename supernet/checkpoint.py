"""Checkpoints of a stage's state: numbered steps in one directory, written by orbax's
`CheckpointManager` (atomic: a step appears only once fully written; the latest `keep` are kept;
every host takes part on a pod and orbax writes from the primary one).

Each step holds the state and a small JSON record of its leaves' paths, shapes, dtypes and a
SHA-256 of their bytes. Orbax does not notice every corruption (4 KB of garbage in a data file
loaded silently in our test), so a restore recomputes the digest: a step that is unreadable,
truncated or missing a file, or whose bytes do not match the digest, is reported as corrupt, naming
its directory; process 0 moves it to `<dir>.corrupt/` and the previous step is tried. Any other error
(permissions, memory, an interrupt, a bug) propagates unchanged and nothing is moved. A step whose shapes or dtypes differ from the run's state is not corrupt but another
run's: that is an error, never a silent load.

Non-finite guard: `save` refuses parameters with NaN or inf (`NonFiniteError`), so a diverged
run never overwrites a good checkpoint with a bad one.
"""

from __future__ import annotations

import hashlib
import math
import os
import shutil
import warnings

import jax
import numpy as np
import orbax.checkpoint as ocp

KEEP = 3  # steps kept per stage: the latest, and older ones to fall back on if it is corrupt


class NonFiniteError(FloatingPointError):
    """A loss or parameter became NaN/inf; names the stage, the step and what to change."""

    def __init__(self, what: str, stage: str, step: int, hint: str = "", last_good: int | None = None):
        kept = f"the last good checkpoint (step {last_good}) is kept" if last_good is not None else \
            "no checkpoint was written"
        super().__init__(f"non-finite {what} at step {step} of stage {stage!r}; {kept}. "
                         f"{hint or 'Lower the learning rate of that stage.'}")
        self.stage, self.step = stage, step


# How to go on after a run cannot continue where it is, for a launch.py user and an AutoModel user alike.
START_AGAIN = ("start again in a new work directory, or restart the run there "
               "(launch.py --restart; AutoModel(..., restart=True))")


class CorruptCheckpointError(ValueError):
    """A checkpoint's contents do not match the digest written with it."""


# What reading a damaged checkpoint raises: a digest mismatch, unreadable or truncated data (orbax and
# tensorstore report those as ValueError, JSON as JSONDecodeError, a ValueError), a missing file. Other
# errors (permissions, a full disk, an interrupt) are not corruption and propagate unchanged.
CORRUPTION = (CorruptCheckpointError, ValueError, KeyError, EOFError, UnicodeDecodeError, FileNotFoundError,
              NotADirectoryError, IsADirectoryError)


class CheckpointMismatchError(ValueError):
    """A checkpoint that reads fine but belongs to another model, optimiser or stage."""


def interval(steps: int, every: int = 0, at_least: int = 4) -> int:
    """Steps between checkpoints: at most `every` (0: no cap) and at least `at_least` checkpoints
    per stage, so a short run (runlocal) is checkpointed too."""
    spread = max(1, math.ceil(steps / at_least))
    return min(every, spread) if every else spread


def all_finite(tree) -> bool:
    """True when every floating leaf of `tree` is free of NaN and inf."""
    leaves = [np.asarray(x) for x in jax.tree.leaves(jax.device_get(tree))]
    return all(np.isfinite(x).all() for x in leaves if np.issubdtype(x.dtype, np.floating))


def describe(tree) -> list[str]:
    """'path: dtype[shape]' for every leaf, in flattening order."""
    flat, _ = jax.tree_util.tree_flatten_with_path(tree)
    return [f"{jax.tree_util.keystr(p)}: {np.dtype(x.dtype).name}{list(np.shape(x))}" for p, x in flat]


def digest(tree) -> str:
    """SHA-256 of every leaf's bytes (host copies; the arrays of this project are replicated)."""
    h = hashlib.sha256()
    for leaf in jax.tree.leaves(jax.device_get(tree)):
        h.update(np.ascontiguousarray(np.asarray(leaf)).tobytes())
    return h.hexdigest()


class Checkpoints:
    """Numbered checkpoints of one stage in `directory` (one orbax step per saved training step)."""

    def __init__(self, directory: str, keep: int = KEEP):
        self.directory = os.path.abspath(directory)
        os.makedirs(self.directory, exist_ok=True)
        # Synchronous: on the CPU the states here save in ~0.1 s, and a step that is reported
        # saved is then on disk (the kill-anywhere test relies on it).
        options = ocp.CheckpointManagerOptions(max_to_keep=keep, enable_async_checkpointing=False,
                                               cleanup_tmp_directories=True)
        self.manager = ocp.CheckpointManager(self.directory, options=options)

    def steps(self) -> list[int]:
        """The saved steps on disk now, oldest first."""
        self.manager.reload()  # what is on disk now (steps set aside as corrupt are gone)
        return sorted(self.manager.all_steps())

    def latest_step(self) -> int | None:
        """The newest saved step, or None when none is saved."""
        steps = self.steps()
        return steps[-1] if steps else None

    def save(self, step: int, tree, *, stage: str, hint: str = "", check_finite: bool = True) -> None:
        """Writes `tree` as `step`; refuses (NonFiniteError) when a float leaf is NaN/inf."""
        tree = jax.device_get(tree)
        if check_finite and not all_finite(tree):
            raise NonFiniteError("parameters", stage, step, hint, self.latest_step())
        record = {"leaves": describe(tree), "sha256": digest(tree)}
        self.manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(tree),
                                                        record=ocp.args.JsonSave(record)), force=True)
        self.manager.wait_until_finished()

    def restore_latest(self, target):
        """(step, state) of the newest readable step, or (None, None) when there is none.

        `target`: the run's state (arrays or ShapeDtypeStructs), or `step -> target` when its
        shapes depend on the step. Corrupt steps are reported, set aside and skipped; a step of
        another shape raises CheckpointMismatchError."""
        for step in reversed(self.steps()):
            expected = target(step) if callable(target) else target
            try:
                return step, self._restore(step, expected)
            except CheckpointMismatchError:
                raise
            except CORRUPTION as err:
                self._set_aside(step, err)
        return None, None

    def _restore(self, step: int, expected):
        folder = os.path.join(self.directory, str(step))
        record = self.manager.restore(step, args=ocp.args.Composite(record=ocp.args.JsonRestore()))["record"]
        wanted = describe(expected)
        if record["leaves"] != wanted:
            diff = next((f"{a} vs {b}" for a, b in zip(record["leaves"], wanted) if a != b),
                        f"{len(record['leaves'])} leaves vs {len(wanted)}")
            raise CheckpointMismatchError(
                f"checkpoint {folder} does not match this run's state (saved vs expected: {diff}); "
                f"it was written by another model or settings: {START_AGAIN}.")
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, jax.device_get(expected))
        state = self.manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract)))["state"]
        state = jax.tree.unflatten(jax.tree.structure(expected), jax.tree.leaves(state))
        if digest(state) != record["sha256"]:
            raise CorruptCheckpointError("its contents do not match the digest written with it")
        return state

    def _set_aside(self, step: int, err: Exception) -> None:
        """Process 0 moves a corrupt step to `<stage>.corrupt/`; the others only skip it."""
        folder = os.path.join(self.directory, str(step))
        aside = os.path.join(self.directory + ".corrupt", str(step))
        if jax.process_index() != 0:
            return
        warnings.warn(f"checkpoint {folder} is corrupt ({type(err).__name__}: {str(err)[:200]}); "
                      f"moved to {aside}, falling back to the previous checkpoint.", stacklevel=3)
        shutil.rmtree(aside, ignore_errors=True)
        os.makedirs(os.path.dirname(aside), exist_ok=True)
        shutil.move(folder, aside)
        self.manager.reload()


def stage_dir(workdir: str, stage: str) -> str:
    """Where a stage's checkpoints live: `workdir/checkpoints/<stage>`."""
    return os.path.join(workdir, "checkpoints", stage.replace("/", "_"))
