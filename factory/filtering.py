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
from filters.base import Decision, Filter

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
        from filters.heuristics import run_chain

        decision = run_chain(self.heuristics, fields)
        if decision.keep and self.dedup is not None:
            return self.dedup.check_record(fields, row_id)
        return decision


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


def selection_blocks(task: Task, quota: int) -> list[tuple[int, int]]:
    """(rows, pool) of each selection block of a slice: `quota` rows cut into blocks of
    `select.block`, each collecting ceil(pool x rows) candidates before it is selected."""
    select = task.config.filters.select
    factor = 1.0 if select.method == "first" else select.pool
    sizes = [min(select.block, quota - start) for start in range(0, quota, select.block)]
    return [(rows, math.ceil(rows * factor)) for rows in sizes]


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

    def select(self, pool: Sequence[tuple[str, dict[str, Any]]], quota: int,
               chosen: Sequence[tuple[str, dict[str, Any]]] = ()) -> list[int]:
        """Indices of `pool` (row id, fields) to keep, in pool order: the `quota` rows farthest
        from each other and from the rows `chosen` before (earlier blocks of the slice)."""
        if len(pool) <= quota or self.method == "first":
            return list(range(min(quota, len(pool))))
        from filters.diversity import k_center

        rows = [*chosen, *pool]
        vectors = self.embed([i for i, _ in rows], [self.text(f) for _, f in rows])
        picks = k_center(vectors, quota, preselected=range(len(chosen)))
        return sorted(i - len(chosen) for i in picks)


class LLMJudge:
    """Scores records against the task's rubric with a teacher; answers are cached like
    generation. The first `agreement_sample` rows are judged a second time with the criteria in
    reverse order, and the two verdicts' agreement is kept for the manifest."""

    def __init__(self, task: Task, teacher: Any, renderer: Any, seed: int) -> None:
        self.task = task
        self.teacher = teacher
        self.renderer = renderer
        self.spec = task.config.filters.judge
        self.criteria = list(self.spec.criteria)
        self.seed = seed
        self.pairs: list[tuple[dict[str, int], dict[str, int]]] = []
        self.judged = 0
        self.invalid = 0

    def describe(self) -> str:
        return self.teacher.describe()

    def request(self, fields: dict[str, Any], row: str, criteria: list[str]) -> Any:
        from factory.cache import request_key
        from factory.plan import derive_seed
        from factory.teachers.base import Sampling, TeachRequest
        from filters.judge import verdict_schema

        messages = self.renderer.judge_messages(fields, criteria)
        schema = verdict_schema(criteria)
        sampling = Sampling(self.spec.temperature, 1.0, self.spec.max_tokens,
                            derive_seed("judge", self.seed, row, *criteria))
        key = request_key(kind="judge", messages=messages, schema=schema,
                          teacher=self.teacher.identity(), sampling=sampling.as_dict())
        return TeachRequest(key, messages, sampling, schema)

    def judge(self, records: list[tuple[str, dict[str, Any]]], cache: Any,
              stats: Any) -> list[tuple[dict[str, Any] | None, Decision]]:
        """Verdicts and decisions for (row id, fields) pairs, in order, in one teacher batch."""
        from factory.cache import ask
        from filters.judge import parse_verdict

        reverse = list(reversed(self.criteria))
        second = max(0, min(len(records), self.spec.agreement_sample - len(self.pairs)))
        requests = [self.request(f, r, self.criteria) for r, f in records]
        requests += [self.request(f, r, reverse) for r, f in records[:second]]
        answers = ask(self.teacher, requests, cache)
        for r in requests:
            stats.count_tokens(answers[r.key])
        out = []
        for request in requests[:len(records)]:
            answer = answers[request.key]
            out.append(parse_verdict(answer.text, self.criteria, self.spec.threshold))
        for (verdict, _), request in zip(out, requests[len(records):]):
            again, _ = parse_verdict(answers[request.key].text, reverse, self.spec.threshold)
            if verdict and again:
                self.pairs.append((verdict["scores"], again["scores"]))
        self.judged += len(records)
        self.invalid += sum(d.reason == "judge_invalid" for _, d in out)
        return out

    def summary(self) -> dict[str, Any]:
        from filters.judge import agreement

        agree = agreement(self.pairs)
        low = agree["within_one"] is not None and agree["within_one"] < self.spec.min_agreement
        return {
            "teacher": self.describe(),
            "rubric_sha256": self.task.judge_template.sha256 if self.task.judge_template else "",
            "criteria": self.criteria,
            "threshold": self.spec.threshold,
            "judged": self.judged,
            "invalid": self.invalid,
            "agreement": agree,
            "warning": (f"low agreement: {agree['within_one']:.0%} of scores within 1 point "
                        f"when the criteria are reordered (minimum {self.spec.min_agreement:.0%})"
                        if low else None),
        }
