"""The `openai:` teacher against a stub OpenAI-compatible server on 127.0.0.1 (fast): limits,
fallbacks, spending caps, estimates and key hygiene. tests/test_api_vllm.py runs the real vLLM
server behind a fault-injecting proxy."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import datasets
import pytest

from tests.conftest import REPO, run_cli, serve

STUB = str(REPO / "tests" / "openai_stub.py")
KEY = "sk-factory-canary-7f3a9c2e51"


def stub_stats(port: int) -> dict[str, int]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats", timeout=10) as response:
        return json.load(response)


def api_run(port: int, out: Path, *args: str, home: Path, key: str = KEY):
    env = {"FACTORY_API_KEY": key, "FACTORY_HOME": str(home), "OPENAI_API_KEY": ""}
    return run_cli("distill", "--task", "support-tickets", "--teacher", "openai:stub",
                   "--base-url", f"http://127.0.0.1:{port}/v1", "--out", str(out),
                   "--checkpoint-every", "0", *args, env=env)


def files_containing(root: Path, needle: str) -> list[Path]:
    found = []
    for path in root.rglob("*"):
        if path.is_file() and needle.encode() in path.read_bytes():
            found.append(path)
    return found


def teacher_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "teacher.yaml"
    path.write_text(text)
    return path


def test_run_writes_exact_rows_paces_itself_and_the_key_appears_nowhere(tmp_path: Path):
    """The stub checks the key, throttles every 7th request (429, Retry-After 0.5 s) and
    advertises a 600 rpm limit in its headers: every throttled request is retried after a
    client-wide pause, the advertised limit is adopted, and the key leaks nowhere."""
    home = tmp_path / "home"
    with serve([STUB, "--key", KEY, "--throttle-every", "7", "--rpm", "600",
                "--limit-headers"]) as (_, port):
        proc = api_run(port, tmp_path / "out", "-n", "12", "--seed", "4", home=home)
        stats = stub_stats(port)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = datasets.load_dataset(str(tmp_path / "out"), split="train")
    assert len(rows) == 12 == len(set(rows["id"]))
    assert stats.get("unauthorized", 0) == 0 and stats["answered"] >= 12
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["teacher"] == {"kind": "openai", "model": "stub",
                                   "revision": f"http://127.0.0.1:{port}/v1"}
    teacher = manifest["teacher_stats"]
    assert teacher["structured_output"] == "json_schema"
    assert teacher["retries"]["rate_limited"] == stats["rate_limited"] >= 1
    assert teacher["cooldowns"] >= 1 and teacher["requests_per_minute"] == 600
    assert KEY not in proc.stdout + proc.stderr
    assert files_containing(tmp_path, KEY) == []


def test_a_wrong_key_fails_rows_with_the_reason_and_is_not_echoed(tmp_path: Path):
    with serve([STUB, "--key", "the-right-key"]) as (_, port):
        proc = api_run(port, tmp_path / "out", "-n", "2", home=tmp_path / "home")
    assert proc.returncode == 3, proc.stdout + proc.stderr
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["teacher_stats"]["failed"]["http_401"] == manifest["generated"]
    assert "teacher_error" in manifest["dropped"] and manifest["teacher_stats"]["retries"] == {}
    assert files_containing(tmp_path, KEY) == [] and KEY not in proc.stdout + proc.stderr


def test_missing_key_is_one_line_and_writes_nothing(tmp_path: Path):
    proc = run_cli("distill", "--task", "support-tickets", "--teacher", "openai:stub",
                   "--base-url", "http://127.0.0.1:9/v1", "--out", str(tmp_path / "out"),
                   env={"FACTORY_API_KEY": "", "OPENAI_API_KEY": ""})
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "FACTORY_API_KEY" in proc.stderr
    assert not (tmp_path / "out").exists()


def test_configured_rpm_is_kept_and_a_refused_schema_falls_back_to_the_prompt(tmp_path):
    config = teacher_config(tmp_path, "api:\n  requests_per_minute: 300\n  concurrency: 32\n")
    with serve([STUB, "--rpm", "300", "--no-response-format"]) as (_, port):
        proc = api_run(port, tmp_path / "out", "-n", "12", "--teacher-config", str(config),
                       home=tmp_path / "home")
        stats = stub_stats(port)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert stats.get("rate_limited", 0) == 0 and stats["answered"] >= 12
    teacher = json.loads((tmp_path / "out" / "manifest.json").read_text())["teacher_stats"]
    assert teacher["structured_output"] == "prompt"
    assert teacher["retries"]["no_structured_output"] >= 1


def test_estimate_and_dry_run_send_nothing(tmp_path: Path):
    with serve([STUB]) as (_, port):
        estimate = run_cli("estimate", "--task", "support-tickets", "-n", "50",
                           "--teacher", "openai:gpt-4o-mini")
        dry = api_run(port, tmp_path / "out", "-n", "50", "--dry-run", home=tmp_path / "home")
        stats = stub_stats(port)
    assert estimate.returncode == 0 and dry.returncode == 0, estimate.stderr + dry.stderr
    assert "requests" in estimate.stdout and "$" in estimate.stdout
    assert "cost" in dry.stdout and "Nothing was sent" in dry.stdout
    assert stats.get("requests", 0) == 0 and not (tmp_path / "out").exists()


def test_usd_cap_stops_cleanly_and_the_same_command_without_it_continues(tmp_path: Path):
    out, home = tmp_path / "out", tmp_path / "home"
    config = teacher_config(tmp_path, "price: {input: 10.0, output: 10.0}\n")
    common = ["-n", "60", "--batch-size", "12", "--teacher-config", str(config)]
    with serve([STUB]) as (_, port):
        first = api_run(port, out, *common, "--max-usd", "0.6", home=home)
        manifest = json.loads((out / "manifest.json").read_text())
        rows = datasets.load_dataset(str(out), split="train")
        sent = stub_stats(port)["answered"]
        second = api_run(port, out, *common, home=home)
        total = stub_stats(port)["answered"]
    assert first.returncode == 4, first.stdout + first.stderr
    assert "spending cap" in first.stdout and "Continue with" in first.stdout
    assert manifest["stopped"] == "budget" and 0.3 < manifest["spend"]["usd"] <= 0.6
    assert manifest["spend"]["price_per_million"]["input"] == 10.0
    assert 0 < len(rows) == manifest["accepted"] < 60
    assert second.returncode == 0, second.stdout + second.stderr
    final = datasets.load_dataset(str(out), split="train")
    assert len(final) == 60 and set(rows["id"]) <= set(final["id"])
    again = json.loads((out / "manifest.json").read_text())
    assert again["cache"]["hits"] >= sent and total - sent == again["cache"]["new_requests"]
    assert again["spend"]["total_usd"] > again["spend"]["usd"] > 0


def test_token_cap_admits_only_requests_whose_worst_case_fits():
    from factory.budget import Budget, Price

    budget = Budget(max_tokens=1000, price=Price(input=1.0, output=2.0))
    assert budget.allow([(100, 200)] * 5) == 3 and budget.hit
    budget = Budget(max_tokens=1000)
    budget.spend(500, 200)
    assert budget.allow([(100, 200)] * 5) == 1
    dollars = Budget(max_usd=0.001, price=Price(input=1.0, output=2.0))
    assert dollars.allow([(100, 200)] * 5) == 2  # 0.0005 USD each


def test_usd_cap_without_a_price_is_refused(tmp_path: Path):
    proc = run_cli("distill", "--task", "support-tickets", "--teacher", "openai:no-such-model",
                   "--max-usd", "1", "--out", str(tmp_path / "out"),
                   env={"FACTORY_API_KEY": KEY})
    assert proc.returncode == 2 and "--max-usd" in proc.stderr and "price" in proc.stderr
    assert not (tmp_path / "out").exists()
