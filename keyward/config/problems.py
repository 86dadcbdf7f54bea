"""Collecting configuration problems so that all of them are reported at once.

A problem is a key path (a tuple of table names, keys and array indexes, as tomllib's nesting
gives them) and a message. The loader turns each path into a line number of the file at the end,
so checks never need to know where anything was written.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

KeyPath = tuple[str | int, ...]

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def format_path(path: KeyPath) -> str:
    """Return a key path as TOML would spell it: `pools.default.sinks[0].path`, quoting odd keys."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
            continue
        name = part if _BARE_KEY.fullmatch(part) else '"' + part.replace("\\", "\\\\").replace('"', '\\"') + '"'
        text += ("." if text else "") + name
    return text


def did_you_mean(word: str, choices: Iterable[str], what: str = "key") -> str:
    """Return "unknown key 'x' (did you mean 'y'?)", or list the choices when none is close."""
    import difflib  # only needed when something is wrong; keeps the happy path's imports small

    options = sorted(choices)
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    if close:
        return f"unknown {what} {word!r} (did you mean {close[0]!r}?)"
    if options:
        return f"unknown {what} {word!r} (expected one of: {', '.join(options)})"
    return f"unknown {what} {word!r} (this table takes no keys)"


def describe(value: object) -> str:
    """Name a TOML value's type the way a person writing the file thinks of it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int) and abs(value) >= 10**30:
        return f"a number of {len(str(abs(value)))} digits"
    if isinstance(value, (int, float)):
        return f"the number {value}"
    if isinstance(value, str):
        from keyward.keystrings import redact

        text = redact(value)  # a key pasted into the wrong place is not repeated in the error
        return f"the string {text if len(text) <= 80 else text[:77] + '...'!r}"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    return f"a {type(value).__name__}"


@dataclass
class Problems:
    """An ordered collection of (key path, message) pairs found while checking one configuration."""

    items: list[tuple[KeyPath, str]] = field(default_factory=list)

    def add(self, path: KeyPath, message: str) -> None:
        from keyward.keystrings import redact

        self.items.append((tuple(path), redact(message)))

    def unknown_keys(self, table: dict, known: Iterable[str], path: KeyPath, what: str = "key") -> None:
        """Report every key of `table` not in `known`, with a did-you-mean for near misses."""
        known = list(known)
        for key in table:
            if key not in known:
                self.add((*path, key), did_you_mean(key, known, what))

    def __bool__(self) -> bool:
        return bool(self.items)

    def __len__(self) -> int:
        return len(self.items)
