"""`factory filter` on real BANKING77 queries with planted duplicates: precision and recall."""

from __future__ import annotations

import importlib.util
import json
import sys
from dataclasses import asdict
from pathlib import Path

import datasets
import pytest

from tests.conftest import REPO, run_cli

_spec = importlib.util.spec_from_file_location("plant", REPO / "scripts" / "plant_duplicates.py")
plant_duplicates = importlib.util.module_from_spec(_spec)
sys.modules["plant"] = plant_duplicates
_spec.loader.exec_module(plant_duplicates)


@pytest.fixture(scope="module")
def filtered(tmp_path_factory) -> tuple[Path, list[dict]]:
    folder = tmp_path_factory.mktemp("filter")
    rows = [asdict(r) for r in plant_duplicates.plant(plant_duplicates.load_texts(), 1500, 300,
                                                      100, seed=3)]
    source = folder / "planted.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    proc = run_cli("filter", str(source), "--out", str(folder / "out"), "--text-field", "text",
                   "--label-field", "label")
    assert proc.returncode == 0, proc.stderr
    assert "Filter summary" in proc.stdout
    return folder / "out", rows


def test_planted_duplicates_found_with_precision_and_recall(filtered):
    out, rows = filtered
    rejected = datasets.load_dataset(str(out), "rejected", split="train")
    flagged = {r["id"] for r in rejected if r["reason"] in ("exact_duplicate", "near_duplicate")}
    planted = {r["id"] for r in rows if r["label"] in ("near", "exact")}
    true_positives = len(flagged & planted)
    precision, recall = true_positives / len(flagged), true_positives / len(planted)
    assert precision >= 0.95 and recall >= 0.95, (precision, recall)


def test_output_has_the_distill_layout(filtered):
    out, rows = filtered
    kept = datasets.load_dataset(str(out), split="train")
    rejected = datasets.load_dataset(str(out), "rejected", split="train")
    assert len(kept) + len(rejected) == len(rows)
    assert {"id", "text", "label"} <= set(kept.column_names)
    assert {"id", "text", "reason", "detail"} <= set(rejected.column_names)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["input_rows"] == len(rows) and manifest["accepted"] == len(kept)
    assert sum(manifest["dropped"].values()) == len(rejected)
    heuristic_drops = sum(n for r, n in manifest["dropped"].items()
                          if r not in ("exact_duplicate", "near_duplicate"))
    assert heuristic_drops <= 0.01 * len(rows)  # real queries pass the quality heuristics
    assert manifest["diversity"]["vendi"] > 1


def test_only_and_bad_input(tmp_path):
    source = tmp_path / "in.csv"
    source.write_text("text\nhello there\nhello there\nI am sorry but as an AI I cannot help\n")
    proc = run_cli("filter", str(source), "--out", str(tmp_path / "o"), "--only", "exact")
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((tmp_path / "o" / "manifest.json").read_text())
    assert manifest["dropped"] == {"exact_duplicate": 1}
    bad = run_cli("filter", str(source), "--out", str(tmp_path / "p"), "--only", "exact,magic")
    assert bad.returncode == 2 and "--only" in bad.stderr and "magic" in bad.stderr
    missing = run_cli("filter", str(source), "--out", str(tmp_path / "q"), "--text-field", "body")
    assert missing.returncode == 2 and "body" in missing.stderr and str(source) in missing.stderr
    assert not (tmp_path / "q").exists()


BAD_ROWS = [
    {"id": "bad-refusal", "text": "As an AI language model, I cannot help with that request."},
    {"id": "bad-template", "text": "Hello {{ customer_name }}, where is my new card?"},
    {"id": "bad-pii", "text": "my card number is 4111 1111 1111 1111, why was it declined"},
]


@pytest.mark.ray
def test_engine_ray_gives_the_local_decisions(filtered, tmp_path):
    """The same input on a local Ray instance (heuristics as a Ray Data stage, dedup by band-key
    grouping): every kept row and every dropped row with its reason and detail as locally."""
    pytest.importorskip("ray")
    out, rows = filtered
    source = tmp_path / "planted.jsonl"
    extra = [{**r, "label": "bad", "source": None} for r in BAD_ROWS]
    source.write_text("".join(json.dumps(r) + "\n" for r in rows + extra))
    proc = run_cli("filter", str(source), "--out", str(tmp_path / "ray"), "--text-field", "text",
                   "--label-field", "label", "--engine", "ray")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "on Ray (local instance)" in proc.stdout and "INFO" not in proc.stdout + proc.stderr

    def decisions(folder):
        rejected = datasets.load_dataset(str(folder), "rejected", split="train")
        return ({r["id"]: (r["reason"], r["detail"]) for r in rejected},
                datasets.load_dataset(str(folder), split="train")["id"])

    local_dropped, local_kept = decisions(out)
    ray_dropped, ray_kept = decisions(tmp_path / "ray")
    assert ray_kept == local_kept
    bad = {k: ray_dropped.pop(k)[0] for k in [r["id"] for r in BAD_ROWS]}
    assert bad == {"bad-refusal": "refusal", "bad-template": "template_leftover",
                   "bad-pii": "pii"}
    assert ray_dropped == local_dropped
    manifest = json.loads((tmp_path / "ray" / "manifest.json").read_text())
    assert manifest["engine"]["kind"] == "ray"
    assert manifest["engine"]["dedup"]["verified_pairs"] >= 250
