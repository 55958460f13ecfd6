"""The one small argument parser every config shares: `get_config("runlocal,gdas")`."""

from __future__ import annotations


def variants(arg: str | None, valid, experiment: str) -> set[str]:
    """The comma-separated variants of `arg`; an unknown one is an error naming the valid ones."""
    chosen = {v.strip() for v in (arg or "").split(",") if v.strip()}
    unknown = sorted(chosen - set(valid))
    if unknown:
        raise ValueError(f"unknown variant(s) {unknown} for {experiment}; valid: {', '.join(sorted(valid))}.")
    return chosen
