"""How the few-shot and evaluation-time rows of the noise-2 table in this record's README were made
(2026-12-03): each variant is the `ranking` job's `run` on a copy of one trained 10,000-step
supernet's checkpoints (supernet.seed=1; first trained by

    python launch.py --config experiments/ranking.py --workdir runs/ranking_noise2/seed1 --config.ground_truth.score_sample=300 \
        --config.supernet.steps=10000 --config.supernet.seed=1 --config.rankers="('params','supernet','supernet_loss')"

), so that only the variant's own stage (few-shot training, calibration, more validation data)
runs again. Usage, from the project root: PYTHONPATH=. python experiments/measured/ranking_noise2/variants.py NAME...
(the config defaults have since moved: few-shot splits edge 0->1 at learning rate 0.05; the
variants set what they measure explicitly, and the few-shot learning rate when they vary it)."""
import json, os, shutil, sys
from experiments import ranking as cfg
from supernet import records
from supernet.jobs import ranking

def variant(name, rankers, **overrides):
    workdir = f"runs/ranking_noise2/{name}"
    if os.path.exists(os.path.join(workdir, "results.json")):
        return
    if not os.path.exists(workdir):
        shutil.copytree("runs/ranking_noise2/seed1/checkpoints", os.path.join(workdir, "checkpoints"))
    c = cfg.get_config()
    c.ground_truth.score_sample = 300
    c.progress = False
    c.supernet.steps = 10000
    c.supernet.seed = 1
    c.supernet.sampling = "uniform"  # the rows were measured before "distinct" became the default
    c.rankers = rankers
    for key, value in overrides.items():
        section, field = key.split(".", 1)
        c[section][field] = value
    ranking.check(c)
    results = ranking.run(c, workdir)
    records.write_json(workdir, "results.json", {"config": c.to_dict(), **results})
    print(name, {k: round(v["kendall_tau"], 3) for k, v in results["rankers"].items()}, flush=True)

for name in sys.argv[1:]:
    spec = {
        "fewshot_e0": (("supernet", "few_shot"), {"few_shot.decisions": (0,), "few_shot.learning_rate": 0.01}),
        "fewshot_e01": (("supernet", "few_shot"), {"few_shot.decisions": (0, 1), "few_shot.learning_rate": 0.01}),
        "fewshot_e0_lr03": (("supernet", "few_shot"), {"few_shot.decisions": (0,), "few_shot.learning_rate": 0.03}),
        "fewshot_e0_lr05": (("supernet", "few_shot"), {"few_shot.decisions": (0,), "few_shot.learning_rate": 0.05}),
        "fewshot_e0_lr10": (("supernet", "few_shot"), {"few_shot.decisions": (0,), "few_shot.learning_rate": 0.1}),
        "fewshot_e0_lr05_x2": (("supernet", "few_shot"), {"few_shot.decisions": (0,), "few_shot.budget_share": 2.0, "few_shot.learning_rate": 0.05}),
        "fewshot_e0_x2": (("supernet", "few_shot"), {"few_shot.decisions": (0,), "few_shot.budget_share": 2.0, "few_shot.learning_rate": 0.01}),
        "fewshot_e1": (("supernet", "few_shot"), {"few_shot.decisions": (1,), "few_shot.learning_rate": 0.01}),
        "calib1024": (("supernet", "supernet_loss"), {"supernet.calib_size": 1024}),
        "extra_val": (("supernet", "supernet_loss"), {"dataset.options": {**cfg.get_config().dataset.options.to_dict(), "extra_val": 16000}}),
    }[name]
    variant(name, spec[0], **spec[1])
