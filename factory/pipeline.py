"""One distill run, in stage order: plan → render → teach → filter → select → write.

`distill()` is the table of contents; each stage below it is one function. This is the only module
that knows the order of the stages. Every teacher answer is cached under its request key as it
arrives, so rerunning on the same output folder asks the teacher only for what is missing.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from factory.cache import ResponseCache, ask, request_key
from factory.filtering import LLMJudge, RecordFilters, Selector, build_filters, pool_size
from factory.output import OutputFolder, RunRecord
from factory.plan import Planner, Request
from factory.progress import Progress, RunStats
from factory.render import Renderer
from factory.tasks import Task, sha256_json
from factory.teachers.base import Sampling, Teacher, TeachRequest, TeachResult
from filters.base import Decision
from filters.schema import SchemaCheck

log = logging.getLogger(__name__)

# Until this many answers were decided, assume half are accepted when sizing a batch.
_PRIOR_RATE, _PRIOR_WEIGHT = 0.5, 16
# Every slice may use at least this many requests, however small its quota.
_MIN_ATTEMPTS = 8


@dataclass
class RunOptions:
    out: Path
    num_records: int
    seed: int = 0
    batch_size: int | None = None
    command: str = ""
    # The dataset folder is rewritten at least this often while a run goes on, so a run that
    # dies without a trace still leaves a loadable dataset of what it had accepted.
    checkpoint_seconds: float = 300.0
    # Quotas per slice value (from --fill-gaps); otherwise num_records split by the label weights.
    quotas: dict[str, int] | None = None
    decontaminate: Path | None = None
    decontaminate_field: str | None = None
    # Held-out split ratios ({"validation": 0.1, ...}); None: the task config's `splits`.
    splits: dict[str, float] | None = None
    # Also write a checkpoint each time the accepted count passes a multiple of this.
    checkpoint_rows: int | None = None
    # Called after every write of the folder, with `final` True for the last one (publishing
    # to the Hub hooks in here).
    after_write: Callable[[RunResult, bool], None] | None = None


@dataclass
class Slice:
    """Quota bookkeeping of one label value: it collects `pool` candidates that pass every
    filter, and selection keeps `quota` of them."""

    value: str
    quota: int
    pool: int
    max_requests: int
    next_index: int = 0
    accepted: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    warned: bool = False

    @property
    def deficit(self) -> int:
        return max(self.pool - self.accepted, 0)

    @property
    def rows(self) -> int:
        return min(self.accepted, self.quota)

    @property
    def exhausted(self) -> bool:
        return self.next_index >= self.max_requests


@dataclass
class Candidate:
    request: Request
    teach: TeachRequest
    result: TeachResult | None = None
    fields: dict[str, Any] | None = None
    decision: Decision | None = None
    verdict: dict[str, Any] | None = None


class Timings(dict):
    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        start = time.monotonic()
        try:
            yield
        finally:
            self[stage] = self.get(stage, 0.0) + time.monotonic() - start


@dataclass
class RunResult:
    """The state of a run: what was accepted and rejected so far, with its counts."""

    out: Path
    stats: RunStats
    slices: dict[str, Slice]
    runs: int = 1
    accepted: list[Candidate] = field(default_factory=list)
    rejected: list[Candidate] = field(default_factory=list)
    timings: Timings = field(default_factory=lambda: Timings())
    interrupted: bool = False

    @property
    def complete(self) -> bool:
        return all(s.accepted >= s.quota for s in self.slices.values())


def distill(task: Task, teacher: Teacher, options: RunOptions,
            progress: Progress | None = None, *, runs: int = 1,
            judge_teacher: Teacher | None = None) -> RunResult:
    """Generate until every label slice has its quota of accepted records, then write them.

    With `judge_teacher`, rows that pass the cheap filters are scored against the task's rubric.
    """
    progress = progress or Progress()
    planner = Planner(task, options.seed)
    renderer = Renderer(task)
    slices = plan_slices(task, options.quotas or planner.quotas(options.num_records))
    stats = RunStats(target=sum(s.pool for s in slices.values()), rows=options.num_records)
    run = RunResult(options.out, stats, slices, runs)
    out, timings, last_write = OutputFolder(options.out), run.timings, time.monotonic()
    last_accepted = 0
    with timings("filter"):
        chain = build_filters(task, options.decontaminate, options.decontaminate_field)
    llm_judge = LLMJudge(task, judge_teacher, renderer, options.seed) if judge_teacher else None
    selector = Selector(task)
    with ResponseCache(out.cache_path) as cache:
        try:
            while batch := next_batch(task, planner, slices, run.stats, options):
                with timings("render"):
                    candidates = render(task, teacher, renderer, batch)
                with timings("teach"):
                    teach(teacher, candidates, cache, run.stats, progress)
                with timings("filter"):
                    passed = filter_batch(task, chain, candidates, run)
                with timings("judge"):
                    judge(llm_judge, passed, cache, run)
                admit(passed, run)
                progress.update(run.stats)
                warn_exhausted(slices, progress)
                if (time.monotonic() - last_write >= options.checkpoint_seconds
                        or _passed_multiple(options.checkpoint_rows, run.stats.accepted,
                                            last_accepted)):
                    last_accepted = run.stats.accepted
                    write(out, task, teacher, options, run, select(run, selector),
                          llm_judge=llm_judge)
                    last_write = time.monotonic()
        except KeyboardInterrupt:
            run.interrupted = True
            progress.warn("Interrupted: writing what was accepted so far")
    progress.stage("Selecting the most diverse rows and measuring diversity")
    write(out, task, teacher, options, run, select(run, selector), final=True,
          selector=selector, llm_judge=llm_judge)
    progress.close()
    return run


def write(out: OutputFolder, task: Task, teacher: Teacher, options: RunOptions,
          run: RunResult, selection: Selection, *, final: bool = False,
          selector: Selector | None = None, llm_judge: LLMJudge | None = None) -> None:
    """Write the dataset folder as the run stands (a checkpoint, or the end)."""
    diversity = None
    if final and selector is not None and selection.rows:
        with run.timings("diversity"):
            diversity = measure_diversity(selection.rows, selector)
    with run.timings("write"):
        out.write(RunRecord(task, teacher, options, run, selection.rows,
                            run.rejected + selection.not_selected, diversity,
                            llm_judge.summary() if llm_judge else None))
    if options.after_write is not None:
        options.after_write(run, final)


def _passed_multiple(every: int | None, now: int, before: int) -> bool:
    return every is not None and every > 0 and now // every > before // every


# -- plan ------------------------------------------------------------------------------------


def plan_slices(task: Task, quotas: dict[str, int]) -> dict[str, Slice]:
    factor = task.config.generation.max_requests_per_record
    slices = {}
    for value, quota in quotas.items():
        if quota > 0:
            pool = pool_size(task, quota)
            slices[value] = Slice(value, quota, pool, max(_MIN_ATTEMPTS, math.ceil(pool * factor)))
    return slices


def next_batch(task: Task, planner: Planner, slices: dict[str, Slice], stats: RunStats,
               options: RunOptions) -> list[Request]:
    """Requests for the slices still short of quota, sized by the acceptance rate so far."""
    size = options.batch_size or task.config.generation.batch_size
    rate = (stats.acceptance_rate * stats.decided + _PRIOR_RATE * _PRIOR_WEIGHT) / (
        stats.decided + _PRIOR_WEIGHT)
    wanted = {
        s.value: min(math.ceil(s.deficit / max(rate, 0.05)), s.max_requests - s.next_index)
        for s in slices.values() if s.deficit and not s.exhausted
    }
    batch: list[Request] = []
    while len(batch) < size and any(wanted.values()):
        for value in wanted:
            if wanted[value] and len(batch) < size:
                batch.append(planner.request(value, slices[value].next_index))
                slices[value].next_index += 1
                wanted[value] -= 1
    return batch


# -- render ----------------------------------------------------------------------------------


def render(task: Task, teacher: Teacher, renderer: Renderer,
           batch: list[Request]) -> list[Candidate]:
    gen = task.config.generation
    schema = task.output_schema()
    identity = teacher.identity()
    candidates = []
    for request in batch:
        messages = renderer.messages(request)
        sampling = Sampling(gen.temperature, gen.top_p, gen.max_tokens, request.seed)
        key = request_key(
            messages=messages, schema=schema, teacher=identity, sampling=sampling.as_dict(),
            seed_ids=list(request.seed_ids), attributes=dict(request.attributes),
            labels=dict(request.labels),
        )
        candidates.append(Candidate(request, TeachRequest(key, messages, sampling, schema)))
    return candidates


# -- teach -----------------------------------------------------------------------------------


def teach(teacher: Teacher, candidates: list[Candidate], cache: ResponseCache,
          stats: RunStats, progress: Progress | None = None) -> None:
    """Answer every candidate: from the cache where possible, else in one teacher batch."""
    seconds: dict[str, float] = {}
    results = ask(teacher, [c.teach for c in candidates], cache,
                  progress.answers if progress else None, seconds)
    stats.start_seconds += seconds.get("start", 0.0)
    stats.teach_seconds += seconds.get("generate", 0.0)
    for c in candidates:
        c.result = results[c.teach.key]
        stats.count_tokens(c.result)
    stats.requests += len(candidates)
    stats.cache_hits += sum(c.result.cached for c in candidates if c.result)


# -- filter --------------------------------------------------------------------------------


def filter_batch(task: Task, chain: RecordFilters, candidates: list[Candidate],
                 run: RunResult) -> list[Candidate]:
    """Schema check, then the task's cheap filters, in request order, so what passes does not
    depend on the order answers arrived in. Gives what passed, not yet admitted to a pool."""
    check = SchemaCheck(task.record_model)
    pending: Counter[str] = Counter()
    passed = []
    for c in sorted(candidates, key=lambda c: (c.request.slice, c.request.index)):
        s = run.slices[c.request.slice]
        full = s.accepted + pending[s.value] >= s.pool
        c.fields, c.decision = _decide(check, chain, c, pool_full=full)
        if c.decision.keep:
            pending[s.value] += 1
            passed.append(c)
        else:
            reject(run, c)
    return passed


def judge(llm_judge: LLMJudge | None, passed: list[Candidate], cache: ResponseCache,
          run: RunResult) -> None:
    """The expensive filter, on what the cheap ones kept: one judge batch per generated batch."""
    if llm_judge is None or not passed:
        return
    verdicts = llm_judge.judge([(row_id(c.fields), c.fields) for c in passed], cache, run.stats)
    for c, (verdict, decision) in zip(passed, verdicts):
        c.verdict, c.decision = verdict, decision


def admit(passed: list[Candidate], run: RunResult) -> None:
    """Candidates still kept join their slice's pool."""
    for c in passed:
        if c.decision is not None and c.decision.keep:
            run.slices[c.request.slice].accepted += 1
            run.stats.accepted += 1
            run.accepted.append(c)
        else:
            reject(run, c)


