"""The quota loop and the output folder, with a scripted teacher (the teacher is not the subject
here; tests/test_embedded.py runs the real one)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import datasets
import pytest

from factory.output import OutputFolder
from factory.pipeline import RunOptions, distill
from factory.tasks import load_task
from factory.teachers.base import TeachRequest, TeachResult


class ScriptedTeacher:
    """Answers from a rule: `bad(request)` decides which answers are broken JSON."""

    def __init__(self, bad=lambda request: False) -> None:
        self.bad = bad
        self.calls: list[int] = []

    def identity(self) -> dict[str, str]:
        return {"kind": "scripted", "model": "rule", "revision": "1"}

    def describe(self) -> str:
        return "scripted:rule"

    def start(self) -> None:
        pass

    def generate(self, requests: list[TeachRequest]):
        self.calls.append(len(requests))
        for r in requests:
            rng = random.Random(r.sampling.seed)
            words = " ".join(rng.choice(["card", "app", "refund", "hub", "login", "order",
                                         "charge", "screen", "delivery"]) for _ in range(20))
            answer = {"subject": f"Ticket {r.sampling.seed}", "body": f"My problem: {words}.",
                      "reply": f"Thanks for writing in about the {words[:40]}, we are on it."}
            text = "{broken" if self.bad(r) else json.dumps(answer)
            yield TeachResult(r.key, text, prompt_tokens=100, completion_tokens=50)

    def close(self) -> None:
        pass


@pytest.fixture(scope="module")
def task():
    return load_task("support-tickets")


def test_quotas_met_exactly_and_dataset_loads(task, tmp_path: Path):
    teacher = ScriptedTeacher(bad=lambda r: r.sampling.seed % 3 == 0)
    result = distill(task, teacher, RunOptions(out=tmp_path / "d", num_records=30, seed=1))
    assert result.complete and result.stats.accepted == 30
    ds = datasets.load_dataset(str(tmp_path / "d"), split="train")
    assert len(ds) == 30 and len(set(ds["id"])) == 30
    assert {"id", "subject", "body", "category", "priority", "reply", "messages",
            "provenance"} <= set(ds.column_names)
    per_category = {c: ds["category"].count(c) for c in set(ds["category"])}
    assert per_category == {c: 5 for c in task.config.fields["category"].enum}
    manifest = json.loads((tmp_path / "d" / "manifest.json").read_text())
    assert manifest["accepted"] == 30 and manifest["dropped"]["invalid_json"] > 0
    assert manifest["generated"] == (manifest["accepted"] + manifest["surplus"]
                                     + sum(manifest["dropped"].values()))
    rejected = datasets.load_dataset(str(tmp_path / "d"), "rejected", split="train")
    assert set(rejected["reason"]) <= {"invalid_json", "surplus"}
    assert len(rejected) == manifest["generated"] - 30


def test_messages_and_provenance(task, tmp_path: Path):
    distill(task, ScriptedTeacher(), RunOptions(out=tmp_path / "d", num_records=6))
    row = datasets.load_dataset(str(tmp_path / "d"), split="train")[0]
    roles = [m["role"] for m in row["messages"]]
    assert roles == ["system", "user", "assistant"]
    assert row["subject"] in row["messages"][1]["content"]
    assert json.loads(row["messages"][2]["content"])["category"] == row["category"]
    prov = row["provenance"]
    assert prov["teacher"] == "scripted:rule"
    assert set(prov["template_sha256"]) == {"system", "user"}
    assert len(prov["seed_ids"]) == task.config.seeds.per_request
    assert set(prov["attributes"]) == set(task.config.attributes)
    assert prov["sampling"]["seed"] > 0 and prov["sampling"]["temperature"] == 0.9


def test_unfillable_slice_stops_with_reasons(task, tmp_path: Path):
    teacher = ScriptedTeacher(bad=lambda r: "Category: shipping." in r.messages[1]["content"])
    result = distill(task, teacher, RunOptions(out=tmp_path / "d", num_records=12))
    assert not result.complete
    shipping = result.slices["shipping"]
    assert shipping.accepted == 0 and shipping.exhausted
    assert shipping.next_index == shipping.max_requests
    assert shipping.dropped == {"invalid_json": shipping.max_requests}
    assert all(s.deficit == 0 for v, s in result.slices.items() if v != "shipping")
    manifest = OutputFolder(tmp_path / "d").read_manifest()
    assert manifest["complete"] is False and manifest["accepted"] == 10


def test_rerun_is_answered_from_the_cache(task, tmp_path: Path):
    first = ScriptedTeacher(bad=lambda r: r.sampling.seed % 4 == 0)
    distill(task, first, RunOptions(out=tmp_path / "d", num_records=12, seed=5))
    ids = datasets.load_dataset(str(tmp_path / "d"), split="train")["id"]
    again = ScriptedTeacher(bad=lambda r: r.sampling.seed % 4 == 0)
    result = distill(task, again, RunOptions(out=tmp_path / "d", num_records=12, seed=5))
    assert again.calls == [] and result.stats.cache_hits == result.stats.requests
    assert datasets.load_dataset(str(tmp_path / "d"), split="train")["id"] == ids
