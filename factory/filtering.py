"""The task's filter chain, built from its config: heuristics, dedup, diversity selection.

The filters themselves live in `filters/` and know records, not tasks; this module turns a task's
`filters:` block (and `--decontaminate`) into configured filter objects for the pipeline.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any, Sequence

from factory.errors import FactoryError
from factory.tasks import Task
from filters.base import KEEP, Decision, Filter

log = logging.getLogger(__name__)


class RecordFilters:
    """Everything a schema-valid record must pass, cheapest first: heuristics, then dedup.

    `check(fields, row_id)` answers keep or drop; a kept record enters the dedup index, so the
    first of two near-duplicates wins.
    """

    def __init__(self, heuristics: list[Filter], dedup: Any | None) -> None:
        self.heuristics = heuristics
        self.dedup = dedup

    @property
    def names(self) -> list[str]:
        found = [h.name for h in self.heuristics]
        return found + (["dedup"] if self.dedup is not None else [])

    def check(self, fields: dict[str, Any], row_id: str) -> Decision:
        for heuristic in self.heuristics:
            decision = heuristic(fields)
            if not decision.keep:
                return decision
        if self.dedup is not None:
            return self.dedup.check_record(fields, row_id)
        return KEEP


def build_filters(task: Task, decontaminate: Path | None = None,
                  decontaminate_field: str | None = None) -> RecordFilters:
    """The configured chain; the dedup index already holds the seeds and the eval set."""
    from filters.dedup import Deduplicator
    from filters.heuristics import build_heuristics

    spec = task.config.filters
    heuristics: list[Filter] = []
    if spec.heuristics.enabled:
        heuristics = build_heuristics({
            "fields": task.config.text_fields,
            "language": spec.heuristics.language,
            "disable": list(spec.heuristics.disable),
            **({"length": dict(spec.heuristics.length)} if spec.heuristics.length else {}),
        })
    dedup = None
    if spec.dedup.enabled:
        d = spec.dedup
        dedup = Deduplicator({"text_fields": task.config.dedup_fields, "shingle": d.shingle,
                              "ngram": d.ngram, "num_perm": d.num_perm,
                              "threshold": d.threshold})
        if d.against_seeds and task.seeds:
            dedup.add_seeds([dedup.text_of(s.record) for s in task.seeds],
                            [s.id for s in task.seeds])
        path = decontaminate or (task.path.parent / d.decontaminate if d.decontaminate else None)
        if path is not None:
            texts = eval_texts(Path(path), decontaminate_field or d.decontaminate_field)
            dedup.add_decontamination(texts, [f"eval-{i}" for i in range(len(texts))])
            log.info("decontamination: %d texts from %s", len(texts), path)
    return RecordFilters(heuristics, dedup)


def eval_texts(path: Path, field: str) -> list[str]:
    from factory.datafiles import read_table

    table = read_table(path)
    if field not in table.column_names:
        raise FactoryError(f"no column {field!r} (columns: {', '.join(table.column_names)})",
                           path=path, field="decontaminate_field",
                           hint="name the eval set's text column")
    return [str(t) for t in table[field] if t is not None]


def pool_size(task: Task, quota: int) -> int:
    """Candidates a slice collects before selection keeps `quota` of them."""
    select = task.config.filters.select
    if select.method == "first" or quota == 0:
        return quota
    return math.ceil(quota * select.pool)


class Selector:
    """Keeps `quota` of each slice's pool: the most spread-out rows (greedy k-center on sentence
    embeddings), or simply the first ones (`method: first`). Embeddings are cached by row id, so
    a checkpoint's selection costs only the rows that are new since the last one."""

    def __init__(self, task: Task, embedder: Any | None = None) -> None:
        self.task = task
        self.method = task.config.filters.select.method
        self._embedder = embedder
        self._cache: dict[str, Any] = {}

    @property
    def embedder(self) -> Any:
        if self._embedder is None:
            from filters.diversity import MiniLMEmbedder

            self._embedder = MiniLMEmbedder()
        return self._embedder

    def text(self, fields: dict[str, Any]) -> str:
        return "\n".join(str(fields[k]) for k in self.task.config.text_fields)

    def embed(self, ids: Sequence[str], texts: Sequence[str]) -> Any:
        import numpy as np

        missing = [(i, t) for i, t in zip(ids, texts) if i not in self._cache]
        if missing:
            vectors = self.embedder.encode([t for _, t in missing])
            self._cache.update({i: v for (i, _), v in zip(missing, vectors)})
        return np.stack([self._cache[i] for i in ids]) if ids else np.zeros((0, 1), "float32")

    def select(self, pool: Sequence[tuple[str, dict[str, Any]]], quota: int) -> list[int]:
        """Indices of `pool` (row id, fields) to keep, in pool order."""
        if len(pool) <= quota or self.method == "first":
            return list(range(min(quota, len(pool))))
        from filters.diversity import k_center

        vectors = self.embed([i for i, _ in pool], [self.text(f) for _, f in pool])
        return sorted(k_center(vectors, quota))
