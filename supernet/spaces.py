"""The registry of search spaces: `spaces.get(name, **options)`."""

from __future__ import annotations

from supernet.chain import ChainSpace
from supernet.mobilenet import MobileNetSpace
from supernet.nas_bench_201 import NasBench201Space
from supernet.space import Space

SPACES = {
    "nas_bench_201": NasBench201Space,
    "mobilenet": MobileNetSpace,
    "chain": ChainSpace,
}


def names() -> tuple[str, ...]:
    return tuple(sorted(SPACES))


def get(name: str, **options) -> Space:
    """Builds the named space; an unknown name raises a ValueError listing the valid ones."""
    if name not in SPACES:
        raise ValueError(f"unknown search space {name!r}; valid spaces: {', '.join(names())}.")
    try:
        return SPACES[name](**options)
    except TypeError as err:
        raise TypeError(f"bad options for search space {name!r}: {err}") from None
