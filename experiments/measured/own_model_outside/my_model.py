"""The own-model example as a user writes it, in a file of their own outside the repository: run
with the installed package (`pip install .`), from a folder that holds only this file."""

import flax.linen as nn
import jax
import numpy as np

from supernet import AutoModel, data, nas


class MyPool(nn.Module):
    @nn.compact
    def __call__(self, x):
        return nn.avg_pool(x, (3, 3), padding="SAME")


class Block(nn.Module):
    @nn.compact
    def __call__(self, x, train=False):
        h = nas.Conv(features=(8, 16), kernel_size=(3, 5), name="conv")(x)   # width and kernel searched
        h = nn.relu(nn.BatchNorm(use_running_average=not train)(h))           # plain Flax BN
        return x + nas.Conv(features=x.shape[-1], kernel_size=3, name="proj")(h)


class Net(nn.Module):
    @nn.compact
    def __call__(self, x, train=False):
        x = stem = nn.Conv(16, (3, 3))(x)
        x = nas.Choice([nn.Conv(16, (3, 3)), nn.Conv(16, (1, 1)), MyPool()], name="op")(x)  # layer choice
        x = nas.Repeat(Block, depth=(1, 2, 3), name="stage")(x, train)                  # number of layers
        x = nas.InputChoice(n_chosen=1, name="skip")([stem, x])                          # connections
        return nn.Dense(10)(nn.relu(nas.Dense(features=(32, 64), name="fc")(x.mean((1, 2)))))


digits = data.get("digits")
x, y = digits.train.x, digits.train.y
space = nas.space(Net(), x[:2])
print(space.num_decisions, "decisions:", ", ".join(space.decision_names))
print(nas.check(space, x[:64], n_random=20))   # extraction to 1e-4, params exact, FLOPs near XLA's, on 22 archs
result = AutoModel(Net(), data="digits").search()
counted = sum(leaf.size for leaf in jax.tree_util.tree_leaves(result.variables["params"]))
print(repr(result))
print(f"test accuracy {result.best_accuracy:.4f}; params {result.params} counted {counted}")
