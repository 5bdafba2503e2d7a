"""The `openai:` teacher against the real vLLM OpenAI-compatible server with the embedded model,
on 127.0.0.1, behind a proxy that injects 429s, 5xx, stalls, dropped connections and malformed
bodies. The same run judges its rows through the same server (the judge on the real model)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import datasets
import psutil
import pytest

from factory.tasks import load_task
from tests.conftest import REPO, run_cli, serve

pytestmark = pytest.mark.model
KEY = "sk-factory-canary-real-5d21e8"
PROXY = str(REPO / "tests" / "fault_proxy.py")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def vllm_server(tmp_path_factory) -> int:
    """`python -m vllm.entrypoints.openai.api_server` with the embedded model, key required."""
    from factory.teachers.embedded import model_dir
    from factory.teachers.vllm import cpu_dtype

    folder, _ = model_dir()
    port = free_port()
    log = (tmp_path_factory.mktemp("vllm") / "server.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(folder),
         "--served-model-name", "smollm2", "--host", "127.0.0.1", "--port", str(port),
         "--dtype", cpu_dtype(), "--max-model-len", "2048", "--no-enable-chunked-prefill",
         "--enforce-eager", "--api-key", KEY],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "VLLM_CPU_KVCACHE_SPACE": "2"})
    try:
        deadline = time.monotonic() + 600
        while True:
            assert proc.poll() is None, f"vLLM server exited; see {log.name}"
            assert time.monotonic() < deadline, f"vLLM server not ready; see {log.name}"
            try:
                request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/models",
                                                 headers={"Authorization": f"Bearer {KEY}"})
                urllib.request.urlopen(request, timeout=5).close()
                break
            except OSError:
                time.sleep(2)
        yield port
    finally:
        children = psutil.Process(proc.pid).children(recursive=True)
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
        for child in children:
            if child.is_running():
                child.kill()
        log.close()


def test_real_server_through_faults_gives_exact_rows_and_counts_retries(vllm_server, task_dir,
                                                                       tmp_path: Path):
    path = task_dir / "task.yaml"
    path.write_text(path.read_text().replace("  max_tokens: 400", "  max_tokens: 200")
                    .replace("    threshold: 3.0", "    threshold: 1.0")
                    .replace("support-tickets/judge.j2", "prompts/judge.j2")
                    .replace("    pool: 1.25", "    pool: 1.0"))  # no selection: less to ask
    config = tmp_path / "teacher.yaml"
    config.write_text("api:\n  timeout: 90\n  concurrency: 4\n  max_retries: 8\n")
    out, home = tmp_path / "out", tmp_path / "home"
    with serve([PROXY, "--upstream", f"http://127.0.0.1:{vllm_server}", "--stall", "100",
                "--rate", "0.08", "--seed", "3"]) as (_, port):
        proc = run_cli("distill", "--task", str(path), "-n", "6", "--teacher", "openai:smollm2",
                       "--base-url", f"http://127.0.0.1:{port}/v1", "--teacher-config",
                       str(config), "--judge", "teacher", "--out", str(out),
                       "--batch-size", "16", "--seed", "5",
                       env={"FACTORY_API_KEY": KEY, "FACTORY_HOME": str(home)})
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/faults", timeout=10) as r:
            faults = json.load(r)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = datasets.load_dataset(str(out), split="train")
    assert len(rows) == 6 == len(set(rows["id"]))
    model = load_task(str(path)).record_model
    for row in rows:
        model.model_validate({k: row[k] for k in ("subject", "body", "category", "priority",
                                                  "reply")})
        assert all(1 <= v <= 5 for v in row["judge"]["scores"].values())
    assert set(faults) >= {"429", "500", "503", "stall", "close", "malformed"}
    manifest = json.loads((out / "manifest.json").read_text())
    retries = manifest["teacher_stats"]["retries"]
    assert sum(retries.values()) >= sum(faults.values()) - sum(
        manifest["teacher_stats"]["failed"].values())
    assert {"rate_limited", "http_500", "http_503", "timeout", "connection",
            "malformed"} <= set(retries)
    assert manifest["teacher_stats"]["cooldowns"] >= 1
    assert manifest["judge"]["judged"] >= 6
    # Key hygiene: nothing the run wrote holds the key.
    assert KEY not in proc.stdout + proc.stderr
    for file in [*out.rglob("*"), *home.rglob("*")]:
        if file.is_file():
            assert KEY.encode() not in file.read_bytes(), file

