"""Render a request's prompt from the task's Jinja templates, in a sandbox.

Templates see: `task` (name, description), `labels` (the target label values), `attributes` (one
combination from the grid), `examples` (the few-shot seed records) and `fields` (the fields the
teacher writes, with their specs); in augment mode also `source` (the row to rewrite) and
`rewrite` (`kind`, `instruction`). Undefined names are errors. Seed text is data: it is passed as
values, never compiled, so a seed containing `{{ ... }}` appears literally.
"""

from __future__ import annotations

import json
from typing import Any

from jinja2 import StrictUndefined, TemplateError, TemplateSyntaxError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from factory.errors import FactoryError
from factory.plan import Request
from factory.tasks import Task, Template


def _to_json(value: dict[str, Any], only: Any = None) -> str:
    """JSON as a model should read it: UTF-8, no HTML escaping, in the given field order."""
    if only is not None:
        value = {k: value[k] for k in only if k in value}
    return json.dumps(value, ensure_ascii=False)


def _environment() -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(
        undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False
    )
    env.filters["to_json"] = _to_json
    return env


class Renderer:
    """Turns planned requests into chat messages: `[system, user]`."""

    def __init__(self, task: Task) -> None:
        self.task = task
        env = _environment()
        self._compiled = {}
        self._templates = dict(task.templates)
        if task.judge_template is not None:
            self._templates["judge"] = task.judge_template
        for part, template in self._templates.items():
            try:
                self._compiled[part] = env.from_string(template.text)
            except TemplateSyntaxError as exc:
                raise FactoryError(f"template syntax error: {exc.message}", path=template.path,
                                   line=exc.lineno, hint="fix the Jinja syntax") from None
        self._seeds = {s.id: s.record for s in task.seeds}
        self._fields = {k: v.model_dump() for k, v in task.config.generated_fields.items()}

    def context(self, request: Request) -> dict[str, Any]:
        context = {
            "task": {"name": self.task.name, "description": self.task.config.description},
            "labels": dict(request.labels),
            "attributes": dict(request.attributes),
            "examples": [dict(self._seeds[i]) for i in request.seed_ids],
            "fields": self._fields,
        }
        if request.source_id is not None and request.rewrite is not None:
            instruction = self.task.config.augment.rewrites[request.rewrite]
            context["source"] = dict(self._seeds[request.source_id])
            context["rewrite"] = {"kind": request.rewrite, "instruction": instruction}
        return context

    def messages(self, request: Request) -> list[dict[str, str]]:
        context = self.context(request)
        return [
            {"role": part, "content": self._render(part, context).strip()}
            for part in ("system", "user")
        ]

    def judge_messages(self, fields: dict[str, Any],
                       criteria: list[str]) -> list[dict[str, str]]:
        """The rubric for one record, with its criteria in the given order."""
        spec = self.task.config.filters.judge
        context = {
            "task": {"name": self.task.name, "description": self.task.config.description},
            "record": dict(fields),
            "labels": {k: fields.get(k) for k in self.task.config.labels},
            "criteria": [{"name": c, "description": spec.criteria[c]} for c in criteria],
        }
        return [{"role": "user", "content": self._render("judge", context).strip()}]

    def _render(self, part: str, context: dict[str, Any]) -> str:
        template: Template = self._templates[part]
        try:
            return self._compiled[part].render(context)
        except TemplateError as exc:
            raise FactoryError(f"template error: {exc}", path=template.path,
                               hint="templates may use task, labels, attributes, examples, "
                                    "fields (augment mode: source, rewrite)") from None
