"""One registry helper for every kind of named thing: spaces, strategies, datasets, jobs.

    SPACES = Registry("search space")
    SPACES.register("chain", ChainSpace)
    SPACES.get("chian")   # ValueError: unknown search space 'chian' (did you mean 'chain'?); valid ...

It lives on the ground floor (`strategies` imports nothing from `supernet`) so both packages share it.
"""

from __future__ import annotations

import difflib
import inspect
from typing import Any, Callable


def closest(name: str, valid) -> str:
    """' (did you mean 'x'?)' for the nearest valid name, or ''."""
    match = difflib.get_close_matches(str(name), [str(v) for v in valid], n=1)
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
