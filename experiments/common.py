"""What every config shares: the variant parser (`get_config("runlocal,gdas")`) and the top-level
fields every job reads; and the command line of the example scripts (`example_command_line`)."""

from __future__ import annotations


def variants(arg: str | None, valid, experiment: str) -> set[str]:
    """The comma-separated variants of `arg`; an unknown one is an error naming the valid ones."""
    chosen = {v.strip() for v in (arg or "").split(",") if v.strip()}
    unknown = sorted(chosen - set(valid))
    if unknown:
        raise ValueError(f"unknown variant(s) {unknown} for {experiment}; valid: {', '.join(sorted(valid))}.")
    return chosen


def backend_section():
    """Overrides of the backend policy (`supernet.backend`; "auto" keeps the backend's default),
    e.g. `--config.backend.cell=folded --config.backend.compute_dtype=bfloat16`."""
    import ml_collections
    return ml_collections.ConfigDict({"cell": "auto", "nas_path": "auto", "vmap_archs": "auto", "depthwise": "auto",
                                      "init": "auto", "compute_dtype": "auto"})


def base(job: str, *, devices: bool = True):
    """The fields every job's config starts with: `job`, `seed` (every random choice flows from
    it), `num_devices` (0: every local device; jobs that shard), `progress` bars and `backend`."""
    import ml_collections
    c = ml_collections.ConfigDict({"job": job, "seed": 0, "progress": True, "backend": backend_section()})
    if devices:
        c.num_devices = 0
    return c


def example_command_line(description: str, run, record: str) -> None:
    """The command line of an example script (`python -m experiments.own_cnn [--tiny]`): `run(size,
    progress)` with size "tiny" (the code paths only, nothing written) or "full", whose result is
    written to the record file `record`."""
    import argparse
    import os
    from supernet import records
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--tiny", action="store_true", help="tiny sizes: the code paths only, nothing written")
    args = parser.parse_args()
    found = run("tiny" if args.tiny else "full", not args.tiny)
    if not args.tiny:
        print(f"wrote {records.write_json(os.path.dirname(record), os.path.basename(record), found)}")
