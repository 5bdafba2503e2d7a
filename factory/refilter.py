"""`factory filter`: the filter chain on an existing dataset, in stage order: read → heuristics →
dedup → measure → write.

The input is any table with a text column (CSV, JSONL, parquet, or a dataset folder); the output
folder has the layout of a distill run: kept rows under `data/`, dropped rows with their reason
under `rejected/` (config `rejected`), a manifest with the drop counts, and a card.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from factory.datafiles import read_table
from factory.errors import FactoryError
from factory.filtering import eval_texts
from filters.base import Decision

# Names accepted by --only, in the order they run.
FILTER_NAMES = ["length", "refusal", "repetition", "template_leftover", "language", "pii",
                "exact", "near"]
_DEFAULT_ON = [n for n in FILTER_NAMES if n != "length"]


@dataclass
class FilterOptions:
    source: Path
    out: Path
    text_field: str = "text"
    label_field: str | None = None
    only: list[str] = field(default_factory=lambda: list(_DEFAULT_ON))
    decontaminate: Path | None = None
    decontaminate_field: str = "text"
    threshold: float = 0.6
    command: str = ""


def parse_only(value: str | None) -> list[str]:
    if not value:
        return list(_DEFAULT_ON)
    names = [n.strip() for n in value.split(",") if n.strip()]
    unknown = [n for n in names if n not in FILTER_NAMES]
    if unknown or not names:
        raise FactoryError(f"unknown filter {unknown[0] if unknown else value!r}", field="--only",
                           hint=f"choose from {', '.join(FILTER_NAMES)}")
    return [n for n in FILTER_NAMES if n in names]


def refilter(options: FilterOptions) -> dict[str, Any]:
    """Run the chain over every row in order; write the folder; return the manifest."""
    start = time.monotonic()
    table = read_table(options.source)
    for needed in filter(None, [options.text_field, options.label_field]):
        if needed not in table.column_names:
            raise FactoryError(f"no column {needed!r} (columns: {', '.join(table.column_names)})",
                               path=options.source, field="--text-field / --label-field",
                               hint="name an existing column")
    rows = [dict(r) for r in table]
    ids = [str(r["id"]) if r.get("id") not in (None, "") else f"row-{i}"
           for i, r in enumerate(rows)]
    decisions = decide_rows(options, rows, ids)
    kept = [{"id": i, **r} for i, r, d in zip(ids, rows, decisions) if d.keep]
    dropped = [{"id": i, "reason": d.reason, "detail": d.detail, **r}
               for i, r, d in zip(ids, rows, decisions) if not d.keep]
    manifest = _manifest(options, rows, kept, decisions, time.monotonic() - start)
    from factory.output import OutputFolder

    OutputFolder(options.out).write_tables(kept, dropped, manifest,
                                           lambda m: _card(options, m), tags=["factory"])
    return manifest


def decide_rows(options: FilterOptions, rows: list[dict[str, Any]],
              ids: list[str]) -> list[Decision]:
    from filters.dedup import Deduplicator
    from filters.heuristics import build_heuristics, run_chain

    text = options.text_field
    disable = [n for n in FILTER_NAMES[:6] if n not in options.only and n != "length"]
    heuristics = [] if not set(options.only) & set(FILTER_NAMES[:6]) else build_heuristics(
        {"fields": [text], "disable": disable})
    dedup = None
    if {"exact", "near"} & set(options.only):
        dedup = Deduplicator({"text_fields": [text], "threshold": options.threshold,
                              "exact": "exact" in options.only, "near": "near" in options.only})
        if options.decontaminate:
            texts = eval_texts(options.decontaminate, options.decontaminate_field)
            dedup.add_decontamination(texts, [f"eval-{i}" for i in range(len(texts))])
    decisions = [run_chain(heuristics, r) for r in rows]
    if dedup is None:
        return decisions
    todo = [i for i, d in enumerate(decisions) if d.keep]
    found = dedup.check_records([{text: str(rows[i][text] or "")} for i in todo],
                                [ids[i] for i in todo])
    for i, decision in zip(todo, found):
        decisions[i] = decision
    return decisions


def _manifest(options: FilterOptions, rows: list[dict[str, Any]], kept: list[dict[str, Any]],
              decisions: list[Decision], seconds: float) -> dict[str, Any]:
    from factory.output import versions

    dropped = Counter(d.reason for d in decisions if not d.keep)
    manifest: dict[str, Any] = {
        "command": options.command,
        "source": str(options.source),
        "input_rows": len(rows),
        "accepted": len(kept),
        "dropped": dict(dropped.most_common()),
        "filters": options.only,
        "text_field": options.text_field,
        "dedup_threshold": options.threshold,
        "timings": {"total": round(seconds, 3)},
        "versions": versions(),
    }
    if options.label_field:
        manifest["labels"] = dict(Counter(str(r[options.label_field]) for r in kept))
    manifest["diversity"] = _diversity([str(r[options.text_field]) for r in kept])
    return manifest


def _diversity(texts: list[str]) -> dict[str, Any] | None:
    if len(texts) < 2:
        return None
    import random

    from filters.diversity import MiniLMEmbedder, diversity_report

    sample = texts if len(texts) <= 5000 else random.Random(0).sample(texts, 5000)
    embedder = MiniLMEmbedder()
    report = diversity_report(sample, embedder.encode(sample))
    return {"rows": len(sample), "embedder": embedder.name,
            **{k: round(v, 4) for k, v in report.items()}}


def _card(options: FilterOptions, manifest: dict[str, Any]) -> str:
    from factory.output import diversity_section

    drops = "\n".join(f"| {r} | {n} |" for r, n in manifest["dropped"].items())
    return "\n".join([
        f"# Filtered: {options.source.name}", "",
        f"{manifest['accepted']} of {manifest['input_rows']} rows of `{options.source}` kept by "
        f"`factory filter` on the column `{options.text_field}` "
        f"(filters: {', '.join(options.only)}).", "",
        "| dropped because | rows |", "|---|---|", drops or "| (nothing dropped) | 0 |", "",
        "Dropped rows, with their reason and detail: `load_dataset(DIR, 'rejected')`.", "",
        *diversity_section(manifest),
        "## Reproduce", "", "```", options.command, "```", "",
    ])
