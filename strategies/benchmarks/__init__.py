"""Benchmark objectives: lookup tables over architectures (NAS-Bench-201 accuracies and latencies,
and the project's generated ground truths), usable as a strategy's fitness with no training."""
