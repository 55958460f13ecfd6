"""The whole config checked before any work: every mistake is one line naming the field and the fix.

`check_overrides` compares each `--config.a.b=...` against the config file's own keys (a misspelt
one names the closest valid key); the `options` dicts take new keys, which `check` then matches
against the options their dataset, space or strategy accepts (so `--config.dataset.options.data_dir`
works for cifar10). `check` also covers the registries (dataset, space, job), ranges (steps,
budget, population, batch sizes >= 1), paths (options ending in `_dir` or `_path` must exist, and
be set when the dataset reads local files), the `backend` choices and batch sizes that must divide
by the devices; a job adds its own rules with `check(config)`.
Only jobs and launch.py call this module (it reads a config).
"""

from __future__ import annotations

import importlib.util
import os

import jax

from strategies.registry import check_options, closest

OPTION_DICTS = "options"  # config dicts whose keys are a registry entry's options, not fixed fields
AT_LEAST_ONE = ("steps", "budget", "population", "batch_size", "val_batch_size", "eval_batch_size")
# What a dataset's local path option must name, by dataset (`supernet.data`; nothing is downloaded).
LOCAL_DATA = {"cifar10": "DIR, the `cifar-10-batches-py` directory unpacked from cifar-10-python.tar.gz"}


class ConfigError(ValueError):
    """A config that cannot run; the message is one line naming the field and what to do."""


def defaults(config_path: str):
    """The config `path[:variant]` as its file defines it, before command-line overrides."""
    file, _, arg = config_path.partition(":")
    spec = importlib.util.spec_from_file_location("_config_under_check", file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(arg or None)


def check_overrides(overrides: dict, base) -> None:
    """Every override names a field of `base`, or a key inside an `options` dict."""
    for path in overrides:
        node, walked = base, []
        for part in path.split("."):
            if walked and walked[-1] == OPTION_DICTS:
                break  # an option: checked against its entry's signature in `check`
            keys = list(node.keys()) if hasattr(node, "keys") else []
            if part not in keys:
                prefix = ".".join(walked)
                valid = [f"{prefix}.{k}" if prefix else k for k in keys]
                raise ConfigError(f"unknown config key {path!r}{closest('.'.join(walked + [part]), valid)}; "
                                  f"valid keys there: {', '.join(sorted(valid)) or '(none)'}.")
            node, walked = node[part], walked + [part]


def device_count(config) -> int:
    """The devices a config's run uses: `num_devices`, or every device when it is 0/None."""
    return int(config.get("num_devices") or jax.device_count())


def check(config, job) -> None:
    """The common fields, then the job's own `check(config)`; raises ConfigError."""
    try:
        _check_common(config)
        if hasattr(job, "check"):
            job.check(config)
    except ConfigError:
        raise
    except (ValueError, TypeError, KeyError) as err:
        raise ConfigError(str(err).strip("'\"")) from None


def _check_common(config) -> None:
    from supernet import data, spaces  # here: a config error is reported before heavier imports
    if config.get("seed", 0) < 0:
        raise ConfigError(f"seed must be >= 0, got {config.seed}.")
    if config.get("num_devices", 0) and config.num_devices > jax.device_count():
        raise ConfigError(f"num_devices={config.num_devices} but only {jax.device_count()} devices are "
                          f"visible; set --config.num_devices=0 (all) or fewer.")
    if "dataset" in config:
        check_options(data.DATASETS.get(config.dataset.name), dict(config.dataset.options),
                      f"dataset {config.dataset.name!r}", positional=1)
        check_local_data(config.dataset.name, data.options(config.dataset.name), config.dataset.options)
        check_paths(config.dataset.options, "dataset.options")
    if "backend" in config:
        check_backend(config.backend)
    if "space" in config:
        check_options(spaces.SPACES.get(config.space.name), dict(config.space.options),
                      f"space {config.space.name!r}")
        if config.space.name == "nas":  # the module is imported and built here, not after the data loads
            spaces.module.load_module(config.space.options.get("module", ""))
    check_ranges(config)


def check_ranges(node, prefix: str = "") -> None:
    """Counts that must be >= 1 anywhere in the config (steps, budget, population, batch sizes)."""
    for key, value in node.items():
        name = f"{prefix}{key}"
        if hasattr(value, "items"):
            check_ranges(value, name + ".")
        elif key in AT_LEAST_ONE and isinstance(value, int) and value < 1:
            raise ConfigError(f"{name} must be >= 1, got {value}; set --config.{name}.")


def is_path(option: str) -> bool:
    """Whether an option names a path (it ends in `_dir` or `_path`)."""
    return option.endswith("_dir") or option.endswith("_path")


def check_paths(options, prefix: str) -> None:
    """Each `*_dir` / `*_path` option that is set names an existing path (ConfigError otherwise)."""
    for key, value in options.items():
        if is_path(key) and value and not os.path.exists(value):
            raise ConfigError(f"{prefix}.{key}={value!r} does not exist; set --config.{prefix}.{key} to an "
                              f"existing path.")


def check_local_data(name: str, defaults: dict, options) -> None:
    """A dataset that reads local files (a `*_dir` / `*_path` option without a default) is told where."""
    for key, default in defaults.items():
        if is_path(key) and default is None and not options.get(key):
            raise ConfigError(f"dataset {name!r} reads a local copy of its data (nothing is downloaded), but "
                              f"dataset.options.{key} is not set; pass --config.dataset.options.{key}="
                              f"{LOCAL_DATA.get(name, 'PATH')}.")


def check_backend(section) -> None:
    """Each `backend` choice is "auto" or one the backend offers (`supernet.backend.CHOICES`)."""
    from supernet import backend
    for name, valid in backend.CHOICES.items():
        check_choice(section.get(name, "auto"), ("auto", *valid), f"backend.{name}")


def existing_file(path: str, key: str, fix: str) -> str:
    """The table file `path` names, found as the jobs find it (`ground_truth.resolve_table`); a
    ConfigError naming `key`, the places looked at, and `fix` when there is none."""
    from supernet.ground_truth import resolve_table, table_places
    try:
        return resolve_table(path)
    except FileNotFoundError:
        raise ConfigError(f"{key}={path!r} does not exist (looked at {', '.join(table_places(path))}); {fix}") from None


def check_divisible(config, **batch_sizes: int) -> None:
    """Each named batch size (e.g. `supernet.batch_size=64`) divides by the devices it splits over."""
    n = device_count(config)
    for name, size in batch_sizes.items():
        if size % n:
            lower = max(n, size // n * n)
            raise ConfigError(f"{name}={size} does not divide by the {n} devices; set --config.{name} to a "
                              f"multiple of {n}, e.g. {lower} or {lower + n}.")


def check_choice(value, valid, name: str) -> None:
    """`value` is one of `valid` (ConfigError with the closest valid one otherwise)."""
    if value not in valid:
        raise ConfigError(f"{name}={value!r} is not valid{closest(value, valid)}; valid: "
                          f"{', '.join(str(v) or repr(v) for v in valid)}.")


def check_keys(options, valid, prefix: str, owner: str) -> None:
    """Each key of an options dict is one that `owner` accepts."""
    for key in options:
        if key not in valid:
            raise ConfigError(f"{prefix}.{key} is not an option of {owner}{closest(key, valid)}; valid: "
                              f"{', '.join(valid) or '(none)'}.")
