"""Search spaces: `spaces.get(name, **options)`; `Space` is the contract every space fulfils.

A new space is one module with a `Space` subclass plus one `SPACES.register` line here.
"""

from __future__ import annotations

from strategies.registry import Registry
from supernet.spaces.base import Space
from supernet.spaces.chain import ChainSpace
from supernet.spaces.cnn import cnn1d
from supernet.spaces.mobilenet import MobileNetSpace
from supernet.spaces.module import from_module
from supernet.spaces.nas_bench_201 import NasBench201Space

SPACES = Registry("search space")
SPACES.register("nas_bench_201", NasBench201Space)
SPACES.register("mobilenet", MobileNetSpace)
SPACES.register("chain", ChainSpace)
SPACES.register("cnn1d", cnn1d)
SPACES.register("nas", from_module)   # a module of yours: space.options.module="package.module:Class"


def names() -> tuple[str, ...]:
    """The registered space names, sorted."""
    return SPACES.names()


def get(name: str, **options) -> Space:
    """Builds the named space; an unknown name raises a ValueError listing the valid ones, an
    unknown option a TypeError listing the space's options."""
    return SPACES.build(name, **options)


__all__ = ["Space", "SPACES", "NasBench201Space", "MobileNetSpace", "ChainSpace", "get", "names"]
