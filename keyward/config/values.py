"""Checkers for single configuration values.

Each checker takes the raw TOML value, its key path and the `Problems` collection; it returns the
converted value, or `INVALID` after recording a problem, so one bad value never hides the next.
Messages say what was expected and what was found ("expected true or false, got the string 'yes'").
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable

from keyward.config.durations import EXAMPLES, DurationError, format_duration, parse_duration
from keyward.config.problems import KeyPath, Problems, describe

INVALID: Any = type("Invalid", (), {"__repr__": lambda self: "INVALID"})()

Checker = Callable[[Any, KeyPath, Problems], Any]


def duration(minimum: timedelta = timedelta(0), maximum: timedelta | None = None) -> Checker:
    """Return a checker for a duration within [minimum, maximum]."""

    def check(value: Any, path: KeyPath, problems: Problems) -> Any:
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            problems.add(path, f"expected a duration like {EXAMPLES}, got {describe(value)}")
            return INVALID
        try:
            result = parse_duration(value)
        except DurationError as error:
            problems.add(path, str(error))
            return INVALID
        if result < minimum:
            problems.add(path, f"must be at least {format_duration(minimum)}, got {value!r}")
            return INVALID
        if maximum is not None and result > maximum:
            problems.add(path, f"must be at most {format_duration(maximum)}, got {value!r}")
            return INVALID
        return result

    return check


def boolean(value: Any, path: KeyPath, problems: Problems) -> Any:
    if not isinstance(value, bool):
        problems.add(path, f"expected true or false, got {describe(value)}")
        return INVALID
    return value


def fraction(value: Any, path: KeyPath, problems: Problems) -> Any:
    """A number from 0 to 1 inclusive (an int 0 or 1 is accepted)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        problems.add(path, f"expected a number between 0 and 1, got {describe(value)}")
        return INVALID
    if not 0 <= value <= 1:
        problems.add(path, f"must be between 0 and 1, got {value}")
        return INVALID
    return float(value)


# The largest count a limit may state: far above any quota Google grants, far below what a
# 64-bit database column (or a float) holds exactly.
MAX_COUNT = 10**15


def positive_int(value: Any, path: KeyPath, problems: Problems) -> Any:
    if isinstance(value, bool) or not isinstance(value, int):
        problems.add(path, f"expected a positive whole number, got {describe(value)}")
        return INVALID
    if value <= 0:
        problems.add(path, "must be greater than 0" + (f", got {value}" if value > -10**12 else ""))
        return INVALID
    if value > MAX_COUNT:
        problems.add(path, f"must be at most {MAX_COUNT:,} (10**15)")
        return INVALID
    return value


def int_between(minimum: int, maximum: int) -> Checker:
    """Return a checker for a whole number in [minimum, maximum]."""

    def check(value: Any, path: KeyPath, problems: Problems) -> Any:
        if isinstance(value, bool) or not isinstance(value, int):
            problems.add(path, f"expected a whole number, got {describe(value)}")
            return INVALID
        if not minimum <= value <= maximum:
            problems.add(path, f"must be between {minimum} and {maximum}, got {value}")
            return INVALID
        return value

    return check


def text(pattern: str | None = None, hint: str = "", empty_is_none: bool = False) -> Checker:
    """Return a checker for a string, optionally matching `pattern` (full match); `hint` says what fits."""
    compiled = re.compile(pattern) if pattern else None

    def check(value: Any, path: KeyPath, problems: Problems) -> Any:
        if not isinstance(value, str):
            problems.add(path, f"expected a string, got {describe(value)}")
            return INVALID
        if empty_is_none and value == "":
            return None
        if compiled and not compiled.fullmatch(value):
            shown = _shown(value)
            problems.add(path, f"{shown} is not valid: {hint}" if hint else f"{shown} is not valid")
            return INVALID
        return value

    return check


def _shown(value: str) -> str:
    """A string quoted in a message: masked if it looks like a key, cut if long."""
    from keyward.keystrings import redact

    text = redact(value)
    return repr(text if len(text) <= 80 else text[:77] + "...")


def choice(choices: tuple[str, ...]) -> Checker:
    """Return a checker for one of `choices`, compared without regard to case."""

    def check(value: Any, path: KeyPath, problems: Problems) -> Any:
        if not isinstance(value, str) or value.lower() not in choices:
            shown = value if isinstance(value, str) else describe(value)
            problems.add(path, f"expected one of {', '.join(choices)}, got {shown!r}")
            return INVALID
        return value.lower()

    return check


def absolute_path(empty_is_none: bool = False) -> Checker:
    """Return a checker for an absolute path; a leading `~` is expanded to the home directory."""

    def check(value: Any, path: KeyPath, problems: Problems) -> Any:
        if not isinstance(value, str):
            problems.add(path, f"expected a path string, got {describe(value)}")
            return INVALID
        if value == "" and empty_is_none:
            return None
        result = Path(value).expanduser()
        if not result.is_absolute():
            problems.add(path, f"expected an absolute path (or one starting with ~), got {value!r}")
            return INVALID
        return result

    return check


def loopback_address(value: Any, path: KeyPath, problems: Problems) -> Any:
    """A "HOST:PORT" listening address on a loopback IP ("127.0.0.1:9464", "[::1]:9464"); "" is off."""
    import ipaddress

    example = "like '127.0.0.1:9464'"
    if not isinstance(value, str):
        problems.add(path, f"expected an address {example}, got {describe(value)}")
        return INVALID
    if value == "":
        return None
    match = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:(\d+)|([^:\[\]]+):(\d+)", value)
    if not match:
        problems.add(path, f"expected HOST:PORT {example}, got {value!r}")
        return INVALID
    host = match.group(1) or match.group(3)
    port = int(match.group(2) or match.group(4))
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        problems.add(
            path,
            f"{value!r} is not a loopback address: keyward listens only on 127.0.0.1 or [::1] "
            "(put a proxy in front to expose it)",
        )
        return INVALID
    if not 1 <= port <= 65535:
        problems.add(path, f"port {port} is out of range (1-65535)")
        return INVALID
    return value


def argv(value: Any, path: KeyPath, problems: Problems) -> Any:
    """A non-empty list of strings, run without a shell."""
    if isinstance(value, str):
        problems.add(
            path,
            f"expected a list of arguments like {value.split()!r}, not a string: "
            "keyward runs the command without a shell",
        )
        return INVALID
    if not isinstance(value, list) or not value or not all(isinstance(a, str) for a in value):
        problems.add(path, f"expected a non-empty list of strings like ['systemctl', 'reload', 'my-app'], got {describe(value)}")
        return INVALID
    return tuple(value)


def text_list(item: Checker, maximum: int) -> Checker:
    """Return a checker for a list of at most `maximum` distinct strings, each checked by `item`
    at its own index (so every bad entry is reported, by position)."""

    def check(value: Any, path: KeyPath, problems: Problems) -> Any:
        if not isinstance(value, list):
            problems.add(path, f"expected a list of strings like ['my-scope-project'], got {describe(value)}")
            return INVALID
        if len(value) > maximum:
            problems.add(path, f"at most {maximum} entries, got {len(value)}")
            return INVALID
        out: list[str] = []
        for index, entry in enumerate(value):
            result = item(entry, (*path, index), problems)
            if result is INVALID:
                continue
            if result in out:
                problems.add((*path, index), f"{result!r} is listed twice")
                continue
            out.append(result)
        return tuple(out) if len(out) == len(value) else INVALID

    return check
