"""How a run reports what it is doing, without knowing who listens.

The pipeline calls a `Progress`; the CLI passes one that draws with rich, tests and Ray workers the
default one that logs. `RunStats` holds the numbers a user cares about.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from factory.teachers.base import TeachResult

log = logging.getLogger(__name__)


@dataclass
class RunStats:
    """`accepted` counts candidates that passed every filter, toward `target` (the sum of the
    slices' pools); selection then keeps `rows` of them."""

    target: int
    rows: int = 0
    accepted: int = 0
    requests: int = 0
    cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    new_completion_tokens: int = 0
    new_prompt_tokens: int = 0
    # USD spent by this invocation on new answers (None: the teacher's price is unknown).
    spent_usd: float | None = 0.0
    teach_seconds: float = 0.0
    start_seconds: float = 0.0
    dropped: Counter[str] = field(default_factory=Counter)
    surplus: int = 0
    started: float = field(default_factory=time.monotonic)

    def count_tokens(self, result: "TeachResult") -> None:
        self.prompt_tokens += result.prompt_tokens
        self.completion_tokens += result.completion_tokens
        if not result.cached:
            self.new_completion_tokens += result.completion_tokens
            self.new_prompt_tokens += result.prompt_tokens

    @property
    def decided(self) -> int:
        return self.accepted + self.surplus + sum(self.dropped.values())

    @property
    def acceptance_rate(self) -> float:
        return (self.accepted + self.surplus) / self.decided if self.decided else 0.0

    @property
    def tokens_per_second(self) -> float:
        return self.new_completion_tokens / self.teach_seconds if self.teach_seconds else 0.0

    def eta_seconds(self) -> float | None:
        elapsed = time.monotonic() - self.started
        if not self.accepted or self.accepted >= self.target:
            return None
        return elapsed / self.accepted * (self.target - self.accepted)


class Progress:
    """Default listener: logs milestones. Subclass and override to draw."""

    def stage(self, name: str) -> None:
        log.info("%s", name)

    def update(self, stats: RunStats) -> None:
        log.info("accepted %d/%d, %d requests (%d cached), %.0f tok/s, acceptance %.0f%%",
                 stats.accepted, stats.target, stats.requests, stats.cache_hits,
                 stats.tokens_per_second, 100 * stats.acceptance_rate)

    def answers(self, done: int, total: int) -> None:
        """Answers of the batch in flight, as they complete."""
        log.debug("batch: %d/%d answers", done, total)

    def note(self, message: str) -> None:
        log.info("%s", message)

    def warn(self, message: str) -> None:
        log.warning("%s", message)

    def close(self) -> None:
        """Called once at the end of a run."""
