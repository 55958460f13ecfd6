"""How the two few-shot variant rows of the official-task table in this record's README were made (2026-12-03):
the `ranking` job's `run` on a copy of the supernet checkpoint of the run
`python launch.py --config experiments/ranking.py --workdir runs/ranking_options/official_fewshot
--config.ground_truth.score_sample=300 --config.rankers="('params','supernet','supernet_loss','few_shot')"
--config.ground_truth.table=strategies/benchmarks/ground_truth_nb201_mnist1d.csv
--config.dataset.options.noise=1.0 --config.dataset.options.num_samples=20000
--config.dataset.options.train_split=0.25`, with a few-shot budget share and learning rate.
Usage, from the project root: PYTHONPATH=. python experiments/measured/ranking_options/official_few_shot_variants.py SHARE LR"""
import os, shutil, sys
from experiments import ranking as cfg
from supernet import records
from supernet.jobs import ranking
share = float(sys.argv[1]); lr = float(sys.argv[2])
workdir = f"runs/ranking_options/official_fewshot_share{share}_lr{lr}"
if not os.path.exists(workdir):
    shutil.copytree("runs/ranking_options/official_fewshot/checkpoints/supernet", os.path.join(workdir, "checkpoints", "supernet"))
c = cfg.get_config()
c.ground_truth.score_sample = 300
c.ground_truth.table = "strategies/benchmarks/ground_truth_nb201_mnist1d.csv"
c.dataset.options.update(noise=1.0, num_samples=20000, train_split=0.25)
c.progress = False
c.supernet.sampling = "uniform"  # the rows were measured before "distinct" became the default
c.rankers = ("supernet", "few_shot")
c.few_shot.budget_share = share
c.few_shot.learning_rate = lr
ranking.check(c)
results = ranking.run(c, workdir)
records.write_json(workdir, "results.json", {"config": c.to_dict(), **results})
print(workdir, {k: round(v["kendall_tau"], 3) for k, v in results["rankers"].items()}, flush=True)
