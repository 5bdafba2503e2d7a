"""Shared fixtures. Model tests run the real embedded teacher through the real vLLM engine."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

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
