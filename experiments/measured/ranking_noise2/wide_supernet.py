"""How the `wide16` row of the noise-2 table in this record's README was made (2026-12-03): the `ranking`
job with its supernet rankers trained and scored on a supernet of width W instead of the table's
C=8 (the architectures, data and table unchanged). From the project root:

    PYTHONPATH=. python experiments/measured/ranking_noise2/wide_supernet.py 16 wide16 supernet.sampling="'uniform'"

(written when the job's default sampling was "uniform"; the row used it.)"""
import os, sys
from experiments import ranking as cfg
from supernet import records, spaces
from supernet.jobs import ranking

width, name = int(sys.argv[1]), sys.argv[2]
workdir = f"runs/ranking_noise2/{name}"
orig = ranking._supernet_scores

def wide(config, dataset, space, mesh, archs, workdir):
    w = spaces.get(config.space.name, num_classes=dataset.num_classes, input_shape=dataset.input_shape,
                   **{**config.space.options.to_dict(), "channels": width})
    return orig(config, dataset, w, mesh, archs, workdir)

ranking._supernet_scores = wide
c = cfg.get_config()
c.ground_truth.score_sample = 300
c.progress = False
c.rankers = ('params', 'naswot', 'supernet', 'supernet_loss', 'few_shot', 'few_shot+params+naswot')
for kv in sys.argv[3:]:
    k, v = kv.split("="); sec, f = k.split("."); c[sec][f] = eval(v)
ranking.check(c)
results = ranking.run(c, workdir)
records.write_json(workdir, "results.json", {"config": c.to_dict(), "supernet_channels": width, **results})
print(name, {k: round(v["kendall_tau"], 3) for k, v in results["rankers"].items()}, flush=True)
