"""The banking-intents task: seeds are a fixed part of BANKING77's train.csv, given by --seeds."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import pytest

from factory.errors import FactoryError
from factory.tasks import load_task
from tests.conftest import REPO, run_cli

BANKING = Path("/work/shared/data/banking77/train.csv")
if not BANKING.is_file():
    BANKING = REPO.parent / "shared" / "data" / "banking77" / "train.csv"

sys.path.insert(0, str(REPO / "scripts"))
import banking_split  # noqa: E402


@pytest.fixture(scope="module")
def rows() -> list[dict[str, str]]:
    with BANKING.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_task_takes_the_first_five_rows_of_each_intent(rows):
    task = load_task("banking-intents", seeds_path=str(BANKING))
    labels = task.config.fields["category"].enum
    categories = json.loads((BANKING.parent / "categories.json").read_text())
    assert labels == categories and len(labels) == 77
    assert len(task.seeds) == 77 * 5
    first = [r for r in rows if r["category"] == "card_arrival"][:5]
    mine = [s.record["text"] for s in task.seeds if s.record["category"] == "card_arrival"]
    assert mine == [r["text"] for r in first]
    assert task.seeds[0].id == "line-2"  # ids are the CSV line numbers (provenance)


def test_seeds_are_required_and_named_in_the_error():
    with pytest.raises(FactoryError) as caught:
        load_task("banking-intents")
    assert caught.value.field == "--seeds"
    assert load_task("banking-intents", require_seeds=False).seeds == []
    proc = run_cli("preview", "--task", "banking-intents", "-n", "1")
    assert proc.returncode == 2 and "--seeds" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_split_parts_are_disjoint_and_the_real_part_equals_the_seeds(rows):
    real, test = banking_split.split(rows, 5, 10)
    assert len(real) == 385 and len(test) == 770
    assert not {id(r) for r in real} & {id(r) for r in test}
    task = load_task("banking-intents", seeds_path=str(BANKING))
    assert [r["text"] for r in real] == [s.record["text"] for s in task.seeds]
