"""`pip install .` (not editable) gives a `factory` that finds its tasks and prompts anywhere."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.conftest import REPO


def test_wheel_ships_configs_and_prompts_and_works_from_any_folder(tmp_path: Path):
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels),
                    str(REPO)], check=True, capture_output=True, timeout=600)
    wheel = next(wheels.glob("*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in ["factory/_data/configs/tasks/support-tickets.yaml",
                   "factory/_data/configs/tasks/support-tickets.seeds.jsonl",
                   "factory/_data/configs/teachers/embedded.yaml",
                   "factory/_data/prompts/support-tickets/user.j2",
                   "filters/schema.py"]:
        assert needed in names, needed

    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target",
                    str(target), str(wheel)], check=True, capture_output=True, timeout=600)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(target), "COLUMNS": "200"}
    proc = subprocess.run([str(target / "bin" / "factory"), "preview", "--task",
                           "support-tickets", "-n", "1"], cwd=elsewhere, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "Category:" in proc.stdout and "request 1" in proc.stdout
    where = subprocess.run([sys.executable, "-c", "import factory.resources as r; "
                            "print(r.data_root())"], cwd=elsewhere, env=env,
                           capture_output=True, text=True, check=True)
    assert where.stdout.strip() == str(target / "factory" / "_data")
