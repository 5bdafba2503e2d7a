"""The LLM judge: a rubric's per-criterion scores (1–5) and a short rationale, then keep or drop.

This module holds what does not depend on who asks the model: the structured-output schema of a
verdict for a given criteria order, parsing a verdict into a decision, and the agreement between
two verdicts of one row given with the criteria in different orders (a cheap check that the judge
reads the rubric rather than the position of a criterion). The pipeline renders the rubric, sends
the requests to a teacher and caches the answers.

>>> schema = verdict_schema(["realism", "label_fit"])
>>> verdict, decision = parse_verdict('{"realism": 4, "label_fit": 2, "rationale": "ok"}',
...                                   ["realism", "label_fit"], threshold=3.5)
>>> decision.reason, verdict["mean"]
('judge', 3.0)
"""

from __future__ import annotations

import json
from typing import Any, Sequence

from filters.base import KEEP, Decision, drop

RATIONALE_CHARS = 400


def verdict_schema(criteria: Sequence[str]) -> dict[str, Any]:
    """JSON schema of a verdict: one integer 1–5 per criterion, in this order, then a rationale."""
    properties: dict[str, Any] = {c: {"type": "integer", "enum": [1, 2, 3, 4, 5]} for c in criteria}
    properties["rationale"] = {"type": "string", "maxLength": RATIONALE_CHARS}
    return {"type": "object", "properties": properties,
            "required": [*criteria, "rationale"], "additionalProperties": False}


def parse_verdict(text: str, criteria: Sequence[str],
                  threshold: float) -> tuple[dict[str, Any] | None, Decision]:
    """Scores, mean and rationale from a judge's answer; drop `judge` below `threshold`, or
    `judge_invalid` when the answer is not a verdict."""
    try:
        answer = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, drop("judge_invalid", f"not JSON ({exc.msg})")
    if not isinstance(answer, dict):
        return None, drop("judge_invalid", "not an object")
    scores = {}
    for criterion in criteria:
        value = answer.get(criterion)
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 5:
            return None, drop("judge_invalid", f"{criterion}: {value!r} is not a score 1-5")
        scores[criterion] = value
    mean = sum(scores.values()) / len(scores)
    verdict = {"scores": scores, "mean": round(mean, 3),
               "rationale": str(answer.get("rationale", ""))[:RATIONALE_CHARS]}
    if mean < threshold:
        weakest = min(scores, key=lambda c: scores[c])
        return verdict, drop("judge", f"mean {mean:.2f} < {threshold}; lowest {weakest}="
                                      f"{scores[weakest]}")
    return verdict, KEEP


def agreement(pairs: Sequence[tuple[dict[str, int], dict[str, int]]]) -> dict[str, Any]:
    """How two verdicts of the same rows agree, criterion by criterion.

    `exact`: share of scores that are equal; `within_one`: share at most 1 apart;
    `mean_abs_diff`: mean absolute difference; `pairs`: rows compared.
    """
    diffs = [abs(a[c] - b[c]) for a, b in pairs for c in a if c in b]
    if not diffs:
        return {"pairs": 0, "exact": None, "within_one": None, "mean_abs_diff": None}
    return {
        "pairs": len(pairs),
        "exact": round(sum(d == 0 for d in diffs) / len(diffs), 4),
        "within_one": round(sum(d <= 1 for d in diffs) / len(diffs), 4),
        "mean_abs_diff": round(sum(diffs) / len(diffs), 4),
    }
