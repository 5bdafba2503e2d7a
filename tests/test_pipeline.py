"""The quota loop and the output folder, with a scripted teacher (the teacher is not the subject
here; tests/test_embedded.py runs the real one)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import datasets
import pytest

from factory.output import OutputFolder
from factory.pipeline import RunOptions, distill
from factory.plan import Planner
from factory.tasks import load_task
from factory.teachers.base import TeachRequest, TeachResult
from tests.tickets import ticket


class ScriptedTeacher:
    """Answers with varied plain-English tickets composed from a request's sampling seed;
    `bad(request)` picks broken answers, `text(request)` may override an answer."""

    def __init__(self, bad=lambda request: False, text=None) -> None:
        self.bad = bad
        self.text = text
        self.calls: list[int] = []

    def identity(self) -> dict[str, str]:
        return {"kind": "scripted", "model": "rule", "revision": "1"}

    def describe(self) -> str:
        return "scripted:rule"

    def start(self) -> None:
        pass

    def answer(self, r: TeachRequest) -> dict[str, str]:
        return ticket(r.sampling.seed)

    def generate(self, requests: list[TeachRequest], on_answer=None):
        self.calls.append(len(requests))
        for r in requests:
            if r.json_schema and "rationale" in r.json_schema["properties"]:
                yield TeachResult(r.key, self.verdict(r), prompt_tokens=80, completion_tokens=20)
                continue
            custom = self.text(r) if self.text else None
            text = custom or ("{broken" if self.bad(r) else json.dumps(self.answer(r)))
            yield TeachResult(r.key, text, prompt_tokens=100, completion_tokens=50)

    def verdict(self, r: TeachRequest) -> str:
        """A judge's answer: low scores for tickets about the parcel tracking page."""
        content = r.messages[-1]["content"]
        score = 1 if "tracking page" in content else 4
        criteria = [k for k in r.json_schema["properties"] if k != "rationale"]
        return json.dumps({**{c: score for c in criteria}, "rationale": f"scored {score}"})

    def close(self) -> None:
        pass


@pytest.fixture(scope="module")
def task():
    return load_task("support-tickets")


def test_quotas_met_exactly_and_dataset_loads(task, tmp_path: Path):
    teacher = ScriptedTeacher(bad=lambda r: r.sampling.seed % 3 == 0)
    result = distill(task, teacher, RunOptions(out=tmp_path / "d", num_records=30, seed=1))
    assert result.complete and sum(len(s.rows) for s in result.slices.values()) == 30
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
    assert set(rejected["reason"]) <= {"invalid_json", "surplus", "not_selected",
                                       "near_duplicate", "exact_duplicate"}
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


def test_filters_drop_refusals_seed_copies_duplicates_and_eval_rows(task, tmp_path: Path):
    seed_body = task.seeds[0].record["body"]

    def text(r):
        answer = ScriptedTeacher().answer(r)
        kind = r.sampling.seed % 7
        if kind == 1:
            answer["reply"] = ("As an AI language model, I cannot help with that request. "
                               "Please contact a human agent for this ticket.")
        elif kind == 2:
            answer["body"] = seed_body
        elif kind == 3:
            answer["subject"] = "Charged twice"
            answer["body"] = "Hello, the app charged my card twice for the same monthly plan."
        return json.dumps(answer)

    planner = Planner(task, 0)
    leak = next(r for r in (planner.request("billing", i) for i in range(50))
                if r.seed % 7 not in (1, 2, 3))
    leaked = ScriptedTeacher().answer(SimpleNamespace(sampling=SimpleNamespace(seed=leak.seed)))
    eval_file = tmp_path / "eval.jsonl"
    eval_file.write_text(json.dumps({"text": f"{leaked['subject']}\n{leaked['body']}"}) + "\n")
    result = distill(task, ScriptedTeacher(text=text),
                     RunOptions(out=tmp_path / "d", num_records=18, decontaminate=eval_file))
    assert result.complete
    manifest = json.loads((tmp_path / "d" / "manifest.json").read_text())
    for reason in ("refusal", "seed_copy", "exact_duplicate", "contaminated", "not_selected"):
        assert manifest["dropped"].get(reason, 0) >= 1, (reason, manifest["dropped"])
    rejected = datasets.load_dataset(str(tmp_path / "d"), "rejected", split="train")
    seed_copies = [r for r in rejected if r["reason"] == "seed_copy"]
    assert all(task.seeds[0].id in r["detail"] for r in seed_copies)
    rows = datasets.load_dataset(str(tmp_path / "d"), split="train")
    assert len(rows) == 18 and seed_body not in rows["body"]
    assert leaked["body"] not in rows["body"]
    assert not any("As an AI" in reply for reply in rows["reply"])


