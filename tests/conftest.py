"""Shared fixtures. Model tests run the real embedded teacher through the real vLLM engine."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

REPO = Path(__file__).resolve().parent.parent
BUILTIN_TASK = REPO / "configs" / "tasks" / "support-tickets.yaml"


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
