"""The README's one-call example, exactly as written, with its result saved beside this file.

    python experiments/measured/automodel/one_call.py
"""

import json
import os
import time

from supernet import AutoModel

tic = time.perf_counter()
best_architecture, best_accuracy = result = AutoModel(
    {"block1": ["conv", "maxpool"], "block2": ["residual"], "block3": ["linear"]}, data="digits").search()
seconds = time.perf_counter() - tic
print(best_architecture, best_accuracy, f"{seconds:.0f} s")
print(repr(result))
record = {"best_architecture": best_architecture, "best_accuracy": best_accuracy, "wall_time_s": seconds,
          "repr": repr(result), "results": {k: v for k, v in result.results.items() if k != "best_arch_int"}}
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "results.json"), "w") as f:
    json.dump(record, f, indent=2, default=lambda v: v.tolist() if hasattr(v, "tolist") else str(v))
