"""Few-shot supernets (Zhao et al., "Few-shot Neural Architecture Search", ICML 2021).

Weight sharing makes operations on the same edge co-adapt: one set of weights must serve every
choice around it. A few-shot supernet splits the one-shot supernet on one or more decisions into
one sub-supernet per combination of their options (5 on one NAS-Bench-201 edge, 25 on two), each
warm-started from the trained one-shot weights and trained further only on its own
architectures. Evaluation routes every architecture to its sub-supernet. All sub-supernets share
the module and the parameter structure, so one compiled step and one compiled evaluation serve
all of them (the architecture stays traced data; evaluation compiles once per padded group size).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from supernet import data, evaluation, training
from supernet.runtime import Runtime


@dataclasses.dataclass(frozen=True)
class Partition:
    """Which decisions to split on; `space.num_choices` of them multiply into the sub-supernets."""
    decisions: tuple[int, ...]

    def sizes(self, space) -> tuple[int, ...]:
        """The number of options of each split decision (a clear error for a decision not in `space`)."""
        for d in self.decisions:
            if not 0 <= d < space.num_decisions:
                raise ValueError(f"few-shot split decision {d} is not a decision of {space.name} "
                                 f"(0..{space.num_decisions - 1}).")
        return tuple(space.num_choices[d] for d in self.decisions)

    def count(self, space) -> int:
        """How many sub-supernets the split makes."""
        return int(np.prod(self.sizes(space)))

    def index(self, space, archs) -> np.ndarray:
        """int[n]: the sub-supernet each architecture (int32[n, D]) belongs to."""
        archs = space.validate(archs).reshape(-1, space.num_decisions)
        return np.ravel_multi_index(tuple(archs[:, d] for d in self.decisions), self.sizes(space))

    def options(self, space, sub: int) -> tuple[int, ...]:
        """The options the split decisions take in sub-supernet `sub`."""
        return tuple(int(o) for o in np.unravel_index(sub, self.sizes(space)))

    def sampler(self, space, sub: int, distinct: bool = False):
        """`sampler(key) -> int32[1, D]`: uniform architectures of sub-supernet `sub` only; with
        `distinct`, uniform over the distinct functions among them (`training.distinct_functions`)."""
        if distinct:
            own = dict(zip(self.decisions, self.options(space, sub)))
            return training.uniform_over(training.distinct_functions(space, own))
        fixed = jnp.asarray(self.options(space, sub), jnp.int32)
        columns = jnp.asarray(self.decisions, jnp.int32)
        return lambda key: space.sample(key, 1).at[:, columns].set(fixed)


@dataclasses.dataclass(frozen=True)
class SubSupernets:
    """Trained sub-supernets: `params[i]` serves the architectures that `partition` routes to i."""
    partition: Partition
    params: list

    def of(self, space, arch):
        """The weights that serve `arch`."""
        return self.params[int(self.partition.index(space, arch)[0])]


def train_sub_supernets(space, model, one_shot_params, train: data.Split, partition: Partition, *, steps: int,
                        batch_size: int, optimizer, key: jax.Array, runtime: Runtime, checkpoint_every: int = 0,
                        distinct: bool = False) -> list:
    """Params of every sub-supernet: each starts from `one_shot_params` and trains `steps` steps on
    its own architectures (uniform, or uniform over their distinct functions with `distinct`),
    resuming from `workdir/checkpoints/few_shot_{i}` when the `runtime` has a workdir."""
    subs = []
    for sub in range(partition.count(space)):
        state = training.train_supernet(space, model, train, steps=steps, batch_size=batch_size, optimizer=optimizer,
                                        key=jax.random.fold_in(key, sub), runtime=runtime,
                                        checkpoint_every=checkpoint_every,
                                        path_sampler=partition.sampler(space, sub, distinct), params=one_shot_params,
                                        stage=f"few_shot_{sub}", desc=f"few-shot {sub}")
        subs.append(state.params)
    return subs


def evaluate_routed(space, model, sub_params: list, partition: Partition, archs, calib_x, x, y, *, mesh: Mesh,
                        **options) -> dict:
    """`evaluation.evaluate_population` with each architecture routed to its own sub-supernet:
    `sub_params[i]` scores the architectures `partition` assigns to i. Same inputs and output
    ({"accuracy": float[n], "loss": float[n]}) as `evaluation.evaluate_population`."""
    archs = space.validate(archs).reshape(-1, space.num_decisions)
    owner = partition.index(space, archs)
    groups = [np.flatnonzero(owner == sub) for sub in range(partition.count(space))]
    out = {"accuracy": np.full(len(archs), np.nan), "loss": np.full(len(archs), np.nan)}
    for sub, rows in enumerate(groups):
        if not len(rows):
            continue
        # Groups padded to a power of two (repeating their first architecture): the compiled
        # evaluation of each size is shared by every sub-supernet and every later call.
        size = 1 << (len(rows) - 1).bit_length()
        padded = np.concatenate([rows, np.full(size - len(rows), rows[0])])
        scores = evaluation.evaluate_population(space, model, sub_params[sub], archs[padded], calib_x, x, y,
                                                mesh=mesh, **options)
        for name in out:
            out[name][rows] = scores[name][:len(rows)]
    return out
