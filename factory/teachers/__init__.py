"""Teachers: one interface (`Teacher`), one module per kind.

    embedded            SmolLM2-135M-Instruct from PyPI on a local vLLM engine (the default)
    vllm:MODEL_OR_PATH  any local or cached HF model on a local vLLM engine
    openai:MODEL        any OpenAI-compatible chat completions API

Any of them can answer on a Ray cluster instead of this process (`--engine ray`: teachers/ray.py).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from factory.budget import Price
from factory.errors import FactoryError
from factory.resources import configs_dir
from factory.teachers.base import Teacher
from factory.teachers.api import APIOptions
from factory.teachers.ray import RayOptions
from factory.teachers.vllm import EngineOptions

log = logging.getLogger(__name__)


class TeacherConfig(BaseModel):
    """A teacher config file (`--teacher-config`): engine options for local teachers, client
    options for API teachers, and a price that overrides configs/prices.yaml."""

    model_config = ConfigDict(extra="forbid")

    engine: EngineOptions = EngineOptions()
    api: APIOptions = APIOptions()
    price: Price | None = None


def load_teacher_config(path: Path | None) -> TeacherConfig:
    path = path or configs_dir() / "teachers" / "embedded.yaml"
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise FactoryError(f"cannot read the teacher config ({exc.strerror})", path=path) from exc
    except yaml.YAMLError as exc:
        raise FactoryError("not valid YAML", path=path, hint="fix the syntax") from exc
    try:
        return TeacherConfig.model_validate(raw)
    except ValidationError as exc:
        error = exc.errors()[0]
        raise FactoryError(error["msg"], path=path,
                           field=".".join(str(p) for p in error["loc"]),
                           hint="see docs/teachers.md for the teacher options") from None


def make_teacher(spec: str, config_path: Path | None = None,
                 say: Callable[[str], None] = log.info, *, base_url: str | None = None,
                 concurrency: int | None = None, ray: RayOptions | None = None) -> Teacher:
    """Build the teacher a `--teacher` spec names (its engine or client starts on first use).
    With `ray`, it answers on Ray actors (`--engine ray`, see teachers/ray.py)."""
    config = load_teacher_config(config_path)
    teacher = build_teacher(spec, config, say, base_url=base_url, concurrency=concurrency)
    if ray is None:
        return teacher
    from factory.teachers.ray import RayTeacher

    return RayTeacher(teacher, spec, config, ray, base_url=base_url, concurrency=concurrency)


def build_teacher(spec: str, config: TeacherConfig, say: Callable[[str], None] = log.info, *,
                  base_url: str | None = None, concurrency: int | None = None) -> Teacher:
    """The local teacher of a spec and a loaded teacher config."""
    kind, _, model = spec.partition(":")
    if kind == "embedded" and not model:
        from factory.teachers.embedded import EmbeddedTeacher

        return EmbeddedTeacher(config.engine, say=say)
    if kind == "vllm" and model:
        from factory.teachers.vllm import VLLMTeacher

        return VLLMTeacher(model, config.engine)
    if kind == "openai" and model:
        from factory.teachers.api import APITeacher

        options = config.api
        if concurrency is not None:
            options = options.model_copy(update={"concurrency": concurrency})
        return APITeacher(model, options, base_url=base_url)
    raise FactoryError(f"unknown teacher {spec!r}", field="--teacher",
                       hint="use embedded, vllm:MODEL_OR_PATH or openai:MODEL")
