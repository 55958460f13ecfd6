"""Per-host data: each process gets its share of every global batch, and the shares add up."""

import numpy as np
import pytest

from supernet import data, sharding, training


def test_two_processes_split_each_global_batch_disjointly():
    n = 96
    split = data.Split(x=np.arange(n, dtype=np.float32)[:, None], y=np.arange(n, dtype=np.int32))
    single = training.step_batches(split, 32, seed=3, start_step=0)
    shares = [training.step_batches(split, 32, seed=3, start_step=0) for _ in range(2)]
    for _ in range(5):  # crosses an epoch boundary
        global_x, global_y = next(single)
        parts = [sharding.host_share(next(batches)[1], p, 2) for p, batches in enumerate(shares)]
        assert len(parts[0]) == len(parts[1]) == 16
        assert not set(parts[0]) & set(parts[1])
        np.testing.assert_array_equal(np.concatenate(parts), global_y)


def test_uneven_global_batch_is_an_error():
    with pytest.raises(ValueError, match="does not split evenly over 4 processes"):
        sharding.host_share(np.zeros(10), 0, 4)
