"""Keep or drop, and why: the answer every filter gives."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class Decision:
    keep: bool
    reason: str | None = None
    detail: str = ""


KEEP = Decision(True)


def drop(reason: str, detail: str = "") -> Decision:
    return Decision(False, reason, detail)


class Filter(Protocol):
    """`filter(fields) -> Decision`. `name` prefixes nothing: reasons are globally unique."""

    name: str

    def __call__(self, fields: dict[str, Any]) -> Decision: ...