def reject(run: RunResult, c: Candidate) -> None:
    reason = (c.decision.reason if c.decision else None) or "unknown"
    if reason == "surplus":
        run.stats.surplus += 1
    else:
        run.stats.dropped[reason] += 1
        run.slices[c.request.slice].dropped[reason] += 1
    run.rejected.append(c)


def _decide(check: SchemaCheck, chain: RecordFilters, c: Candidate,
            pool_full: bool) -> tuple[dict[str, Any] | None, Decision]:
    assert c.result is not None
    if c.result.error:
        return None, Decision(False, "teacher_error", c.result.error)
    fields, decision = check.parse(c.result.text, dict(c.request.labels), c.result.finish_reason)
    if not decision.keep:
        return fields, decision
    if pool_full:
        return fields, Decision(False, "surplus", "the slice's pool was already full")
    return fields, chain.check(fields, row_id(fields))


def row_id(fields: dict[str, Any] | None) -> str:
    """A stable id derived from a record's content."""
    return sha256_json(fields)[:16]


# -- select ----------------------------------------------------------------------------------


@dataclass
class Selection:
    rows: list[Candidate]
    not_selected: list[Candidate]


def select(run: RunResult, selector: Selector) -> Selection:
    """Each slice keeps `quota` of its pool: the most spread-out rows."""
    rows, not_selected = [], []
    for value, s in run.slices.items():
        pool = [c for c in run.accepted if c.request.slice == value]
        keep = set(selector.select([(row_id(c.fields), c.fields) for c in pool], s.quota))
        for i, c in enumerate(pool):
            if i in keep:
                rows.append(c)
            else:
                not_selected.append(Candidate(c.request, c.teach, c.result, c.fields,
                                              Decision(False, "not_selected",
                                                       "a more diverse row was kept"),
                                              c.verdict))
    return Selection(rows, not_selected)


def measure_diversity(rows: list[Candidate], selector: Selector,
                      sample: int = 5000) -> dict[str, Any]:
    """Diversity metrics of the written rows (on a seeded sample of at most `sample`)."""
    from filters.diversity import diversity_report

    chosen = rows if len(rows) <= sample else random.Random(0).sample(rows, sample)
    ids = [row_id(c.fields) for c in chosen]
    texts = [selector.text(c.fields) for c in chosen]
    report = diversity_report(texts, selector.embed(ids, texts))
    return {"rows": len(chosen), "embedder": selector.embedder.name,
            **{k: round(v, 4) for k, v in report.items()}}


def warn_exhausted(slices: dict[str, Slice], progress: Progress) -> None:
    for s in slices.values():
        if s.deficit and s.exhausted and not s.warned:
            top = ", ".join(f"{r} ({n})" for r, n in s.dropped.most_common(3)) or "none"
            progress.warn(f"Slice {s.value!r} stopped at {s.accepted}/{s.pool} after "
                          f"{s.next_index} requests; top rejection reasons: {top}")
            s.warned = True

