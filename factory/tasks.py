"""Task configs: the pydantic models that validate them, and loading a task with its files.

A task is one YAML file (see docs/tasks.md). `load_task("support-tickets")` finds a built-in task;
`load_task("path/to/task.yaml")` loads a user's. Every problem becomes a `FactoryError` that names
the file, the field, the line where known, and the fix.
"""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, model_validator

from factory.errors import FactoryError
from factory.resources import builtin_tasks_dir, prompts_dir


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FieldSpec(Strict):
    """One field of a record. Strings may carry an enum and length bounds (in characters)."""

    type: Literal["string", "integer", "number", "boolean"] = "string"
    description: str = ""
    enum: list[str] | None = None
    min_length: int | None = Field(default=None, ge=0)
    max_length: int | None = Field(default=None, ge=1)


class LabelSpec(Strict):
    """A label field's target mix: balanced when `weights` is absent."""

    weights: dict[str, float] | None = None


class SeedsSpec(Strict):
    """Seed examples. Without `path` the task needs `--seeds PATH` (data it does not ship)."""

    path: str | None = Field(default=None, description="JSONL or CSV file, relative to the task")
    per_request: int = Field(default=3, ge=0, le=16)
    # A fixed part of a larger file: the first N rows of each slice label, in file order.
    per_label: int | None = Field(default=None, ge=1)


DEFAULT_REWRITES = {
    "paraphrase": "Say the same thing in other words and with another sentence structure.",
    "entities": "Keep the request but change the names, amounts, dates, places and products "
                "in it to other plausible ones.",
    "tone": "Keep the request but change the tone: if it is calm make it upset or hurried, if "
            "it is upset make it calm and polite.",
    "channel": "Rewrite it as if the customer sent it through another channel: a short chat "
               "message, an email or a voice-call transcript.",
}


class AugmentSpec(Strict):
    """`mode: augment`: each request rewrites one source row (a row of the seed file) in one of
    the `rewrites` ways, keeping its labels."""

    # rewrite kind -> the instruction templates show as `rewrite.instruction`
    rewrites: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_REWRITES),
                                     min_length=1)


class TemplatesSpec(Strict):
    system: str
    user: str


class GenerationSpec(Strict):
    temperature: float = Field(default=0.9, ge=0.0, le=2.0)
    top_p: float = Field(default=0.95, gt=0.0, le=1.0)
    max_tokens: int = Field(default=512, ge=16)
    batch_size: int = Field(default=64, ge=1)
    # A slice stops after this many requests per wanted record (plus a small floor),
    # so a slice that cannot be filled never spins all night.
    max_requests_per_record: float = Field(default=12.0, gt=0.0)


class StudentSpec(Strict):
    """How a record becomes the `messages` column a student trainer reads."""

    system: str | None = None
    prompt: list[str] = Field(min_length=1)
    answer: list[str] = Field(min_length=1)
    answer_format: Literal["json", "text"] = "json"


class HeuristicsSpec(Strict):
    """Quality heuristics (filters/heuristics.py): all on by default, `length` when bounded."""

    enabled: bool = True
    language: str = "en"
    disable: list[str] = Field(default_factory=list)
    # field -> {min_chars, max_chars, min_words, max_words}
    length: dict[str, dict[str, int]] = Field(default_factory=dict)


class DedupSpec(Strict):
    """Exact and MinHash near-duplicate removal, against the run, the seeds and an eval set."""

    enabled: bool = True
    # The text that identifies a record (default: the student prompt's fields).
    fields: list[str] | None = None
    shingle: Literal["char", "word"] = "char"
    ngram: int = Field(default=3, ge=1, le=16)
    num_perm: int = Field(default=128, ge=16, le=1024)
    threshold: float = Field(default=0.6, gt=0.0, le=1.0)
    against_seeds: bool = True
    # An eval set the student will be tested on (file or dataset folder, relative to the task
    # file), and its text column. `--decontaminate` overrides.
    decontaminate: str | None = None
    decontaminate_field: str = "text"


class SelectSpec(Strict):
    """Diversity selection: keep the most spread-out rows of a larger pool, per label slice."""

    method: Literal["k-center", "first"] = "k-center"
    # Each slice accepts ceil(pool x quota) candidates; k-center keeps quota of them.
    pool: float = Field(default=1.25, ge=1.0, le=10.0)
    # Selection runs on blocks of this many rows (with their pool): once a block is selected its
    # rows are final, so a row written at a checkpoint stays in the dataset.
    block: int = Field(default=8, ge=1, le=100_000)


