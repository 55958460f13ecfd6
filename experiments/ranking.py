"""Ranking: how well do parameter count, FLOPs, training-free proxies (synflow, NASWOT, SNIP) and
the trained single-path supernet order NAS-Bench-201 cells the way training them from scratch does?

    python launch.py --config experiments/ranking.py --workdir runs/ranking
    python launch.py --config experiments/ranking.py:runlocal --workdir runs/ranking_local
    # another table, or a subset of rankers:
    python launch.py --config experiments/ranking.py --workdir runs/ranking \
        --config.ground_truth.table=runs/ground_truth/ground_truth.csv --config.rankers="('params','synflow')"

The ground truth is the table of `experiments/ground_truth.py` (NAS-Bench-201, C=8, one cell per
stage, trained standalone on MNIST-1D at twice the generator's noise; a relative path is looked up
in the current directory, then in the project root). The dataset and space sections are that
config's, with the same seed, so the supernet trains on the training split the table's networks
trained on and is scored on the same validation split. `results.json` holds, per ranker, Kendall
tau-b, Spearman rho, precision at the top 5% / 10%, the true rank and regret of its top-1 pick
(`supernet.ranking.report`), and the table's noise ceiling; `ranking_<ranker>.png` is each
ranker's scatter plot. A table is used only on the task it was made on (its .json file; the job
stops with the overrides otherwise): the official-task table
(strategies/benchmarks/ground_truth_nb201_mnist1d.csv) needs `--config.ground_truth.table=strategies/benchmarks/ground_truth_nb201_mnist1d.csv
--config.dataset.options.noise=1.0 --config.dataset.options.num_samples=20000
--config.dataset.options.train_split=0.25`.

Variant `cnn`: the CNN space ("cnn1d", `supernet/spaces/cnn.py`) against its held-out table
(strategies/benchmarks/ground_truth_cnn_mnist1d.csv, made with `experiments/ground_truth.py:cnn`;
no recipe was chosen on it), with the same recipe; its rankers leave out the few-shot ones (their
split is NAS-Bench-201's edge 0->1) and NASWOT (scored in a separate run; see `get_config`). Variant `automodel`: the supernet recipe `AutoModel` uses
(`supernet.api.SupernetOptions` defaults: uniform sampling, weight decay 5e-4, 1,200 steps of 64
examples), for comparison; `--config.supernet.steps=10000 --config.supernet.batch_size=128` gives
it this job's budget.

    python launch.py --config experiments/ranking.py:cnn --workdir runs/ranking_cnn
    python launch.py --config experiments/ranking.py:cnn,automodel --workdir runs/ranking_cnn_automodel

`runlocal` (about a minute on 2 cores): the first 24 rows, a 5,000-example MNIST-1D draw instead
of 35,000 and 100 supernet steps: it checks the code paths, its numbers mean nothing.

The supernet rankers share one training (`supernet.sampling`: "uniform" single path, "sandwich"
(largest + smallest + one uniform path per step), "fair" (FairNAS strict fairness: every option
of every decision once per step) or "distinct" (one path per step, uniform over the space's
distinct functions rather than its encodings)): `supernet` ranks by validation accuracy with inherited
weights, `supernet_loss` by validation loss, `few_shot` by the few-shot sub-supernets' accuracy,
`fine_tuned` by the accuracy after each architecture has trained its inherited weights alone for
`fine_tune.steps` more steps (weight inheritance with fine-tuning, as once-for-all networks'
subnets are fine-tuned after extraction, Cai et al. 2020; not in the default rankers: it costs
that many steps per architecture). Rankers joined by "+" form a hybrid that averages their ranks
(`supernet.ranking.rank_average`): a supernet and a training-free proxy err in different places.
The default supernet (distinct sampling, weight decay 1e-2) ranks best by `supernet_loss`; its
few-shot sub-supernets train with the same weight decay and rank worse than at 5e-4.
"""

import ml_collections

