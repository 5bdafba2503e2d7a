"""Augment mode: each request rewrites one source row and keeps its label; provenance names the
source; a copy of its source is dropped; requests are deterministic (a rerun is all cache)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import datasets
import pytest

from factory.pipeline import RunOptions, distill
from factory.plan import Planner
from factory.render import Renderer
from factory.tasks import load_task
from tests.test_pipeline import ScriptedTeacher
from tests.tickets import ASKS, DETAILS, OPENINGS, PROBLEMS

SOURCES = {
    "card_arrival": ["My card still hasn't arrived after two weeks.",
                     "When will the new card be delivered to me?",
                     "I ordered a card last Monday and nothing came in the post.",
                     "Is there a way to track the card you sent me?"],
    "exchange_rate": ["What exchange rate do you use for euros?",
                      "How do you work out the rate when I pay abroad?",
                      "Is the currency rate in the app the one I will get?"],
    "top_up_failed": ["My top up did not go through, why?",
                      "I tried adding money from my card and it failed twice."],
}


@pytest.fixture
def task(tmp_path: Path):
    path = tmp_path / "sources.csv"
    lines = ["text,category"] + [f'"{t}",{label}' for label, texts in SOURCES.items()
                                 for t in texts]
    path.write_text("\n".join(lines) + "\n")
    return load_task("banking-augment", seeds_path=str(path))


def source_of(request) -> str:
    line = next(x for x in request.messages[1]["content"].splitlines() if x.startswith("{"))
    return json.loads(line)["text"]


def rewrite(request) -> str:
    """Every fifth answer copies its source; the others are varied new messages."""
    if request.sampling.seed % 5 == 0:
        return json.dumps({"text": source_of(request)})
    rng = random.Random(request.sampling.seed)
    problem = rng.choice(PROBLEMS)
    text = " ".join([rng.choice(OPENINGS), problem[0].upper() + problem[1:] + ".",
                     rng.choice(DETAILS), rng.choice(ASKS)])
    return json.dumps({"text": text})


def test_plan_walks_sources_of_the_slice_and_rotates_rewrites(task):
    planner = Planner(task, 3)
    assert planner.quotas(9) == {"card_arrival": 3, "exchange_rate": 3, "top_up_failed": 3}
    ids = {s.id: s.record for s in task.seeds}
    first_round = [planner.request("card_arrival", j) for j in range(4)]
    assert {r.source_id for r in first_round} == {
        s.id for s in task.seeds if s.record["category"] == "card_arrival"}
    for r in first_round:
        assert dict(r.labels) == {"category": ids[r.source_id]["category"]}
        assert r.seed_ids == ()
    again = [planner.request("card_arrival", j) for j in range(4, 8)]
    by_source = {r.source_id: r.rewrite for r in first_round}
    assert all(by_source[r.source_id] != r.rewrite for r in again)
    assert [Planner(task, 3).request("exchange_rate", j) for j in range(5)] == [
        planner.request("exchange_rate", j) for j in range(5)]
    request = first_round[0]
    user = Renderer(task).messages(request)[1]["content"]
    assert ids[request.source_id]["text"] in user
    assert task.config.augment.rewrites[request.rewrite] in user


def test_augment_run_keeps_labels_records_sources_and_drops_copies(task, tmp_path: Path):
    out = tmp_path / "d"
    first = ScriptedTeacher(text=rewrite)
    result = distill(task, first, RunOptions(out=out, num_records=9, seed=1))
    assert result.complete
    ds = datasets.load_dataset(str(out), split="train")
    sources = {s.id: s.record for s in task.seeds}
    for row in ds:
        prov = row["provenance"]
        assert prov["source_id"] in sources
        assert row["category"] == sources[prov["source_id"]]["category"]
        assert prov["rewrite"] in task.config.augment.rewrites
        assert row["text"] != sources[prov["source_id"]]["text"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["dropped"].get("seed_copy", 0) > 0
    again = ScriptedTeacher(text=rewrite)
    rerun = distill(task, again, RunOptions(out=out, num_records=9, seed=1))
    assert again.calls == [] and rerun.stats.cache_hits == rerun.stats.requests
