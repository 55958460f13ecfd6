"""Which run a workdir holds: its config and a fingerprint of every field that changes results.

`claim(workdir, config)` is called before any work. A new workdir records `run.json` (the job, the
config, the fingerprint); the same config resumes it; another config is refused with the fields
that differ and the two ways on (a new `--workdir`, or `--restart`, which deletes the old run's
files first). The fingerprint covers the whole config except `MAY_CHANGE_ON_RESUME`, so data,
seed, space, schedules and strategy all count, and a field added later counts by default.
"""

from __future__ import annotations

import hashlib
import json

from supernet import records

# Fields that do not change results and so may differ when a run resumes (dotted paths). The
# ground-truth shards are processes of one run that share its workdir.
MAY_CHANGE_ON_RESUME = ("progress", "ground_truth.shard_index")
RUN_FILE = "run.json"


class RunIdentityError(ValueError):
    """The workdir holds another run."""


def flatten(config: dict, prefix: str = "") -> dict:
    """{'a': {'b': 1}} -> {'a.b': 1}; lists and tuples compare as JSON lists."""
    flat = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = json.loads(json.dumps(records.to_jsonable(value)))
    return flat


def result_fields(config: dict) -> dict:
    """The flattened config without the fields a resumed run may change (e.g. `progress`)."""
    return {k: v for k, v in flatten(config).items() if k not in MAY_CHANGE_ON_RESUME}


def fingerprint(config: dict) -> str:
    """16 hex digits identifying the config's `result_fields`."""
    text = json.dumps(result_fields(config), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def differences(recorded: dict, current: dict, limit: int = 6) -> str:
    """'seed: 0 there, 1 here; ...' for the result fields that differ, top-level fields (the job,
    the seed) first: they say the most when only the first `limit` are shown."""
    old, new = result_fields(recorded), result_fields(current)
    keys = sorted((k for k in old.keys() | new.keys() if old.get(k, "(absent)") != new.get(k, "(absent)")),
                  key=lambda k: (k.count("."), k))
    shown = [f"{k}: {old.get(k, '(absent)')!r} there, {new.get(k, '(absent)')!r} here" for k in keys[:limit]]
    return "; ".join(shown) + (f"; and {len(keys) - limit} more" if len(keys) > limit else "")


def claim(workdir: str, config: dict, job: str, restart: bool = False, caller: str = "launch.py") -> dict:
    """Records or checks the run in `workdir`; returns its run record. `restart`: delete the
    workdir's previous run (checkpoints, metrics, results) and start this one. `caller`
    ("launch.py" or "AutoModel") words the way out in the error as that caller's options."""
    if restart:
        records.remove_run(workdir)
    current = {"job": job, "fingerprint": fingerprint(config), "config": config,
               "may_change_on_resume": list(MAY_CHANGE_ON_RESUME)}
    recorded = records.read_json(workdir, RUN_FILE)
    if caller == "launch.py":
        ways_on = f"use a new --workdir, or add --restart to delete that run and start this one in {workdir}"
    else:
        ways_on = f"use another workdir, or pass restart=True to delete that run and start this one in {workdir}"
    if recorded is None:
        if records.has_run_files(workdir):
            raise RunIdentityError(f"workdir {workdir} holds run files but no {RUN_FILE} (a run of an older "
                                   f"version?), so it cannot tell whether they belong to this config; {ways_on}.")
        records.write_json(workdir, RUN_FILE, current)
        return current
    if recorded["fingerprint"] != current["fingerprint"]:
        raise RunIdentityError(f"workdir {workdir} holds a run of another config ({recorded['job']} job; "
                               f"{differences(recorded['config'], config)}); {ways_on}.")
    return recorded
