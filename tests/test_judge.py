"""The judge's verdict schema, parsing, and the agreement check."""

from __future__ import annotations

import json

import pytest

from filters.judge import agreement, parse_verdict, verdict_schema

CRITERIA = ["realism", "label_fit", "reply_quality"]


def test_schema_lists_criteria_in_the_given_order():
    schema = verdict_schema(list(reversed(CRITERIA)))
    assert list(schema["properties"]) == [*reversed(CRITERIA), "rationale"]
    assert schema["properties"]["realism"]["enum"] == [1, 2, 3, 4, 5]


def test_verdict_kept_or_dropped_by_mean():
    text = json.dumps({"realism": 5, "label_fit": 2, "reply_quality": 3, "rationale": "meh"})
    verdict, decision = parse_verdict(text, CRITERIA, threshold=3.0)
    assert decision.keep and verdict["mean"] == pytest.approx(3.333, abs=1e-3)
    verdict, decision = parse_verdict(text, CRITERIA, threshold=3.5)
    assert decision.reason == "judge" and "label_fit=2" in decision.detail
    assert verdict["rationale"] == "meh"


@pytest.mark.parametrize("text", ["nope", "[1, 2]", json.dumps({"realism": 6}),
                                  json.dumps({"realism": True, "label_fit": 3,
                                              "reply_quality": 3, "rationale": ""})])
def test_invalid_verdicts(text):
    verdict, decision = parse_verdict(text, CRITERIA, threshold=3.0)
    assert verdict is None and decision.reason == "judge_invalid"


def test_agreement_counts():
    same = [({"a": 3, "b": 4}, {"a": 3, "b": 4})]
    assert agreement(same) == {"pairs": 1, "exact": 1.0, "within_one": 1.0, "mean_abs_diff": 0.0}
    mixed = [({"a": 1, "b": 4}, {"a": 5, "b": 3})]
    assert agreement(mixed) == {"pairs": 1, "exact": 0.0, "within_one": 0.5,
                                "mean_abs_diff": 2.5}
    assert agreement([])["exact"] is None


def test_position_biased_judge_gets_a_warning(tmp_path):
    from factory.pipeline import RunOptions, distill
    from factory.tasks import load_task
    from tests.test_pipeline import ScriptedTeacher

    class FirstCriterionLover(ScriptedTeacher):
        def verdict(self, r):
            criteria = [k for k in r.json_schema["properties"] if k != "rationale"]
            return json.dumps({**{c: 2 for c in criteria}, criteria[0]: 5, "rationale": "x"})

    teacher = FirstCriterionLover()
    task = load_task("support-tickets")
    distill(task, teacher, RunOptions(out=tmp_path / "d", num_records=6),
            judge_teacher=teacher)
    manifest = json.loads((tmp_path / "d" / "manifest.json").read_text())
    assert manifest["judge"]["agreement"]["within_one"] < 0.7
    assert "low agreement" in manifest["judge"]["warning"]
    assert "Warning: low agreement" in (tmp_path / "d" / "README.md").read_text()
