"""Mapping key paths of a TOML document back to line numbers.

tomllib returns plain dicts without positions, so error messages would lack the line a person
needs. `KeyLocator` scans the text once (after tomllib accepted it) and remembers the line where
each key path first appears: table headers (`[a.b]`, `[[a.b]]` with the array index counted),
dotted and quoted keys, array elements and the keys of inline tables. `line_of` falls back to the
closest enclosing path it knows, so a missing key points at its table. The scanner is best effort:
it never raises, and an odd construct only costs precision.
"""

from __future__ import annotations

import bisect
import re

from keyward.config.problems import KeyPath

_BARE = re.compile(r"[A-Za-z0-9_-]+")
_SCALAR = re.compile(r"[^,\]}\n#]*")
_ESCAPE = re.compile(r"\\(u[0-9A-Fa-f]{4}|U[0-9A-Fa-f]{8}|.)")
_SIMPLE_ESCAPES = {"b": "\b", "t": "\t", "n": "\n", "f": "\f", "r": "\r", '"': '"', "\\": "\\"}


def _unescape(raw: str) -> str:
    def one(match: re.Match) -> str:
        code = match.group(1)
        if code[0] in "uU":
            return chr(int(code[1:], 16))
        return _SIMPLE_ESCAPES.get(code, code)

    return _ESCAPE.sub(one, raw)


