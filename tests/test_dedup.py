"""Tests of filters.dedup: planted duplicates in real BANKING77 queries, reasons, streaming."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from filters.base import KEEP  # noqa: E402
from filters.dedup import (  # noqa: E402
    Deduplicator,
    ExactDuplicateFilter,
    NearDuplicateFilter,
    lsh_params,
)

BANKING77 = Path(__file__).resolve().parents[2] / "shared" / "data" / "banking77" / "train.csv"


def _load_planter() -> ModuleType:
    path = REPO_ROOT / "scripts" / "plant_duplicates.py"
    spec = importlib.util.spec_from_file_location("plant_duplicates", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


planter = _load_planter()


@pytest.fixture(scope="module")
def banking_texts() -> list[str]:
    assert BANKING77.is_file(), f"missing {BANKING77}"
    texts = planter.load_texts(BANKING77)
    assert len(texts) == 10_003
    return texts


def _scores(rows: list, decisions: list, label: str | None, reason: str | None) -> tuple:
    """(precision, recall) of the rows dropped for ``reason`` against the planted ``label``."""
    flagged = [r for r, d in zip(rows, decisions)
               if not d.keep and (reason is None or d.reason == reason)]
    planted = [r for r in rows if r.label != "original" and (label is None or r.label == label)]
    hits = [r for r in flagged if r.label != "original" and (label is None or r.label == label)]
    return len(hits) / max(1, len(flagged)), len(hits) / len(planted)


# Ground truth. BANKING77 contains natural rewordings of the same query ("How do I top up my
# card?" / "How can I top up my card?"), which a dedup filter may rightly merge. So that only
# planting is measured, the 1,500 originals are picked greedily so that no two have
# word-set Jaccard >= 0.5 (a bag-of-words check independent of the char-shingle MinHash under
# test). 300 near copies (1-2 word edits: swap/insert/delete/typo, plus case and punctuation
# noise, of originals with >= 6 words) and 100 exact copies (case/punctuation/whitespace only)
# are placed after their original. Over seeds 0-3 the defaults measured near P 0.967-0.987,
# R 0.967-0.983; exact P 1.0, R 0.98-1.0; overall P 0.980-0.990, R 0.975-0.988. Remaining
# false positives are real paraphrase pairs the bag-of-words check let through; missed near
# copies are two edits on a six-word query. (An exact copy whose original was itself dropped
# as a near duplicate of another original is reported as near_duplicate of that one.)
@pytest.mark.parametrize("seed", [0, 1])
def test_planted_duplicates_precision_recall(banking_texts: list[str], seed: int) -> None:
    rows = planter.plant(banking_texts, n_originals=1500, n_near=300, n_exact=100, seed=seed,
                         max_word_jaccard=0.5)
    dedup = Deduplicator({"text_fields": ["text"]})
    decisions = dedup.check_records([{"text": r.text} for r in rows], [r.id for r in rows])
    results = {
        "exact": _scores(rows, decisions, "exact", "exact_duplicate"),
        "near": _scores(rows, decisions, "near", "near_duplicate"),
        "all": _scores(rows, decisions, None, None),
    }
    for kind, (precision, recall) in results.items():
        assert precision >= 0.95 and recall >= 0.95, (kind, results)
    for row, decision in zip(rows, decisions):
        if not decision.keep and row.label != "original":
            assert decision.detail.split()[0].startswith("o")  # names an earlier original


def test_planted_rows_are_what_they_claim(banking_texts: list[str]) -> None:
    rows = planter.plant(banking_texts, seed=0)
    by_id = {r.id: r for r in rows}
    position = {r.id: i for i, r in enumerate(rows)}
    norm = planter.normalize
    assert len(rows) == 1900
    for row in rows:
        if row.label == "original":
            continue
        source = by_id[row.source]
        assert position[source.id] < position[row.id]
        assert (norm(row.text) == norm(source.text)) == (row.label == "exact")


def test_exact_duplicate_reason_and_detail() -> None:
    filt = ExactDuplicateFilter()
    assert filt.check("Where is my card?", "a") == KEEP
    decision = filt.check("  WHERE is my card!!", "b")
    assert (decision.keep, decision.reason, decision.detail) == (False, "exact_duplicate", "a")
    assert filt.check("Where is my new card?", "c") == KEEP


def test_near_duplicate_detail_and_first_wins() -> None:
    filt = NearDuplicateFilter()
    first = "I would like to know why my top up was declined yesterday"
    assert filt.check(first, "first") == KEEP
    decision = filt.check("I would like to know why my top-up was declined yesterday evening",
                          "second")
    assert not decision.keep and decision.reason == "near_duplicate"
    other, score = decision.detail.split(" (jaccard ")
    assert other == "first" and 0.6 <= float(score.rstrip(")")) < 1.0
    # the dropped row was not inserted: a copy of it still points at "first"
    again = filt.check("I would like to know why my top-up was declined yesterday evening",
                       "third")
    assert again.detail.startswith("first ")
    assert len(filt) == 1


def test_first_wins_order_matters() -> None:
    a = "How long does a transfer from the US usually take to arrive?"
    b = "How long does a transfer from the US usually take to arrive here?"
    forward = NearDuplicateFilter().check_many([a, b], ["a", "b"])
    backward = NearDuplicateFilter().check_many([b, a], ["b", "a"])
    assert forward[0].keep and not forward[1].keep and forward[1].detail.startswith("a ")
    assert backward[0].keep and not backward[1].keep and backward[1].detail.startswith("b ")


def test_streaming_check_equals_check_many(banking_texts: list[str]) -> None:
    rows = planter.plant(banking_texts, n_originals=400, n_near=80, n_exact=20, seed=5)
    texts, ids = [r.text for r in rows], [r.id for r in rows]
    streamed = NearDuplicateFilter()
    one_by_one = [streamed.check(t, i) for t, i in zip(texts, ids)]
    batched = NearDuplicateFilter().check_many(texts, ids)
    assert one_by_one == batched
    assert sum(not d.keep for d in batched) >= 90
    dedup_one = Deduplicator({"text_fields": ["text"]})
    singles = [dedup_one.check_record({"text": t}, i) for t, i in zip(texts, ids)]
    dedup_many = Deduplicator({"text_fields": ["text"]})
    chunks = [dedup_many.check_texts(texts[k:k + 37], ids[k:k + 37])
              for k in range(0, len(texts), 37)]
    assert singles == [d for chunk in chunks for d in chunk]


def _dedup_with_references() -> Deduplicator:
    dedup = Deduplicator({"text_fields": ["subject", "body"]})
    dedup.add_seeds(["Card not arrived\nI ordered my card two weeks ago and it is still not here"],
                    ["seed-1"])
    dedup.add_decontamination(["Refund\nPlease refund the duplicate charge on my statement"],
                              ["eval-7"])
    return dedup


def test_seed_copy_and_contaminated_have_own_reasons_and_do_not_insert() -> None:
    dedup = _dedup_with_references()
    seed_copy = {"subject": "Card not arrived",
                 "body": "I ordered my card two weeks ago and it is still not here yet"}
    exact_seed = {"subject": "CARD NOT ARRIVED!",
                  "body": "I ordered my card two weeks ago, and it is still not here."}
    contaminated = {"subject": "Refund",
                    "body": "Please refund the duplicate charges on my statement"}
    for fields, reason, ref in ((seed_copy, "seed_copy", "seed-1"),
                                (exact_seed, "seed_copy", "seed-1"),
                                (contaminated, "contaminated", "eval-7")):
        first = dedup.check_record(fields, "r1")
        again = dedup.check_record(fields, "r2")
        assert (first.keep, first.reason) == (False, reason)
        assert first.detail.startswith(ref + " ")
        assert again == first  # still the reference, never "r1": matches are not inserted
    assert dedup.check_record(exact_seed, "r3").detail == "seed-1 (exact)"
    assert len(dedup.stream) == 0 and len(dedup.seeds) == 1 and len(dedup.decontam) == 1


def test_kept_records_are_deduplicated_after_references() -> None:
    dedup = _dedup_with_references()
    fields = {"subject": "App crash", "body": "The app crashes whenever I open the statements tab"}
    assert dedup.check_record(fields, "r1") == KEEP
    assert dedup.check_record(dict(fields), "r2").reason == "exact_duplicate"
    edited = {**fields, "body": "The app crashes whenever I open the statement tab"}
    assert dedup.check_record(edited, "r3").reason == "near_duplicate"
    assert dedup({"subject": "Other", "body": "Completely different question about fees"}) == KEEP


def test_contaminated_takes_precedence_over_seed_copy() -> None:
    dedup = Deduplicator({"text_fields": ["text"]})
    dedup.add_seeds(["what is the exchange rate today"], ["s"])
    dedup.add_decontamination(["what is the exchange rate today"], ["e"])
    assert dedup.check_record({"text": "What is the exchange rate today?"}, "r").reason == (
        "contaminated")


@pytest.mark.parametrize("config", [
    {},
    {"text_fields": []},
    {"text_fields": "text"},
    {"text_fields": ["text"], "shingle": "sentence"},
    {"text_fields": ["text"], "ngram": 0},
    {"text_fields": ["text"], "ngram": 2.5},
    {"text_fields": ["text"], "num_perm": 1},
    {"text_fields": ["text"], "threshold": 0},
    {"text_fields": ["text"], "threshold": 1.5},
    {"text_fields": ["text"], "threshold": "high"},
    {"text_fields": ["text"], "exact": "yes"},
    {"text_fields": ["text"], "treshold": 0.7},
])
def test_bad_config_raises(config: dict) -> None:
    with pytest.raises(ValueError):
        Deduplicator(config)


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError):
        NearDuplicateFilter(shingle="line")
    with pytest.raises(ValueError):
        NearDuplicateFilter().check_many(["a", "b"], ["1"])
    with pytest.raises(ValueError):
        Deduplicator({"text_fields": ["text"]}).check_record({"body": "x"}, "1")


def test_lsh_params_catch_pairs_at_threshold() -> None:
    assert lsh_params(0.6, 128) == (32, 4)
    for threshold in (0.3, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0):
        bands, rows = lsh_params(threshold, 128)
        assert bands * rows <= 128 and bands >= 2
        assert 1 - (1 - threshold**rows) ** bands >= 0.98
