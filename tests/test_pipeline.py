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

    def generate(self, requests: list[TeachRequest], on_answer=None):
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


def test_folder_of_another_task_is_refused_unless_fresh(task, task_dir, tmp_path: Path):
    from factory.cli import prepare_output
    from factory.errors import FactoryError

    out = tmp_path / "d"
    distill(task, ScriptedTeacher(), RunOptions(out=out, num_records=6))
    OutputFolder(out).begin(task)
    path = task_dir / "task.yaml"
    path.write_text(path.read_text().replace("name: support-tickets", "name: other"))
    other = load_task(str(path))
    with pytest.raises(FactoryError, match="incompatible"):
        prepare_output(out, other, fresh=False)
    prepare_output(out, other, fresh=True)
    assert not out.exists()
    assert prepare_output(out, task, fresh=False).read_state() is None


def test_fill_gaps_quotas_from_real_labels(task, tmp_path: Path):
    from factory.cli import fill_gap_quotas
    from factory.errors import FactoryError

    real = tmp_path / "real.csv"
    rows = ["text,team"] + [f"billing question {i},billing" for i in range(7)]
    rows += [f"parcel {i},shipping" for i in range(3)] + ["login,account_access"]
    real.write_text("\n".join(rows) + "\n")
    quotas = fill_gap_quotas(task, real, "team", None)
    assert quotas == {"billing": 0, "technical": 7, "account_access": 6, "shipping": 4,
                      "returns_refunds": 7, "product_question": 7}
    result = distill(task, ScriptedTeacher(), RunOptions(out=tmp_path / "d", num_records=31,
                                                         quotas=quotas))
    assert result.complete
    ds = datasets.load_dataset(str(tmp_path / "d"), split="train")
    assert ds["category"].count("technical") == 7 and ds["category"].count("billing") == 0
    with pytest.raises(FactoryError, match="no column 'label'"):
        fill_gap_quotas(task, real, "label", None)
    real.write_text("text,team\nhello,weather\n")
    with pytest.raises(FactoryError, match="weather"):
        fill_gap_quotas(task, real, "team", None)
