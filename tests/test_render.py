"""Rendering: sandboxed, strict, and seed text is data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from factory.errors import FactoryError
from factory.plan import Planner
from factory.render import Renderer
from factory.tasks import load_task


def test_builtin_seed_with_jinja_syntax_appears_literally():
    task = load_task("support-tickets")
    jinja_seeds = [s for s in task.seeds if "{{" in s.record["body"]]
    assert jinja_seeds, "the built-in seeds should include one quoting template syntax"
    seed = jinja_seeds[0]
    planner, renderer = Planner(task, 0), Renderer(task)
    slice_value = seed.record["category"]
    for index in range(40):
        request = planner.request(slice_value, index)
        if seed.id in request.seed_ids:
            user = renderer.messages(request)[1]["content"]
            assert json.dumps(seed.record["body"], ensure_ascii=False) in user
            assert "{{ user.first_name }}" in user
            return
    pytest.fail("the seed was never drawn in 40 requests of its slice")


def test_seed_with_block_syntax_is_not_executed(task_dir: Path):
    seeds = task_dir / "seeds.jsonl"
    rows = [json.loads(line) for line in seeds.read_text().splitlines()]
    rows[0]["body"] = "{% for x in range(3) %}LOOP{% endfor %} and {{ 7 * 6 }} " + rows[0]["body"]
    seeds.write_text("".join(json.dumps(r) + "\n" for r in rows))
    task = load_task(str(task_dir / "task.yaml"))
    planner, renderer = Planner(task, 0), Renderer(task)
    found = False
    for index in range(30):
        request = planner.request(rows[0]["category"], index)
        if rows[0]["id"] in request.seed_ids:
            user = renderer.messages(request)[1]["content"]
            assert "{% for x in range(3) %}LOOP{% endfor %} and {{ 7 * 6 }}" in user
            assert "LOOPLOOP" not in user and " 42 " not in user
            found = True
            break
    assert found


def test_templates_run_sandboxed(task_dir: Path):
    (task_dir / "prompts" / "user.j2").write_text("{{ ''.__class__.__mro__[1].__subclasses__() }}")
    task = load_task(str(task_dir / "task.yaml"))
    with pytest.raises(FactoryError, match="user.j2"):
        Renderer(task).messages(Planner(task, 0).request("billing", 0))


def test_rendered_prompt_carries_labels_and_attributes():
    task = load_task("support-tickets")
    request = Planner(task, 3).request("shipping", 5)
    user = Renderer(task).messages(request)[1]["content"]
    labels, attributes = dict(request.labels), dict(request.attributes)
    assert f"Category: {labels['category']}. Priority: {labels['priority']}." in user
    for value in attributes.values():
        assert value in user