class JudgeSpec(Strict):
    """The LLM judge: a rubric template scored per criterion (1-5), the mean against a threshold.

    Off unless `enabled` or `--judge` is given; runs after the cheap filters, on what survives.
    """

    enabled: bool = False
    rubric: str | None = None
    # criterion name -> what it checks (shown to the judge, in this order)
    criteria: dict[str, str] = Field(default_factory=dict)
    threshold: float = Field(default=3.0, ge=1.0, le=5.0)
    max_tokens: int = Field(default=256, ge=32)
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    # The first N judged rows are judged again with the criteria in reverse order.
    agreement_sample: int = Field(default=16, ge=0)
    min_agreement: float = Field(default=0.7, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _needs_rubric(self) -> JudgeSpec:
        if (self.rubric is None) != (not self.criteria):
            raise ValueError("judge: give both `rubric` (a template) and `criteria`")
        return self


class FiltersSpec(Strict):
    # Text fields the heuristics read (default: the fields the teacher writes, if strings).
    text_fields: list[str] | None = None
    heuristics: HeuristicsSpec = HeuristicsSpec()
    dedup: DedupSpec = DedupSpec()
    judge: JudgeSpec = JudgeSpec()
    select: SelectSpec = SelectSpec()


SPLIT_NAMES = ("validation", "test")


def check_split_ratios(ratios: dict[str, float]) -> dict[str, float]:
    """Held-out split ratios: names validation and test, each in [0, 1), together below 1."""
    for name, ratio in ratios.items():
        if name not in SPLIT_NAMES:
            raise ValueError(f"splits: unknown split {name!r}; use validation and/or test")
        if not 0.0 <= ratio < 1.0:
            raise ValueError(f"splits.{name}: {ratio} is not in [0, 1)")
    if sum(ratios.values()) >= 1.0:
        raise ValueError("splits: the ratios must add up to less than 1 (train keeps the rest)")
    return ratios


class CardSpec(Strict):
    """What the dataset card says that the factory cannot know by itself."""

    # A Hub licence id (https://huggingface.co/docs/hub/repositories-licenses). Synthetic data
    # inherits the terms of the teacher model and of the seed examples: check both.
    license: str = "unknown"
    tags: list[str] = Field(default_factory=list)
    intended_use: str | None = None
    limitations: str | None = None


class TaskConfig(Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    description: str
    # generate: new records from few-shot seeds; augment: rewrite the seed file's rows.
    mode: Literal["generate", "augment"] = "generate"
    augment: AugmentSpec = AugmentSpec()
    num_records: int = Field(default=100, ge=1)
    fields: dict[str, FieldSpec] = Field(min_length=1)
    labels: dict[str, LabelSpec] = Field(min_length=1)
    attributes: dict[str, list[str]] = Field(default_factory=dict)
    seeds: SeedsSpec
    templates: TemplatesSpec
    generation: GenerationSpec = GenerationSpec()
    student: StudentSpec
    filters: FiltersSpec = FiltersSpec()
    # Held-out splits cut from the accepted rows, stratified by the first label, e.g.
    # {validation: 0.1, test: 0.1}; train keeps the rest. Empty: train only.
    splits: dict[str, float] = Field(default_factory=dict)
    card: CardSpec = CardSpec()

    @model_validator(mode="after")
    def _check_references(self) -> TaskConfig:
        check_split_ratios(self.splits)
        for name, spec in self.labels.items():
            if name not in self.fields:
                raise ValueError(f"labels.{name}: not a field; add it under `fields`")
            enum = self.fields[name].enum
            if not enum:
                raise ValueError(f"labels.{name}: a label field needs an `enum` of its values")
            unknown = set(spec.weights or {}) - set(enum)
            if unknown:
                raise ValueError(f"labels.{name}.weights: {sorted(unknown)} not in the enum {enum}")
            if spec.weights and any(w < 0 for w in spec.weights.values()):
                raise ValueError(f"labels.{name}.weights: weights must be >= 0")
            if spec.weights and sum(spec.weights.values()) <= 0:
                raise ValueError(f"labels.{name}.weights: at least one weight must be > 0")
        for part in ("prompt", "answer"):
            for name in getattr(self.student, part):
                if name not in self.fields:
                    raise ValueError(f"student.{part}: {name!r} is not a field")
        for name, values in self.attributes.items():
            if not values:
                raise ValueError(f"attributes.{name}: give at least one value")
        for where, names in (("filters.text_fields", self.filters.text_fields),
                             ("filters.dedup.fields", self.filters.dedup.fields),
                             ("filters.heuristics.length", list(self.filters.heuristics.length))):
            for name in names or []:
                if name not in self.fields:
                    raise ValueError(f"{where}: {name!r} is not a field")
        if len(self.generated_fields) == 0:
            raise ValueError("fields: every field is a label; the teacher has nothing to write")
        return self

    @property
    def text_fields(self) -> list[str]:
        """Fields the heuristics read."""
        return self.filters.text_fields or [
            k for k, v in self.generated_fields.items() if v.type == "string" and not v.enum]

    @property
    def dedup_fields(self) -> list[str]:
        """The text that identifies a record for dedup: by default the student's prompt."""
        return self.filters.dedup.fields or list(self.student.prompt)

    @property
    def slice_field(self) -> str:
        """The label whose values are the quota slices (the first label listed)."""
        return next(iter(self.labels))

    @property
    def generated_fields(self) -> dict[str, FieldSpec]:
        """Fields the teacher writes; label fields are set by the plan."""
        return {k: v for k, v in self.fields.items() if k not in self.labels}

    def label_weights(self, name: str) -> dict[str, float]:
        spec, values = self.labels[name], self.fields[name].enum or []
        if spec.weights is None:
            return {v: 1.0 for v in values}
        return {v: float(spec.weights.get(v, 0.0)) for v in values}


@dataclass(frozen=True)
class Seed:
    id: str
    record: dict[str, Any]


@dataclass(frozen=True)
class Template:
    name: str
    path: Path
    text: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()


@dataclass
class Task:
    """A validated task with its templates and seeds read from disk."""

    config: TaskConfig
    path: Path
    builtin: bool
    templates: dict[str, Template]
    seeds: list[Seed]
    record_model: type[BaseModel] = field(repr=False)
    judge_template: Template | None = None

    @property
    def name(self) -> str:
        return self.config.name

    def fingerprint(self) -> str:
        """A hash of everything in the task that shapes its requests."""
        payload = {
            "config": self.config.model_dump(mode="json"),
            "templates": {k: t.sha256 for k, t in sorted(self.templates.items())},
            "judge": self.judge_template.sha256 if self.judge_template else None,
            "seeds": [[s.id, s.record] for s in self.seeds],
        }
        return sha256_json(payload)

    def layout_fingerprint(self) -> str:
        """A hash of what makes two runs' datasets compatible: the task name, its columns (field
        names, types, enums) and its label fields.

        Templates, seeds, attributes, bounds and sampling may change between runs on one folder
        (the cache reuses what still matches); a change of columns needs a new folder or --fresh.
        """
        columns = {k: [v.type, v.enum] for k, v in self.config.fields.items()}
        return sha256_json([self.name, columns, list(self.config.labels)])

    def output_schema(self) -> dict[str, Any]:
        """The JSON schema the teacher's answer must follow (generated fields only)."""
        return json_schema(self.config.generated_fields)


def sha256_json(obj: Any) -> str:
    """A canonical hash: sorted keys, no whitespace, UTF-8."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def json_schema(fields: dict[str, FieldSpec]) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    for name, spec in fields.items():
        prop: dict[str, Any] = {"type": spec.type}
        if spec.enum:
            prop["enum"] = list(spec.enum)
        if spec.type == "string" and spec.max_length:
            prop["maxLength"] = spec.max_length
        if spec.description:
            prop["description"] = spec.description
        properties[name] = prop
    return {
        "type": "object",
        "properties": properties,
        "required": list(fields),
        "additionalProperties": False,
    }


_PY_TYPES: dict[str, type] = {"string": str, "integer": int, "number": float, "boolean": bool}


def record_model(config: TaskConfig) -> type[BaseModel]:
    """A pydantic model of one full record (generated fields and labels)."""
    definitions: dict[str, Any] = {}
    for name, spec in config.fields.items():
        annotation: Any = _PY_TYPES[spec.type]
        if spec.enum:
            annotation = Literal[tuple(spec.enum)]  # type: ignore[valid-type]
        constraints: dict[str, Any] = {}
        if spec.type == "string" and not spec.enum:
            constraints = {"min_length": spec.min_length, "max_length": spec.max_length}
        definitions[name] = (annotation, Field(..., **constraints))
    return create_model(
        f"{config.name.replace('-', '_')}_record",
        __config__=ConfigDict(extra="forbid", strict=True, str_strip_whitespace=False),
        **definitions,
    )


# ---------------------------------------------------------------------------------------------
# Loading


def list_tasks(extra_dirs: list[Path] | None = None) -> list[tuple[str, Path, bool]]:
    """Built-in tasks and the user's task files in `extra_dirs` (name, path, builtin)."""
    found = [(p.stem, p, True) for p in sorted(builtin_tasks_dir().glob("*.yaml"))]
    for folder in extra_dirs or []:
        for p in sorted(folder.glob("*.yaml")):
            try:
                name = yaml.safe_load(p.read_text()).get("name")
            except Exception:  # noqa: BLE001 - a listing skips files that are not tasks
                continue
            if isinstance(name, str):
                found.append((name, p, False))
    return found


def resolve_task_path(name_or_path: str) -> tuple[Path, bool]:
    candidate = Path(name_or_path).expanduser()
    if candidate.suffix in (".yaml", ".yml") or candidate.exists():
        if not candidate.is_file():
            raise FactoryError("no such task file", path=candidate,
                               hint="give a YAML file or a built-in name (see `factory tasks`)")
        return candidate.resolve(), False
    builtin = builtin_tasks_dir() / f"{name_or_path}.yaml"
    if builtin.is_file():
        return builtin, True
    names = ", ".join(sorted(p.stem for p in builtin_tasks_dir().glob("*.yaml")))
    raise FactoryError(f"unknown task {name_or_path!r}", field="--task",
                       hint=f"use a built-in task ({names}) or a path to a YAML file")


def load_task(name_or_path: str, *, seeds_path: str | None = None,
              require_seeds: bool = True) -> Task:
    """The task with its templates and seeds. `require_seeds=False` lets a task whose seed file
    must come from `--seeds` load without one (for listings); its seeds are then empty."""
    path, builtin = resolve_task_path(name_or_path)
    raw, root = _read_yaml(path)
    config = _validate_config(raw, root, path)
    templates = {
        part: _read_template(part, getattr(config.templates, part), path)
        for part in ("system", "user")
    }
    model = record_model(config)
    seeds_file = seeds_file_of(config, path, seeds_path, required=require_seeds)
    seeds = load_seeds(seeds_file, config, model) if seeds_file else []
    rubric = config.filters.judge.rubric
    judge = _read_template("judge", rubric, path, "filters.judge.rubric") if rubric else None
    return Task(config, path, builtin, templates, seeds, model, judge)


def seeds_file_of(config: TaskConfig, task_path: Path, option: str | None,
                  required: bool = True) -> Path | None:
    """`--seeds` if given, else the task's `seeds.path`; a task without one needs `--seeds`."""
    if option:
        return Path(option).expanduser()
    if config.seeds.path:
        return _relative(task_path, config.seeds.path)
    if required:
        raise FactoryError(f"the task {config.name!r} ships no seed examples", path=task_path,
                           field="--seeds",
                           hint=f"give --seeds PATH; the comments in {task_path.name} name the "
                                "file it expects")
    return None


def _relative(base: Path, target: str) -> Path:
    p = Path(target).expanduser()
    return p if p.is_absolute() else (base.parent / p)


def _read_yaml(path: Path) -> tuple[Any, yaml.Node | None]:
    try:
        text = path.read_text(encoding="utf-8")
        return yaml.safe_load(text), yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise FactoryError(f"not valid YAML ({problem})", path=path, line=line,
                           hint="fix the syntax at that line") from exc
    except OSError as exc:
        raise FactoryError(f"cannot read the file ({exc.strerror})", path=path) from exc


def _validate_config(raw: Any, root: yaml.Node | None, path: Path) -> TaskConfig:
    if not isinstance(raw, dict):
        raise FactoryError("a task file must be a YAML mapping of fields", path=path,
                           hint="see docs/tasks.md for the fields")
    try:
        return TaskConfig.model_validate(raw)
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = [str(p) for p in error["loc"]]
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown field"
            hint = "remove it or check its spelling (see docs/tasks.md)"
        elif error["type"] == "missing":
            message = "missing"
            hint = "add it (see docs/tasks.md)"
        else:
            hint = "see docs/tasks.md"
        dotted = ".".join(loc) or None
        raise FactoryError(message, path=path, field=dotted, line=_yaml_line(root, loc),
                           hint=hint) from None


def _yaml_line(node: yaml.Node | None, loc: list[str]) -> int | None:
    """The line of the deepest key of `loc` found in the composed YAML tree."""
    line = None
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            match = [(k, v) for k, v in node.value if getattr(k, "value", None) == key]
            if not match:
                break
            line, node = match[0][0].start_mark.line + 1, match[0][1]
        elif isinstance(node, yaml.SequenceNode) and key.isdigit() and int(key) < len(node.value):
            node = node.value[int(key)]
            line = node.start_mark.line + 1
        else:
            break
    return line


def _read_template(part: str, name: str, task_path: Path, where: str | None = None) -> Template:
    candidates = [_relative(task_path, name), prompts_dir() / name]
    for candidate in candidates:
        if candidate.is_file():
            return Template(part, candidate, candidate.read_text(encoding="utf-8"))
    raise FactoryError(f"template {name!r} not found", path=task_path,
                       field=where or f"templates.{part}",
                       hint=f"put it next to the task file or under {prompts_dir()}")


def load_seeds(path: Path, config: TaskConfig, model: type[BaseModel]) -> list[Seed]:
    """Seed examples: JSONL (one object a line) or CSV; each must be a valid record."""
    if not path.is_file():
        raise FactoryError("seed file not found", path=path, field="seeds.path",
                           hint="point seeds.path (or --seeds) at a JSONL or CSV file")
    rows = list(_read_rows(path))
    if not rows:
        raise FactoryError("the seed file has no rows", path=path, hint="add seed examples")
    if config.seeds.per_label:
        rows = _first_per_label(rows, config.slice_field, config.seeds.per_label)
    seeds, seen = [], set()
    for line, row in rows:
        seed_id = str(row.pop("id", None) or f"line-{line}")
        record = {k: row.get(k) for k in config.fields}
        _check_seed(path, line, row, record, config, model)
        if seed_id in seen:
            raise FactoryError(f"duplicate seed id {seed_id!r}", path=path, line=line, field="id",
                               hint="give every seed a unique id")
        seen.add(seed_id)
        seeds.append(Seed(seed_id, record))
    return seeds


def _first_per_label(rows: list[tuple[int, dict]], label: str,
                     n: int) -> list[tuple[int, dict]]:
    """The first `n` rows of each value of `label`, in file order (`seeds.per_label`)."""
    taken: dict[Any, int] = {}
    kept = []
    for line, row in rows:
        value = row.get(label)
        if taken.get(value, 0) < n:
            taken[value] = taken.get(value, 0) + 1
            kept.append((line, row))
    return kept


def _read_rows(path: Path):
    try:
        if path.suffix == ".csv":
            with path.open(newline="", encoding="utf-8") as f:
                for i, row in enumerate(csv.DictReader(f), start=2):
                    yield i, dict(row)
            return
        with path.open(encoding="utf-8") as f:
            for i, text in enumerate(f, start=1):
                if text.strip():
                    yield i, _json_row(path, i, text)
    except UnicodeDecodeError as exc:
        raise FactoryError("not UTF-8 text", path=path, hint="save the file as UTF-8") from exc


def _json_row(path: Path, line: int, text: str) -> dict[str, Any]:
    try:
        row = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FactoryError(f"not valid JSON ({exc.msg})", path=path, line=line,
                           hint="one JSON object per line") from None
    if not isinstance(row, dict):
        raise FactoryError("each line must be a JSON object", path=path, line=line)
    return row


def _check_seed(path: Path, line: int, row: dict, record: dict, config: TaskConfig,
                model: type[BaseModel]) -> None:
    extra = set(row) - set(config.fields)
    if extra:
        raise FactoryError(f"unknown field {sorted(extra)[0]!r}", path=path, line=line,
                           hint=f"seed fields are id and {', '.join(config.fields)}")
    try:
        model.model_validate(record)
    except ValidationError as exc:
        error = exc.errors()[0]
        field_name = ".".join(str(p) for p in error["loc"])
        raise FactoryError(error["msg"], path=path, line=line, field=field_name,
                           hint="fix the seed so it matches the task's fields") from None
