"""Shared fixtures. Model tests run the real embedded teacher through the real vLLM engine."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

REPO = Path(__file__).resolve().parent.parent
BUILTIN_TASK = REPO / "configs" / "tasks" / "support-tickets.yaml"

# The embedded teacher's reference run (tests/test_embedded.py; tests/test_ray.py compares the
# Ray engine's run of the same command with it).
N = 12
ARGS = ["distill", "--task", "support-tickets", "--num-records", str(N), "--seed", "11",
        "--batch-size", "8"]


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 1800,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run `python -m factory ARGS` as a user would, capturing its output."""
    full_env = {**os.environ, "COLUMNS": "200", **(env or {})}
    return subprocess.run([sys.executable, "-m", "factory", *args], cwd=cwd or REPO,
                          capture_output=True, text=True, timeout=timeout, env=full_env)


@pytest.fixture
def task_dir(tmp_path: Path) -> Path:
    """A copy of the built-in support-tickets task (config, seeds, templates) to edit."""
    folder = tmp_path / "task"
    folder.mkdir()
    shutil.copy(BUILTIN_TASK, folder / "task.yaml")
    shutil.copy(BUILTIN_TASK.with_name("support-tickets.seeds.jsonl"), folder / "seeds.jsonl")
    shutil.copytree(REPO / "prompts" / "support-tickets", folder / "prompts")
    text = (folder / "task.yaml").read_text()
    text = text.replace("support-tickets.seeds.jsonl", "seeds.jsonl")
    text = text.replace("support-tickets/system.j2", "prompts/system.j2")
    text = text.replace("support-tickets/user.j2", "prompts/user.j2")
    (folder / "task.yaml").write_text(text)
    return folder


@contextmanager
def serve(args: list[str], timeout: float = 60) -> Iterator[tuple[subprocess.Popen, int]]:
    """Start a loopback server script that prints "PORT <n>" when ready; stop it afterwards."""
    proc = subprocess.Popen([sys.executable, *args], stdout=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + timeout
        line = ""
        while time.monotonic() < deadline and not line.startswith("PORT "):
            line = proc.stdout.readline() if proc.stdout else ""
            if not line and proc.poll() is not None:
                raise RuntimeError(f"server {args[0]} exited with {proc.returncode}")
        if not line.startswith("PORT "):
            raise RuntimeError(f"server {args[0]} did not start within {timeout}s")
        yield proc, int(line.split()[1])
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout:
            proc.stdout.close()


def cached_answers(out: Path) -> int:
    """Answers in an output folder's response cache (0 while it does not exist yet)."""
    path = out / ".factory" / "cache.sqlite"
    if not path.is_file():
        return 0
    try:
        with sqlite3.connect(path) as db:
            return int(db.execute("SELECT COUNT(*) FROM responses").fetchone()[0])
    except sqlite3.OperationalError:
        return 0


@pytest.fixture(scope="session")
def interrupted(tmp_path_factory) -> tuple[Path, str, int]:
    """The embedded teacher's run of ARGS, stopped with SIGTERM once its first batch is cached
    (real model: minutes)."""
    out = tmp_path_factory.mktemp("embedded") / "tickets"
    proc = subprocess.Popen([sys.executable, "-m", "factory", *ARGS, "--out", str(out)],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "COLUMNS": "200"})
    deadline = time.monotonic() + 900
    while cached_answers(out) < 8 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(1)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=300)
    return out, stdout + stderr, proc.returncode


@pytest.fixture(scope="session")
def run(interrupted) -> tuple[Path, subprocess.CompletedProcess]:
    """The same command again: it resumes and completes (the local engine's reference run)."""
    out, _, _ = interrupted
    proc = run_cli(*ARGS, "--out", str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out, proc
