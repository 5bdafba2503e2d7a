"""What every teacher takes and gives back. Teachers know requests and answers, nothing else."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Protocol


@dataclass(frozen=True)
class Sampling:
    temperature: float
    top_p: float
    max_tokens: int
    seed: int

    def as_dict(self) -> dict[str, Any]:
        return {"temperature": self.temperature, "top_p": self.top_p,
                "max_tokens": self.max_tokens, "seed": self.seed}


@dataclass(frozen=True)
class TeachRequest:
    """One prompt for the teacher. `key` is the cache key of everything that shapes the answer."""

    key: str
    messages: list[dict[str, str]]
    sampling: Sampling
    json_schema: dict[str, Any] | None = None


@dataclass
class TeachResult:
    key: str
    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str = "stop"
    error: str | None = None
    cached: bool = field(default=False, compare=False)


def estimate_tokens(messages: list[dict[str, str]]) -> int:
    """A generous token count for rate limits and caps: a token per 3 characters (English runs
    about 4), plus a few per message for the chat format."""
    return sum(len(m.get("content", "")) // 3 + 8 for m in messages)


class Teacher(Protocol):
    """A model that answers batches of requests.

    `identity()` names the model precisely enough to key a cache (kind, model, revision).
    `start()` loads the model or opens the connection (idempotent; a run whose answers are all
    cached never calls it). `generate()` yields results as they complete, in any order, one per
    request, and calls `on_answer(done, total)` as answers complete, where it can tell.
    """

    def identity(self) -> dict[str, str]: ...

    def start(self) -> None: ...

    def describe(self) -> str: ...

    def generate(self, requests: list[TeachRequest],
                 on_answer: Callable[[int, int], None] | None = None) -> Iterator[TeachResult]: ...

    def close(self) -> None: ...
