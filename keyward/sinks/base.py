"""The publish sink interface: where keyward writes a pool's current key for other programs.

A sink is built from one validated sink table of the configuration. Its promises:

- `publish` is atomic: a reader sees the previous key or the new one, never a mix or nothing;
  on failure it raises `PublishError` and leaves what was there before intact.
- `change_marker`, when not None, changes whenever `read` may return something else.
- Nothing a sink says about itself (`describe`, `repr`, error messages) contains the secret.
"""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, Any, ClassVar

from keyward.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Hashable


class Sink(abc.ABC):
    """Base of every publish sink; subclasses name their options in `option_names`."""

    type_name: ClassVar[str]
    option_names: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, pool: str, **options: Any) -> None:
        unknown = sorted(set(options) - self.option_names)
        if unknown:
            import difflib

            problems = []
            for name in unknown:
                close = difflib.get_close_matches(name, sorted(self.option_names), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                problems.append(f"unknown option {name!r}{hint}")
            raise ConfigError(f"{self.type_name} sink of pool {pool!r} is misconfigured", problems)
        self.pool = pool

    @abc.abstractmethod
    def publish(self, secret: str, key_id: str) -> None:
        """Make `secret` the published key, atomically. Raise PublishError and keep the old one on failure."""

    @abc.abstractmethod
    def read(self) -> str | None:
        """Return the key published now, or None when nothing is."""

    def change_marker(self) -> Hashable | None:
        """Return a cheap token that changes whenever what `read` returns may have changed, or None.

        The publisher reads a sink again only when its token differs from the one it saw when the
        sink last held the chosen key, so a sink that can tell (a file's stat) is not read on every
        pass. None means "cannot tell": the sink is read every time (the default, for sinks that
        other programs can change without leaving a trace, like a keyring).
        """
        return None

    def describe(self) -> str:
        """Return a one-line, secret-free description for status output and logs."""
        return f"{self.type_name} sink of pool {self.pool}"

    def withdraw(self) -> None:
        """Remove the published key (the pool was removed). Sinks that hold nothing do nothing."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.describe()}>"
