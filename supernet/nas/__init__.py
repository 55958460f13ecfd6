"""Search a user's own Flax module: put `Choice`, `Conv`, `DepthwiseConv`, `Dense`, `Embed`, `LayerNorm`, `MultiHeadAttention`, `Repeat` and
`InputChoice` in an ordinary Linen module (`Value` and `derive` share one decision among several of them), and `space(module, example_input)` returns a `supernet.spaces.Space`."""

from supernet.nas.primitives import (Choice, Conv, Dense, DepthwiseConv, Embed, InputChoice, LayerNorm, MultiHeadAttention, Repeat, Value,
                                     derive)
from supernet.nas.check import CheckReport, check
from supernet.nas.space import NasSpace, NasSupernet, space, standalone_network

__all__ = ["CheckReport", "check", "Choice", "Conv", "Dense", "DepthwiseConv", "Embed", "InputChoice", "LayerNorm", "MultiHeadAttention", "Repeat", "Value", "derive", "NasSpace", "NasSupernet", "space", "standalone_network"]
