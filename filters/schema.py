"""The first filter: a teacher's answer must parse as JSON and validate as a full record.

Reads the answer text and the planned label values; gives the record's fields or a drop reason:
`truncated` (stopped at max_tokens before the JSON closed), `invalid_json`, `not_an_object`,
`missing_field`, `extra_field`, `too_short`, `too_long`, `wrong_type`, `not_in_enum`.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ValidationError

from filters.base import KEEP, Decision, drop

_REASONS = {
    "missing": "missing_field",
    "extra_forbidden": "extra_field",
    "string_too_short": "too_short",
    "string_too_long": "too_long",
    "literal_error": "not_in_enum",
}


class SchemaCheck:
    """`SchemaCheck(model).parse(text, labels={"category": "billing"})` -> (fields, decision)."""

    name = "schema"

    def __init__(self, model: type[BaseModel]) -> None:
        self.model = model

    def parse(self, text: str, labels: dict[str, str],
              finish_reason: str = "stop") -> tuple[dict[str, Any] | None, Decision]:
        try:
            answer = json.loads(text)
        except json.JSONDecodeError as exc:
            reason = "truncated" if finish_reason == "length" else "invalid_json"
            return None, drop(reason, exc.msg)
        if not isinstance(answer, dict):
            return None, drop("not_an_object", type(answer).__name__)
        answer = {k: v.strip() if isinstance(v, str) else v for k, v in answer.items()}
        fields = {**answer, **labels}
        try:
            record = self.model.model_validate(fields)
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(str(p) for p in error["loc"])
            return None, drop(_REASONS.get(error["type"], "wrong_type"), where)
        return record.model_dump(), KEEP
