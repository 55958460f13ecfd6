"""Where the one-shot supernet's ranking goes wrong (README, ranking section): an additive
least-squares fit of each (edge, operation) pair's effect on the rank of a cell, once for the
table's test accuracy and once for the 10,000-step supernet's validation accuracy
(uniform10000.json). Run from the project root: python experiments/measured/ranking_noise2/edge_effects.py"""

import csv
import json
import re

import numpy as np
from scipy.stats import rankdata

TABLE = "strategies/benchmarks/ground_truth_nb201_mnist1d_noise2.csv"
SCORES = "experiments/measured/ranking_noise2/uniform10000.json"
OPS = ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"]
EDGES = ["0->1", "0->2", "1->2", "0->3", "1->3", "2->3"]  # the order of the architecture string

rows = {r["arch"]: r for r in csv.DictReader(open(TABLE))}
scored = json.load(open(SCORES))
archs = [a for a in scored["archs"] if a in rows]
at = [scored["archs"].index(a) for a in archs]
one_hot = np.array([[op == o for op in re.findall(r"\|([a-z_0-9]+)~\d", a) for o in OPS] for a in archs], float)
for name, values in (("trained from scratch (test accuracy)", [float(rows[a]["test_accuracy_mean"]) for a in archs]),
                     ("supernet (validation accuracy)", np.asarray(scored["rankers"]["supernet"]["scores"])[at])):
    rank = rankdata(values) / len(values)  # 0..1
    weights = np.linalg.lstsq(np.c_[one_hot, np.ones(len(rank))], rank, rcond=None)[0][:-1].reshape(6, 5)
    weights -= weights.mean(1, keepdims=True)
    print(f"{name}: effect on the rank quantile, centred per edge\n  edge  " + " ".join(f"{o:>13}" for o in OPS))
    for edge, w in zip(EDGES, weights):
        print(f"  {edge}  " + " ".join(f"{v:13.2f}" for v in w))
