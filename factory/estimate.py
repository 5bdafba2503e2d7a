"""`factory estimate` and `distill --dry-run`: what a run would ask for and cost, spending nothing.

Requests per slice follow the quota loop: the slice's pool divided by the acceptance rate (an
earlier run's in the same folder, else an assumed 50%), capped by the slice's attempt bound.
Prompt tokens come from prompts rendered for a sample of the planned requests; output tokens
from the earlier run's average, else half of `max_tokens` (and all of it for the worst case).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from factory.budget import Price
from factory.output import OutputFolder
from factory.plan import Planner
from factory.render import Renderer
from factory.tasks import Task

ASSUMED_ACCEPTANCE = 0.5
SAMPLE_PER_SLICE = 4


@dataclass
class Estimate:
    requests: int
    already_done: int
    acceptance: float
    acceptance_source: str
    prompt_tokens: int
    completion_tokens: int
    completion_tokens_max: int
    price: Price | None

    @property
    def usd(self) -> float | None:
        return self.price.cost(self.prompt_tokens, self.completion_tokens) if self.price else None

    @property
    def usd_max(self) -> float | None:
        if self.price is None:
            return None
        return self.price.cost(self.prompt_tokens, self.completion_tokens_max)

    def as_dict(self) -> dict[str, Any]:
        return {"requests": self.requests, "already_done": self.already_done,
                "acceptance": self.acceptance, "acceptance_source": self.acceptance_source,
                "prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "completion_tokens_max": self.completion_tokens_max,
                "usd": self.usd, "usd_max": self.usd_max}


def estimate(task: Task, quotas: dict[str, int], seed: int, price: Price | None,
             out: Path | None = None) -> Estimate:
    from factory.pipeline import plan_slices

    earlier = OutputFolder(out).read_manifest() if out is not None and out.is_dir() else None
    done = int(earlier.get("generated", 0)) if earlier else 0
    if earlier and done and earlier.get("acceptance_rate"):
        rate, source = float(earlier["acceptance_rate"]), f"the earlier run in {out}"
    else:
        rate, source = ASSUMED_ACCEPTANCE, "assumed (no earlier run)"
    slices = plan_slices(task, quotas)
    planner, renderer = Planner(task, seed), Renderer(task)
    total, prompt_chars, sampled = 0, 0, 0
    for s in slices.values():
        total += min(math.ceil(s.pool / max(rate, 0.01)), s.max_requests)
        for index in range(min(SAMPLE_PER_SLICE, s.max_requests)):
            messages = renderer.messages(planner.request(s.value, index))
            prompt_chars += sum(len(m["content"]) for m in messages)
            sampled += 1
    requests = max(total - done, 0)
    max_tokens = task.config.generation.max_tokens
    if earlier and done and earlier.get("tokens", {}).get("completion"):
        per_answer = earlier["tokens"]["completion"] / done
        per_prompt = earlier["tokens"]["prompt"] / done
    else:
        per_answer = max_tokens / 2
        per_prompt = prompt_chars / max(sampled, 1) / 4 + 12  # ~4 characters a token
    return Estimate(requests, done, rate, source, round(requests * per_prompt),
                    round(requests * per_answer), requests * max_tokens, price)
