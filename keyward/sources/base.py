"""The small interface every pulled usage source implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Observation:
    """What a source saw in one UTC minute of one project: ABSOLUTE counts for that minute.

    `credential_uid` is Google's uid of the key used (None when not known or not per key);
    `model` is None when the source cannot tell the model (the pool's model is then assumed).
    """

    minute: datetime
    credential_uid: str | None
    model: str | None
    requests: int
    input_tokens: int


class UsageSource(ABC):
    """A source of per-minute usage of a project; `read` may raise KeywardError (Transient…)."""

    name: str = "source"

    @abstractmethod
    def read(self, project_id: str, start: datetime, end: datetime) -> list[Observation]:
        """Return the observations of whole UTC minutes in [start, end), in any order.

        Several observations may share a minute (different keys or models); a minute absent
        from the answer means the source saw nothing there yet.
        """
