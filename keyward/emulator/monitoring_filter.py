"""The subset of Cloud Monitoring's filter language keyward uses.

Accepted: terms joined by `AND`, each `FIELD = "value"`, `FIELD != "value"`, or
`FIELD = starts_with("v")` / `ends_with("v")` / `has_substring("v")` / `one_of("a", "b")`.
FIELD is `metric.type`, `resource.type`, `metric.labels.NAME` or `resource.labels.NAME` (the
singular `label` works too, as in Monitoring). Anything else is a 400 INVALID_ARGUMENT, so a
client never silently gets unfiltered data.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from keyward.emulator import errors

_TERM = re.compile(
    r"""\s*(?P<field>[A-Za-z_][\w.]*)\s*(?P<op>!=|=)\s*
        (?:"(?P<value>(?:[^"\\]|\\.)*)"
          |(?P<func>starts_with|ends_with|has_substring|one_of)\s*\((?P<args>[^)]*)\))\s*""",
    re.X)
_AND = re.compile(r"AND\s", re.I)
_ARG = re.compile(r'\s*"((?:[^"\\]|\\.)*)"\s*(?:,|$)')
_FIELD = re.compile(r"(metric|resource)\.(type|labels?\.(?P<label>[\w]+))")


@dataclass
class Term:
    """One comparison: `kind` is metric/resource, `label` None for the type itself."""

    kind: str
    label: str | None
    test: Callable[[str | None], bool]


def parse(text: str) -> list[Term]:
    """Parse a filter; raise 400 INVALID_ARGUMENT naming the problem."""
    terms: list[Term] = []
    pos = 0
    text = text.strip()
    if not text:
        raise errors.invalid_argument("The filter must name a metric type.", "filter")
    while True:
        m = _TERM.match(text, pos)
        if not m:
            raise errors.invalid_argument(
                f"Could not parse filter at position {pos}: {text[pos:pos + 40]!r}", "filter")
        terms.append(_term(m))
        pos = m.end()
        if pos >= len(text):
            return terms
        conj = _AND.match(text, pos)
        if not conj:
            raise errors.invalid_argument(
                f"Could not parse filter at position {pos}: expected AND", "filter")
        pos = conj.end()


def _term(m: re.Match[str]) -> Term:
    field = _FIELD.fullmatch(m["field"])
    if not field:
        raise errors.invalid_argument(f"Unsupported filter field: {m['field']}", "filter")
    kind, label = field[1], field["label"]
    if m["func"]:
        args = [_unescape(a) for a in _ARG.findall(m["args"])]
        if not args:
            raise errors.invalid_argument(f"{m['func']} needs a quoted argument", "filter")
        func = m["func"]
        if func == "starts_with":
            check = lambda v, a=args[0]: v is not None and v.startswith(a)  # noqa: E731
        elif func == "ends_with":
            check = lambda v, a=args[0]: v is not None and v.endswith(a)  # noqa: E731
        elif func == "has_substring":
            check = lambda v, a=args[0]: v is not None and a in v  # noqa: E731
        else:
            check = lambda v, a=tuple(args): v in a  # noqa: E731
    else:
        wanted = _unescape(m["value"])
        check = lambda v, a=wanted: v == a  # noqa: E731
    if m["op"] == "!=":
        return Term(kind, label, lambda v, c=check: not c(v))
    return Term(kind, label, check)


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", r"\1", value)


def metric_type(terms: list[Term]) -> list[Term]:
    """Return the terms that select on `metric.type` (a list filter must have one)."""
    return [t for t in terms if t.kind == "metric" and t.label is None]


def matches(terms: list[Term], metric: dict, resource: dict) -> bool:
    """Return whether a series with these Metric and MonitoredResource dicts passes the filter."""
    for term in terms:
        source = metric if term.kind == "metric" else resource
        value = source.get("type") if term.label is None else source["labels"].get(term.label)
        if not term.test(value):
            return False
    return True
