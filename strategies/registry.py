"""One registry helper for every kind of named thing: spaces, strategies, datasets, jobs.

    SPACES = Registry("search space")
    SPACES.register("chain", ChainSpace)
    SPACES.get("chian")   # ValueError: unknown search space 'chian' (did you mean 'chain'?); valid ...

It lives on the ground floor (`strategies` imports nothing from `supernet`) so both packages share it.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import numbers
from typing import Any, Callable


def closest(name: str, valid) -> str:
    """' (did you mean 'x'?)' for the nearest valid name (or the only one `name` begins), or ''."""
    valid = [str(v) for v in valid]
    begun = [v for v in valid if name and v.startswith(str(name))]
    match = difflib.get_close_matches(str(name), valid, n=1) or (begun if len(begun) == 1 else [])
    return f" (did you mean {match[0]!r}?)" if match else ""


class Registry:
    """Names -> entries (classes, builder functions or module paths), with helpful lookup errors."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Any] = {}

    def register(self, name: str, entry: Any = None):
        """`register(name, entry)`, or `@register(name)` as a decorator. Names are unique."""
        def add(value):
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is already registered.")
            self._entries[name] = value
            return value
        return add if entry is None else add(entry)

    def names(self) -> tuple[str, ...]:
        """The registered names, sorted."""
        return tuple(sorted(self._entries))

    def __contains__(self, name) -> bool:
        return name in self._entries

    def get(self, name: str) -> Any:
        """The entry registered as `name`; an unknown name raises ValueError with the closest valid one."""
        if name not in self._entries:
            raise ValueError(f"unknown {self.kind} {name!r}{closest(name, self._entries)}; "
                             f"valid: {', '.join(self.names())}.")
        return self._entries[name]

    def module(self, name: str, required: tuple = ()):
        """The module registered by its import path as `name`; one-line ValueErrors when the path
        does not import or the module lacks one of `required`."""
        path = self.get(name)
        try:
            module = importlib.import_module(path)
        except ModuleNotFoundError as err:
            raise ValueError(f"{self.kind} {name!r} is registered as module {path!r}, which cannot be imported "
                             f"({err}); fix the path given to register().") from None
        missing = [attribute for attribute in required if not hasattr(module, attribute)]
        if missing:
            raise ValueError(f"{self.kind} {name!r}: module {path!r} lacks {', '.join(missing)} (see "
                             f"docs/contributing.md for what it must hold).")
        return module

    def defaults(self, name: str) -> dict:
        """The named entry's keyword options and their defaults (for a class, its __init__'s)."""
        params = inspect.signature(self.get(name)).parameters.values()
        return {p.name: p.default for p in params
                if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is not p.empty}

    def build(self, name: str, *args, **options):
        """Calls the entry with the options; unknown options name the valid ones."""
        builder: Callable = self.get(name)
        check_options(builder, options, f"{self.kind} {name!r}", positional=len(args))
        return builder(*args, **options)


def check_options(fn: Callable, options: dict, what: str, positional: int = 0) -> None:
    """TypeError naming unknown keyword options of `fn` (and the closest valid one); its first
    `positional` parameters are not options."""
    params = list(inspect.signature(fn).parameters.values())[positional:]
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return
    valid = [p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise TypeError(f"{what} has no option {unknown[0]!r}{closest(unknown[0], valid)}; "
                        f"valid options: {', '.join(valid) or '(none)'}.")


# The annotations `check_types` reads, and the values each accepts (an int is a valid float).
ANNOTATED_TYPES = {"int": numbers.Integral, "float": numbers.Real, "bool": bool, "str": str, "None": type(None)}


def check_types(fn: Callable, options: dict, what: str) -> None:
    """ValueError naming an option whose value is not of the type `fn` annotates it with (e.g.
    `int | None`); options with other annotations, or none, are not checked."""
    params = inspect.signature(fn).parameters
    for key, value in options.items():
        annotation = params[key].annotation if key in params else None
        text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", "")
        names = [n.strip() for n in text.split("|")]
        if all(n in ANNOTATED_TYPES for n in names) and not any(isinstance(value, ANNOTATED_TYPES[n]) for n in names):
            raise ValueError(f"{what}: {key} takes {' or '.join(names)} (default {params[key].default!r}), got "
                             f"{value!r} ({type(value).__name__}).")
