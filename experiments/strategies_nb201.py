"""Search strategies compared on the NAS-Bench-201 table (no training: fitness is looked up).

Every strategy gets `cifar10-val` as fitness for `budgets` queries and `seeds` seeds; what it
would return (its best by validation) is judged on `cifar10-test`. results.json also counts, for
every pair of strategies, the seeds on which the two made identical query sequences. The strategies' defaults were
chosen on this table by validation accuracy only, on seeds from 100 on; the reported seeds are 0-19.

    python launch.py --config experiments/strategies_nb201.py --workdir DIR
    python launch.py --config experiments/strategies_nb201.py:runlocal --workdir DIR          # < 1 min
    python launch.py --config experiments/strategies_nb201.py:latency --workdir DIR           # + latency limit
    python launch.py --config experiments/strategies_nb201.py:prior --workdir DIR             # + zero-cost prior
    python launch.py --config experiments/strategies_nb201.py:runlocal,latency --workdir DIR
    python launch.py --config experiments/strategies_nb201.py --workdir DIR --config.first_seed=100 --config.seeds=40   # tuning seeds

Variants (comma-separated in `arg`):
  runlocal: 3 seeds, budgets 20 and 50, smaller surrogates - a smoke test.
  prior:    every strategy's initial and restart samples come best-scored by parameter count first
            (a zero-cost warm-up; no extra queries, but information a plain search does not have).
  latency:  only architectures with Pixel 3 latency <= 10 ms (46% of the space) may be proposed;
            results.json also holds the Pareto front of (cifar10-val, latency) per strategy.

Writes DIR/results.json, DIR/metrics.jsonl and DIR/best_so_far.png (and DIR/pareto.png).
Paths in the config are relative to the repository root.
"""

import ml_collections

from experiments import common

STRATEGIES = ("random", "evolution", "bayesian", "reinforce", "autoencoder", "local")
VARIANTS = ("runlocal", "latency", "prior")


def get_config(arg=None):
    variants = common.variants(arg, VARIANTS, "strategies_nb201")

    config = ml_collections.ConfigDict()
    config.job = "strategies_nb201"
    config.space = ml_collections.ConfigDict({"name": "nas_bench_201", "options": {}})
    config.table = "strategies/benchmarks/nas_bench_201_12epoch.csv"
    config.fitness_column = "cifar10-val"
    config.report_column = "cifar10-test"
    config.strategies = STRATEGIES
    config.budgets = (100, 300)
    config.seeds = 20
    config.first_seed = 0  # seeds first_seed .. first_seed + seeds - 1; the defaults were tuned from 100 on
    config.batch_size = 1
    # Per-strategy options for strategies.get; empty = the strategy's defaults.
    config.strategy_options = ml_collections.ConfigDict({name: {} for name in STRATEGIES})
    # Latency limit: off while latency_table is "".
    config.latency_table = ""
    config.latency_column = "pixel3"
    config.latency_limit = 10.0
    # Zero-cost prior for every strategy: "" (none), "params" or "flops" (the space's analytic counts).
    config.prior = ""
    config.progress = True

    if "runlocal" in variants:
        config.seeds = 3
        config.budgets = (20, 50)
        config.strategy_options.bayesian = {"capacity": 64, "gp_size": 64, "num_random": 64}
        config.strategy_options.autoencoder = {"capacity": 64, "train_steps": 5}
    if "prior" in variants:
        config.prior = "params"
    if "latency" in variants:
        config.latency_table = "strategies/benchmarks/nas_bench_201_latency_ms.csv"
    return config
