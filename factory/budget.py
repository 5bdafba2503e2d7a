"""What a run may spend: prices per model, and hard caps on dollars and tokens.

A cap is checked before a request is sent, against a worst case (a generous estimate of its
prompt plus its `max_tokens`), so a run stops at the cap rather than past it. What was spent is
settled from the answers' `usage`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from factory.errors import FactoryError
from factory.resources import configs_dir


class Price(BaseModel):
    """USD per million tokens."""

    model_config = ConfigDict(extra="forbid")

    input: float = Field(ge=0)
    output: float = Field(ge=0)

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self.input + completion_tokens * self.output) / 1e6


FREE = Price(input=0.0, output=0.0)


def price_table(path: Path | None = None) -> dict[str, Price]:
    path = path or configs_dir() / "prices.yaml"
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    try:
        return {str(model): Price.model_validate(p) for model, p in raw.items()}
    except ValidationError as exc:
        error = exc.errors()[0]
        raise FactoryError(error["msg"], path=path, field=".".join(map(str, error["loc"])),
                           hint="each model needs {input: USD, output: USD} per million tokens"
                           ) from None


def price_for(identity: dict[str, str], override: Price | None = None) -> Price | None:
    """The teacher's price: the config's override, free for local engines, else the table's
    entry for the model (None when unknown)."""
    if override is not None:
        return override
    if identity.get("kind") != "openai":
        return FREE
    return price_table().get(identity.get("model", ""))


@dataclass
class Budget:
    """Hard caps for one invocation (`--max-usd`, `--max-tokens`) and what it spent."""

    max_usd: float | None = None
    max_tokens: int | None = None
    price: Price | None = None
    spent_usd: float = 0.0
    tokens: int = 0
    hit: bool = False

    def check(self, teacher_spec: str) -> None:
        if self.max_usd is not None and self.price is None:
            raise FactoryError(f"no price known for {teacher_spec}", field="--max-usd",
                               hint="add `price: {input: USD, output: USD}` (per million "
                                    "tokens) to a --teacher-config, or cap with --max-tokens")

    def allow(self, worst_cases: Iterable[tuple[int, int]]) -> int:
        """How many of the next requests (prompt, max output tokens) fit under the caps."""
        usd, tokens, n = self.spent_usd, self.tokens, 0
        for prompt, output in worst_cases:
            tokens += prompt + output
            if self.price is not None:
                usd += self.price.cost(prompt, output)
            if (self.max_tokens is not None and tokens > self.max_tokens) or (
                    self.max_usd is not None and usd > self.max_usd):
                self.hit = True
                break
            n += 1
        return n

    def spend(self, prompt_tokens: int, completion_tokens: int) -> None:
        self.tokens += prompt_tokens + completion_tokens
        if self.price is not None:
            self.spent_usd += self.price.cost(prompt_tokens, completion_tokens)

    @property
    def capped(self) -> bool:
        return self.max_usd is not None or self.max_tokens is not None
