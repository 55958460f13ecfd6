"""The search-space contract: `Space` = the decisions (`strategies.space.Decisions`) plus the
networks they describe.

A concrete space (NAS-Bench-201, MobileNet, a user's chain) subclasses `Space` and must define
every method in `Space.REQUIRED`; a subclass that lacks one fails when the class is defined, with
a message naming the method and what it must do. The rest of the code calls nothing else.
"""

from __future__ import annotations

import numpy as np

from strategies.distribution import derive
from strategies.space import Decisions


class Space(Decisions):
    """Decisions plus networks. Methods every concrete space defines (see `REQUIRED`):

    supernet(mixed=False, head=True, stem=True): the weight-sharing Flax module; it takes the
        architecture as a traced int32[D] array or float32[D, K] weights (one-hot or mixed).
    standalone(arch): a plain Flax network for one architecture.
    extract_variables(variables, arch): supernet variables -> that network's variables.
    params(arch), flops(arch): analytic counts of the standalone network.
    largest(), smallest(): the architectures with the most / fewest weights (sandwich rule).
    parameter_free(arch): bool[D], which chosen options have no weights (DARTS collapse signal).
    """

    REQUIRED = {
        "supernet": "build the weight-sharing Flax module",
        "standalone": "build a plain Flax network for one architecture",
        "extract_variables": "map supernet variables to the standalone network's",
        "params": "count the standalone network's parameters",
        "flops": "count the standalone network's forward FLOPs per example",
        "largest": "return the architecture with the most weights",
        "smallest": "return the architecture with the fewest weights",
        "parameter_free": "say per decision whether the chosen option has no weights",
    }

    def __init_subclass__(cls, abstract: bool = False, **kwargs):
        super().__init_subclass__(**kwargs)
        if abstract:
            return
        missing = [name for name in cls.REQUIRED if getattr(cls, name) is getattr(Space, name)]
        if missing:
            raise TypeError(f"search space {cls.__name__} lacks {', '.join(missing)}: in a Space, "
                            + "; ".join(f"{name}(...) must {cls.REQUIRED[name]}" for name in missing)
                            + " (see supernet.spaces.base.Space).")

    def supernet(self, mixed: bool = False, **options):
        """The weight-sharing Flax module (see the class docstring)."""
        raise NotImplementedError

    def body(self, **options):
        """The supernet without its head: features for a user's own model (`supernet(head=False)`)."""
        return self.supernet(head=False, **options)

    def standalone(self, arch):
        """A plain Flax network for one architecture int[D]."""
        raise NotImplementedError

    def extract_variables(self, variables, arch):
        """Supernet variables (calibrated for `arch`) -> the standalone network's variables."""
        raise NotImplementedError

    def params(self, arch) -> int:
        """Parameters of the standalone network for `arch`."""
        raise NotImplementedError

    def flops(self, arch) -> int:
        """Forward FLOPs per example of the standalone network for `arch`."""
        raise NotImplementedError

    def largest(self) -> np.ndarray:
        """int32[D]: the architecture with the most weights."""
        raise NotImplementedError

    def smallest(self) -> np.ndarray:
        """int32[D]: the architecture with the fewest weights."""
        raise NotImplementedError

    def parameter_free(self, arch) -> np.ndarray:
        """bool[..., D]: whether each chosen option has no weights."""
        raise NotImplementedError

    def derive(self, weights) -> np.ndarray:
        """The discrete architecture from weights float[D, K] (e.g. a DARTS search's softmax):
        the heaviest option per decision, never one labelled `none`."""
        return derive(self, weights)