class KeyLocator:
    """Line numbers (1-based) of the key paths written in one TOML text."""

    def __init__(self, text: str):
        self._text = text
        self._newlines = [i for i, ch in enumerate(text) if ch == "\n"]
        self._lines: dict[KeyPath, int] = {}
        self._pos = 0
        try:
            self._scan()
        except (IndexError, ValueError):
            pass  # keep whatever was found before the construct the scanner does not follow

    def line_of(self, path: KeyPath) -> int | None:
        """Return the line of `path`, else of its nearest recorded parent, else None."""
        path = tuple(path)
        while path:
            if path in self._lines:
                return self._lines[path]
            path = path[:-1]
        return None

    # -- scanning ---------------------------------------------------------------------------

    def _line_at(self, pos: int) -> int:
        return bisect.bisect_left(self._newlines, pos) + 1

    def _record(self, path: KeyPath, pos: int) -> None:
        self._lines.setdefault(path, self._line_at(pos))

    def _peek(self, count: int = 1) -> str:
        return self._text[self._pos : self._pos + count]

    def _skip_blank(self, newlines: bool = False) -> None:
        """Skip spaces and tabs; with `newlines`, also line breaks and comments."""
        text = self._text
        while self._pos < len(text):
            ch = text[self._pos]
            if ch in " \t\r" or (newlines and ch == "\n"):
                self._pos += 1
            elif newlines and ch == "#":
                end = text.find("\n", self._pos)
                self._pos = len(text) if end < 0 else end
            else:
                return

    def _scan(self) -> None:
        text = self._text
        table: KeyPath = ()
        array_counts: dict[KeyPath, int] = {}
        while self._pos < len(text):
            self._skip_blank(newlines=True)
            if self._pos >= len(text):
                return
            start = self._pos
            if self._peek(2) == "[[":
                self._pos += 2
                parts = self._key()
                self._pos = text.index("]]", self._pos) + 2
                parent = self._resolve(parts[:-1], array_counts)
                full = (*parent, parts[-1])
                array_counts[full] = array_counts.get(full, 0) + 1
                table = (*full, array_counts[full] - 1)
                self._record(full, start)
                self._record(table, start)
            elif self._peek() == "[":
                self._pos += 1
                parts = self._key()
                self._pos = text.index("]", self._pos) + 1
                table = self._resolve(parts, array_counts)
                for i in range(1, len(table) + 1):
                    self._record(table[:i], start)
            else:
                parts = self._key()
                for i in range(1, len(parts) + 1):
                    self._record((*table, *parts[:i]), start)
                self._skip_blank()
                if self._peek() != "=":
                    raise ValueError("not a key/value line")
                self._pos += 1
                self._value((*table, *parts))
            if self._pos == start:
                self._pos += 1

    @staticmethod
    def _resolve(parts: tuple[str, ...], array_counts: dict[KeyPath, int]) -> KeyPath:
        """Insert the current index after every prefix that names an array of tables."""
        resolved: KeyPath = ()
        for part in parts:
            resolved = (*resolved, part)
            if resolved in array_counts:
                resolved = (*resolved, array_counts[resolved] - 1)
        return resolved

    def _key(self) -> tuple[str, ...]:
        """Read a possibly dotted, possibly quoted key at the current position."""
        parts: list[str] = []
        text = self._text
        while True:
            self._skip_blank()
            ch = self._peek()
            if ch == '"':
                end = self._basic_string_end(self._pos + 1)
                parts.append(_unescape(text[self._pos + 1 : end - 1]))
                self._pos = end
            elif ch == "'":
                end = text.index("'", self._pos + 1)
                parts.append(text[self._pos + 1 : end])
                self._pos = end + 1
            else:
                match = _BARE.match(text, self._pos)
                if not match:
                    raise ValueError("no key here")
                parts.append(match.group())
                self._pos = match.end()
            self._skip_blank()
            if self._peek() != ".":
                return tuple(parts)
            self._pos += 1

    def _basic_string_end(self, pos: int) -> int:
        """Return the index just past the closing quote of a one-line basic string starting at `pos`."""
        text = self._text
        while text[pos] != '"':
            pos += 2 if text[pos] == "\\" else 1
        return pos + 1

    def _multiline_end(self, pos: int, delimiter: str) -> int:
        text = self._text
        while True:
            found = text.index(delimiter, pos)
            if delimiter == "'''" or not self._escaped(found):
                end = found + 3
                while end < len(text) and text[end] == delimiter[0] and end - found < 5:
                    end += 1  # up to two quotes may end the content right before the delimiter
                return end
            pos = found + 1

    def _escaped(self, pos: int) -> bool:
        count = 0
        while pos - count - 1 >= 0 and self._text[pos - count - 1] == "\\":
            count += 1
        return count % 2 == 1

    def _value(self, path: KeyPath) -> None:
        """Skip one value, recording array elements and inline-table keys under `path`."""
        text = self._text
        self._skip_blank()
        if self._peek(3) in ('"""', "'''"):
            self._pos = self._multiline_end(self._pos + 3, self._peek(3))
        elif self._peek() == '"':
            self._pos = self._basic_string_end(self._pos + 1)
        elif self._peek() == "'":
            self._pos = text.index("'", self._pos + 1) + 1
        elif self._peek() == "[":
            self._pos += 1
            index = 0
            while True:
                self._skip_blank(newlines=True)
                if self._peek() == "]":
                    self._pos += 1
                    return
                start = self._pos
                self._record((*path, index), start)
                self._value((*path, index))
                self._skip_blank(newlines=True)
                if self._peek() == ",":
                    self._pos += 1
                elif self._pos == start:
                    raise ValueError("array element not understood")
                index += 1
        elif self._peek() == "{":
            self._pos += 1
            while True:
                self._skip_blank()
                if self._peek() == "}":
                    self._pos += 1
                    return
                start = self._pos
                parts = self._key()
                for i in range(1, len(parts) + 1):
                    self._record((*path, *parts[:i]), start)
                self._skip_blank()
                self._pos += 1  # the "="
                self._value((*path, *parts))
                self._skip_blank()
                if self._peek() == ",":
                    self._pos += 1
                elif self._pos == start:
                    raise ValueError("inline table not understood")
        else:
            match = _SCALAR.match(text, self._pos)
            self._pos = match.end()
            if self._pos >= len(text) and not match.group():
                raise IndexError("end of text")
