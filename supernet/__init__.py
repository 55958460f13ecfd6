"""A JAX weight-sharing supernet for neural architecture search.

    from supernet import AutoModel
    best_architecture, best_accuracy = AutoModel({"block1": ["conv", "maxpool"], "block2": ["residual"]},
                                                 data="digits").search()

Everything underneath is usable on its own: `supernet.spaces`, `training`, `evaluation`,
`retrain`, `differentiable`, `one_shot`, `data`, `sharding`; samplers live in `strategies`.
"""

from supernet.version import __version__


def __getattr__(name):
    # Lazy: `import supernet` stays cheap, and `supernet.AutoModel` is there when asked for.
    if name in ("AutoModel", "SearchResult", "SupernetOptions", "SearchOptions", "RetrainOptions"):
        from supernet import api
        return getattr(api, name)
    raise AttributeError(f"module 'supernet' has no attribute {name!r}")