from experiments import common, ground_truth


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    variants = common.variants(arg, {"runlocal", "cnn", "automodel"}, "ranking")
    runlocal, cnn = "runlocal" in variants, "cnn" in variants
    c = common.base("ranking")  # seed: the ground-truth job's, for the same train/val carve
    c.dataset = ml_collections.ConfigDict({"name": "mnist1d", "options": ground_truth.task(runlocal)})
    c.space = ml_collections.ConfigDict(ground_truth.SPACES["cnn" if cnn else "nb201"])
    c.ground_truth = ml_collections.ConfigDict({
        "table": f"strategies/benchmarks/ground_truth_{'cnn_mnist1d' if cnn else 'nb201_mnist1d_noise2'}.csv",
        "column": "test_accuracy_mean",
        "max_rows": 24 if runlocal else 0,  # 0: every row
        # The table must have been made on this config's task (its .json file says which);
        # runlocal draws a smaller MNIST-1D than the table's, so its numbers mean nothing.
        "check_task": not runlocal,
        # > 0: score the ground-truth job's whole sample of this many architectures (its seed is
        # `seed`), not only the table's rows, so that `supernet.ranking.rescore` can judge the same
        # scores against the table once more of it is trained.
        "score_sample": 0})
    # "a+b": a hybrid ranker, the average of a's and b's ranks; the training-free hybrid is its control.
    c.rankers = ("params", "flops", "synflow", "naswot", "snip", "supernet", "supernet_loss", "few_shot",
                 "few_shot+naswot", "few_shot+params+naswot", "supernet_loss+params+naswot", "params+naswot+synflow")
    if cnn:
        # The rankers its record measured with the supernet. NASWOT and its hybrids were scored in a
        # separate run that trains no supernet (`--config.rankers="('naswot', 'params', 'params+naswot')"`,
        # experiments/measured/ranking_heldout_cnn/), and joined to these scores there.
        c.rankers = ("params", "flops", "synflow", "snip", "supernet", "supernet_loss", "supernet_loss+params",
                     "supernet+params", "params+synflow")
    c.proxy_batch = 64  # training examples the proxies see (synflow uses only their shape)
    c.supernet = ml_collections.ConfigDict({
        "steps": 100 if runlocal else 10_000, "batch_size": 128, "learning_rate": 0.05, "momentum": 0.9,
        # "distinct" (uniform over distinct functions) ranked better than "uniform" on both supernet
        # seeds, and weight decay 1e-2 (against 5e-4 .. 2e-2) made validation loss the supernet ranker
        # that beats the parameter count on both (README, ranking section).
        "weight_decay": 1e-2, "sampling": "distinct", "checkpoint_every": 0 if runlocal else 500,
        "calib_size": 256, "eval_batch_size": 250,
        "seed": 0})  # added to `seed` for the supernet's init and paths only (the data stay `seed`'s)
    if "automodel" in variants:  # AutoModel's SupernetOptions defaults
        c.supernet.update({"sampling": "uniform", "weight_decay": 5e-4, "batch_size": 64,
                           "steps": 100 if runlocal else 1200})
    # Few-shot (ranker "few_shot"): split on these decisions (0: NAS-Bench-201's edge 0->1, whose
    # output feeds edges 1->2 and 1->3), each sub-supernet warm-started from the trained one-shot
    # weights; together they train budget_share x supernet.steps more steps. Edge 0->1 at
    # learning rate 0.05 ranked best of the splits measured (README, ranking section).
    c.few_shot = ml_collections.ConfigDict({"decisions": (0,), "budget_share": 1.0, "learning_rate": 0.05})
    # Fine-tuned (ranker "fine_tuned"): each architecture trains its inherited weights alone for
    # `steps` steps (learning rate cosine from `learning_rate`) before it is scored.
    c.fine_tune = ml_collections.ConfigDict({"steps": 2 if runlocal else 100, "learning_rate": 0.03})
    return c
