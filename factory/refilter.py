"""`factory filter`: the filter chain on an existing dataset, in stage order: read →
heuristics → dedup → measure → write.

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
from filters.base import KEEP, Decision

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
    # "ray": the chain runs on a Ray cluster (ray_address, else RAY_ADDRESS, else a local one).
    engine: str = "local"
    ray_address: str | None = None


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
    engine: dict[str, Any] = {"kind": "local"}
    if options.engine == "ray":
        from factory.cluster import describe_address, ray_session

        with ray_session(options.ray_address):
            decisions, counts = decide_rows_on_ray(options, rows, ids)
        engine = {"kind": "ray", "address": describe_address(options.ray_address),
                  "dedup": counts}
    else:
        decisions = decide_rows(options, rows, ids)
    kept = [{"id": i, **r} for i, r, d in zip(ids, rows, decisions) if d.keep]
    dropped = [{"id": i, "reason": d.reason, "detail": d.detail, **r}
               for i, r, d in zip(ids, rows, decisions) if not d.keep]
    manifest = _manifest(options, rows, kept, decisions, time.monotonic() - start)
    manifest["engine"] = engine
    from factory.output import OutputFolder

    OutputFolder(options.out).write_tables(kept, dropped, manifest,
                                           lambda m: _card(options, m), tags=["factory"])
    return manifest


def decide_rows(options: FilterOptions, rows: list[dict[str, Any]],
                ids: list[str]) -> list[Decision]:
    """One decision per row: the heuristics, then dedup of what they kept, in row order."""
    from filters.dedup import Deduplicator
    from filters.heuristics import build_heuristics, run_chain

    heuristics, dedup, evals = _chain(options)
    chain = build_heuristics(heuristics) if heuristics else []
    decisions = [run_chain(chain, r) for r in rows]
    if dedup is None:
        return decisions
    deduplicator = Deduplicator(dedup)
    if evals:
        deduplicator.add_decontamination(*evals)
    todo = [i for i, d in enumerate(decisions) if d.keep]
    text = options.text_field
    found = deduplicator.check_records([{text: str(rows[i][text] or "")} for i in todo],
                                       [ids[i] for i in todo])
    for i, decision in zip(todo, found):
        decisions[i] = decision
    return decisions


def decide_rows_on_ray(options: FilterOptions, rows: list[dict[str, Any]],
                       ids: list[str]) -> tuple[list[Decision], dict[str, Any]]:
    """`decide_rows` on a connected Ray cluster: the heuristics as a parallel Ray Data stage,
    then `filters.dedup_ray` (band-key grouping across the whole dataset). The decisions are
    the local ones; also gives what the dedup stage counted."""
    import ray

    from filters.dedup_ray import RayDeduplicator, blocks_for

    heuristics, dedup, evals = _chain(options)
    decisions = [KEEP] * len(rows)
    text = options.text_field
    if heuristics and rows:
        # Only strings are read by the heuristics (as locally): other values travel as null.
        items = [{"row": i, "text": r[text] if isinstance(r[text], str) else None}
                 for i, r in enumerate(rows)]
        stage = ray.data.from_items(items, override_num_blocks=blocks_for(len(items)))
        for batch in stage.map_batches(_Heuristics(heuristics, text),
                                       batch_format="numpy").iter_batches(batch_format="numpy"):
            for i, reason, detail in zip(batch["row"].tolist(), batch["reason"].tolist(),
                                         batch["detail"].tolist()):
                decisions[i] = Decision(False, reason, detail or None)
    if dedup is None:
        return decisions, {}
    todo = [i for i, d in enumerate(decisions) if d.keep]
    deduplicator = RayDeduplicator(dedup)
    found = deduplicator.decide([str(rows[i][text] or "") for i in todo], [ids[i] for i in todo],
                                decontaminate=evals)
    for i, decision in zip(todo, found):
        decisions[i] = decision
    return decisions, deduplicator.stats


class _Heuristics:
    """Ray Data UDF: the heuristic chain on a batch; gives the dropped rows only."""

    def __init__(self, config: dict[str, Any], text_field: str) -> None:
        self.config, self.text_field = config, text_field
        self._chain: Any = None

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        import numpy as np

        from filters.heuristics import build_heuristics, run_chain

        if self._chain is None:  # built once per worker copy, not once per batch
            self._chain = build_heuristics(self.config)
        chain = self._chain
        out: dict[str, list[Any]] = {"row": [], "reason": [], "detail": []}
        for row, text in zip(batch["row"].tolist(), batch["text"].tolist()):
            decision = run_chain(chain, {self.text_field: text})
            if not decision.keep:
                out["row"].append(row)
                out["reason"].append(decision.reason)
                out["detail"].append(decision.detail or "")
        return {"row": np.array(out["row"], dtype=np.int64),
                "reason": np.array(out["reason"], dtype=object),
                "detail": np.array(out["detail"], dtype=object)}


def _chain(options: FilterOptions) -> tuple[dict[str, Any] | None, dict[str, Any] | None,
                                            tuple[list[str], list[str]] | None]:
    """The heuristics config, the dedup config and the eval set (texts, ids) that --only and
    --decontaminate ask for (None where a part is off)."""
    text = options.text_field
    disable = [n for n in FILTER_NAMES[:6] if n not in options.only and n != "length"]
    heuristics = None
    if set(options.only) & set(FILTER_NAMES[:6]):
        heuristics = {"fields": [text], "disable": disable}
    if not {"exact", "near"} & set(options.only):
        return heuristics, None, None
    dedup = {"text_fields": [text], "threshold": options.threshold,
             "exact": "exact" in options.only, "near": "near" in options.only}
    evals = None
    if options.decontaminate:
        texts = eval_texts(options.decontaminate, options.decontaminate_field)
        evals = (texts, [f"eval-{i}" for i in range(len(texts))])
    return heuristics, dedup, evals


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
