"""How the `distinct_fs` row of the noise-2 table in this record's README was made (2026-12-03): the
`ranking` job's few-shot stage run again on a copy of another run's trained supernet (here the
`distinct` run's), with the sub-supernets sampling their own distinct functions. From the project root:

    PYTHONPATH=. python experiments/measured/ranking_noise2/reuse_supernet.py distinct_fs distinct supernet.sampling="'distinct'"
"""
import json, os, shutil, sys
from experiments import ranking as cfg
from supernet import records
from supernet.jobs import ranking

name, source = sys.argv[1], sys.argv[2]
workdir = f"runs/ranking_noise2/{name}"
if not os.path.exists(workdir):
    os.makedirs(os.path.join(workdir, "checkpoints"))
    shutil.copytree(f"runs/ranking_noise2/{source}/checkpoints/supernet", os.path.join(workdir, "checkpoints", "supernet"))
c = cfg.get_config()
c.ground_truth.score_sample = 300
c.progress = False
c.rankers = ('params', 'naswot', 'supernet', 'supernet_loss', 'few_shot', 'few_shot+params+naswot', 'few_shot+naswot')
for kv in sys.argv[3:]:
    k, v = kv.split("="); sec, f = k.split("."); c[sec][f] = eval(v)
ranking.check(c)
results = ranking.run(c, workdir)
records.write_json(workdir, "results.json", {"config": c.to_dict(), **results})
print(name, {k: round(v["kendall_tau"], 3) for k, v in results["rankers"].items()}, flush=True)
