"""Task configs: the built-in task loads; every kind of bad input names file, field and fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from factory.errors import FactoryError
from factory.tasks import list_tasks, load_task
from tests.conftest import run_cli


def test_builtin_task_loads_with_seeds_and_templates():
    task = load_task("support-tickets")
    assert task.builtin
    assert 20 <= len(task.seeds) <= 40
    assert set(task.config.labels) == {"category", "priority"}
    assert set(task.config.generated_fields) == {"subject", "body", "reply"}
    categories = {s.record["category"] for s in task.seeds}
    assert categories == set(task.config.fields["category"].enum)
    assert len(task.fingerprint()) == 64


def test_task_listing_includes_builtin_and_user_tasks(task_dir: Path):
    found = {(name, builtin) for name, _, builtin in list_tasks([task_dir])}
    assert ("support-tickets", True) in found
    assert ("support-tickets", False) in found


def edit(task_dir: Path, old: str, new: str) -> Path:
    path = task_dir / "task.yaml"
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))
    return path


def error_of(path: Path) -> FactoryError:
    with pytest.raises(FactoryError) as info:
        load_task(str(path))
    return info.value


def test_unknown_key_names_file_field_and_line(task_dir: Path):
    path = edit(task_dir, "  temperature: 0.9", "  temprature: 0.9")
    err = error_of(path)
    assert err.path == str(path)
    assert err.field == "generation.temprature"
    assert err.line == path.read_text().splitlines().index("  temprature: 0.9") + 1
    assert "unknown field" in str(err) and "spelling" in str(err)


def test_missing_field(task_dir: Path):
    path = edit(task_dir, "description: >-", "summary: >-")
    err = error_of(path)
    assert err.field in {"description", "summary"}


def test_label_weights_must_name_enum_values(task_dir: Path):
    path = edit(task_dir, "weights: {low: 0.3", "weights: {lowest: 0.3")
    err = error_of(path)
    assert "lowest" in str(err) and "labels.priority.weights" in str(err)


def test_yaml_syntax_error_has_line(task_dir: Path):
    path = edit(task_dir, "  temperature: 0.9", "  temperature: [0.9")
    err = error_of(path)
    assert err.line is not None and "YAML" in str(err)


def test_missing_template(task_dir: Path):
    path = edit(task_dir, "prompts/user.j2", "prompts/nope.j2")
    err = error_of(path)
    assert err.field == "templates.user" and "nope.j2" in str(err)


def test_bad_seed_row_names_line_and_field(task_dir: Path):
    seeds = task_dir / "seeds.jsonl"
    lines = seeds.read_text().splitlines()
    lines[4] = lines[4].replace('"category": "', '"category": "x')
    seeds.write_text("\n".join(lines) + "\n")
    err = error_of(task_dir / "task.yaml")
    assert err.path == str(seeds) and err.line == 5 and err.field == "category"


def test_seed_not_json(task_dir: Path):
    seeds = task_dir / "seeds.jsonl"
    seeds.write_text(seeds.read_text() + "{not json\n")
    err = error_of(task_dir / "task.yaml")
    assert err.path == str(seeds) and "JSON" in str(err)


def test_unknown_task_name():
    with pytest.raises(FactoryError, match="unknown task 'nope'"):
        load_task("nope")


@pytest.mark.parametrize("breakage", [
    ("  temperature: 0.9", "  temprature: 0.9", "generation.temprature"),
    ("prompts/user.j2", "prompts/missing.j2", "templates.user"),
])
def test_cli_bad_config_is_one_line_exit_2_nothing_written(task_dir: Path, tmp_path: Path,
                                                           breakage):
    old, new, field = breakage
    path = edit(task_dir, old, new)
    out = tmp_path / "out"
    proc = run_cli("distill", "--task", str(path), "--out", str(out), "-n", "2")
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert str(path) in lines[0] and field in lines[0]
    assert "Traceback" not in proc.stderr + proc.stdout
    assert not out.exists()


def test_cli_template_syntax_error(task_dir: Path, tmp_path: Path):
    (task_dir / "prompts" / "user.j2").write_text("Hello {{ labels.category }\n")
    out = tmp_path / "out"
    proc = run_cli("distill", "--task", str(task_dir / "task.yaml"), "--out", str(out))
    assert proc.returncode == 2
    assert "user.j2:1" in proc.stderr and "syntax" in proc.stderr
    assert not out.exists()


def test_cli_unknown_template_variable(task_dir: Path, tmp_path: Path):
    (task_dir / "prompts" / "user.j2").write_text("Write about {{ attributes.planet }}\n")
    out = tmp_path / "out"
    proc = run_cli("distill", "--task", str(task_dir / "task.yaml"), "--out", str(out))
    assert proc.returncode == 2
    assert "user.j2" in proc.stderr and "planet" in proc.stderr
    assert not out.exists()