def test_selection_keeps_quota_of_a_larger_pool_and_measures_diversity(task, tmp_path: Path):
    result = distill(task, ScriptedTeacher(), RunOptions(out=tmp_path / "d", num_records=24))
    manifest = json.loads((tmp_path / "d" / "manifest.json").read_text())
    assert manifest["accepted"] == 24
    pools = [s["pool"] for s in manifest["slices"].values()]
    assert pools == [5] * 6  # ceil(4 x 1.25)
    passed = sum(s.accepted for s in result.slices.values())
    assert manifest["dropped"]["not_selected"] == passed - 24
    div = manifest["diversity"]
    assert div["rows"] == 24 and 1.0 < div["vendi"] <= 24 and 0 < div["distinct_2"] <= 1
    card = (tmp_path / "d" / "README.md").read_text()
    assert "## Diversity" in card and "k-center" in card and "refusal" in card


def test_judge_scores_rows_drops_low_ones_and_reports_agreement(task, tmp_path: Path):
    teacher = ScriptedTeacher()
    result = distill(task, teacher, RunOptions(out=tmp_path / "d", num_records=12),
                     judge_teacher=teacher)
    assert result.complete
    rows = datasets.load_dataset(str(tmp_path / "d"), split="train")
    assert all(r["judge"]["mean"] == 4.0 and r["judge"]["rationale"] for r in rows)
    assert set(rows[0]["judge"]["scores"]) == set(task.config.filters.judge.criteria)
    assert not any("tracking page" in b for b in rows["body"])
    manifest = json.loads((tmp_path / "d" / "manifest.json").read_text())
    assert manifest["dropped"]["judge"] >= 1
    judge = manifest["judge"]
    assert judge["judged"] >= 12 and judge["agreement"]["pairs"] == 16
    assert judge["agreement"]["exact"] == 1.0 and judge["warning"] is None
    assert "## Judge" in (tmp_path / "d" / "README.md").read_text()
    again = ScriptedTeacher()
    distill(task, again, RunOptions(out=tmp_path / "d", num_records=12), judge_teacher=again)
    assert again.calls == []  # generation and judge answers both come from the cache


def test_a_changed_template_regenerates_only_what_it_affects(task, task_dir, tmp_path: Path):
    out = tmp_path / "d"
    first = ScriptedTeacher()
    distill(task, first, RunOptions(out=out, num_records=12, seed=2))
    user = task_dir / "prompts" / "user.j2"
    user.write_text(user.read_text() + "{% if labels.category == 'billing' %}\n"
                    "Mention the invoice number.{% endif %}\n")
    changed = load_task(str(task_dir / "task.yaml"))
    again = ScriptedTeacher()
    result = distill(changed, again, RunOptions(out=out, num_records=12, seed=2))
    assert result.complete and sum(again.calls) > 0
    billing = result.slices["billing"].next_index
    assert sum(again.calls) == billing  # only the billing prompts changed
    assert result.stats.cache_hits == result.stats.requests - billing


def test_rows_written_at_a_checkpoint_or_interruption_stay_in_the_dataset(task, tmp_path: Path,
                                                                       monkeypatch):
    """Selection runs on blocks whose rows are final, so no checkpoint's row is ever replaced by
    a more diverse later candidate, and an interrupted run's rows survive its resume."""
    import factory.pipeline as pipeline

    written: list[set[str]] = []
    original = pipeline.write

    def spy(out, task, teacher, options, run, selection, **kwargs):
        written.append({c.teach.key for c in selection.rows})
        return original(out, task, teacher, options, run, selection, **kwargs)

    monkeypatch.setattr(pipeline, "write", spy)

    class Interrupting(ScriptedTeacher):
        def generate(self, requests, on_answer=None):
            if len(self.calls) == 5:
                raise KeyboardInterrupt
            yield from super().generate(requests, on_answer)

    out = tmp_path / "d"
    options = RunOptions(out=out, num_records=60, seed=3, batch_size=8, checkpoint_seconds=0)
    stopped = distill(task, Interrupting(), options)
    manifest = json.loads((out / "manifest.json").read_text())
    assert stopped.interrupted and manifest["pending_selection"] == stopped.pending > 0
    before = written[-1]
    assert 0 < len(before) < 60 and len(written) >= 4
    assert all(len(s.rows) % 8 == 0 for s in stopped.slices.values())  # whole blocks only
    result = distill(task, ScriptedTeacher(), options, runs=2)
    final = {c.teach.key for c in selection_rows(result)}
    assert result.complete and len(final) == 60
    assert all(keys <= final for keys in written)
    # The same rows as a run that was never interrupted.
    fresh = distill(task, ScriptedTeacher(), RunOptions(out=tmp_path / "e", num_records=60,
                                                        seed=3, batch_size=8))
    assert {c.teach.key for c in selection_rows(fresh)} == final


def selection_rows(result) -> list:
    return [c for s in result.slices.values() for c in s.rows]
