"""The schema check names why an answer is dropped."""

from __future__ import annotations

import json

import pytest

from factory.tasks import load_task
from filters.schema import SchemaCheck

LABELS = {"category": "billing", "priority": "low"}
GOOD = {"subject": "Charged twice this month", "body": ("Hello, I see two charges " * 4).strip(),
        "reply": "Sorry about that, we will look into the duplicate charge right away."}


@pytest.fixture(scope="module")
def check() -> SchemaCheck:
    return SchemaCheck(load_task("support-tickets").record_model)


def test_valid_answer_is_kept_with_labels_merged(check):
    fields, decision = check.parse(json.dumps(GOOD), LABELS)
    assert decision.keep and fields == {**GOOD, **LABELS}


@pytest.mark.parametrize("answer,finish,reason", [
    ('{"subject": "cut off', "length", "truncated"),
    ("not json at all", "stop", "invalid_json"),
    ('["a list"]', "stop", "not_an_object"),
    (json.dumps({k: v for k, v in GOOD.items() if k != "reply"}), "stop", "missing_field"),
    (json.dumps({**GOOD, "mood": "angry"}), "stop", "extra_field"),
    (json.dumps({**GOOD, "body": "too short"}), "stop", "too_short"),
    (json.dumps({**GOOD, "reply": "x" * 1001}), "stop", "too_long"),
    (json.dumps({**GOOD, "subject": 42}), "stop", "wrong_type"),
])
def test_drop_reasons(check, answer, finish, reason):
    fields, decision = check.parse(answer, LABELS, finish)
    assert not decision.keep and decision.reason == reason


def test_label_outside_enum_is_dropped(check):
    _, decision = check.parse(json.dumps(GOOD), {"category": "weather", "priority": "low"})
    assert decision.reason == "not_in_enum" and decision.detail == "category"
