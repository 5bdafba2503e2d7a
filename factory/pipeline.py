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

from factory.budget import Budget
from factory.cache import ResponseCache, ask, request_key
from factory.filtering import LLMJudge, RecordFilters, Selector, build_filters, selection_blocks
from factory.output import OutputFolder, RunRecord
from factory.plan import Planner, Request
from factory.progress import Progress, RunStats
from factory.render import Renderer
from factory.tasks import Task, sha256_json
from factory.teachers.base import Sampling, Teacher, TeachRequest, TeachResult, estimate_tokens
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
    # Hard caps on what this invocation spends (--max-usd, --max-tokens) and the teacher's price.
    budget: Budget = field(default_factory=Budget)
    # Held-out split ratios ({"validation": 0.1, ...}); None: the task config's `splits`.
    splits: dict[str, float] | None = None
    # Also write a checkpoint each time the accepted count passes a multiple of this.
    checkpoint_rows: int | None = None
    # Called after every write of the folder, with `final` True for the last one (publishing
    # to the Hub hooks in here).
    after_write: Callable[[RunResult, bool], None] | None = None


@dataclass
class Slice:
    """Quota bookkeeping of one label value. Its `quota` rows are cut into selection blocks of
    (rows, pool): candidates that pass every filter fill the open block, and once it holds its
    pool, selection keeps `rows` of them for good. Rows of a selected block are final."""

    value: str
    quota: int
    blocks: list[tuple[int, int]]
    max_requests: int
    next_index: int = 0
    accepted: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    warned: bool = False
    rows: list[Candidate] = field(default_factory=list)
    open: list[Candidate] = field(default_factory=list)
    passed_over: list[Candidate] = field(default_factory=list)
    closed: int = 0

    @property
    def pool(self) -> int:
        return sum(pool for _, pool in self.blocks)

    @property
    def deficit(self) -> int:
        return max(self.pool - self.accepted, 0)

    @property
    def exhausted(self) -> bool:
        return self.next_index >= self.max_requests

    @property
    def block_full(self) -> bool:
        return self.closed < len(self.blocks) and len(self.open) >= self.blocks[self.closed][1]


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
    # Why the run stopped early on its own: "budget" when a spending cap was reached.
    stopped: str | None = None
    teacher_stats: dict[str, Any] | None = None
    earlier_usd: float = 0.0  # spent by the invocations this one resumes

    @property
    def complete(self) -> bool:
        return all(len(s.rows) >= s.quota for s in self.slices.values())

    @property
    def rows(self) -> int:
        """Rows that are final (in selected blocks)."""
        return sum(len(s.rows) for s in self.slices.values())

    @property
    def pending(self) -> int:
        """Candidates waiting in selection blocks that are not full yet (cached, not written)."""
        return sum(len(s.open) for s in self.slices.values())


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
    stats.spent_usd = 0.0 if options.budget.price is not None else None
    run = RunResult(options.out, stats, slices, runs)
    out, timings, last_write = OutputFolder(options.out), run.timings, time.monotonic()
    if runs > 1:
        run.earlier_usd = ((out.read_manifest() or {}).get("spend") or {}).get("total_usd") or 0.0
    last_rows = 0
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
                    candidates = teach(teacher, candidates, cache, run.stats, progress,
                                       options.budget)
                with timings("filter"):
                    passed = filter_batch(task, chain, candidates, run)
                with timings("judge"):
                    judge(llm_judge, passed, cache, run, options.budget)
                with timings("select"):
                    admit(passed, run, selector)
                progress.update(run.stats)
                warn_exhausted(slices, progress)
                if options.budget.hit and not run.complete:
                    run.stopped = "budget"
                    progress.warn("Spending cap reached: writing what was accepted so far")
                    break
                if (time.monotonic() - last_write >= options.checkpoint_seconds
                        or _passed_multiple(options.checkpoint_rows, run.rows, last_rows)):
                    last_rows = run.rows
                    write(out, task, teacher, options, run, selection(run),
                          llm_judge=llm_judge)
                    last_write = time.monotonic()
        except KeyboardInterrupt:
            run.interrupted = True
            progress.warn("Interrupted: writing what was accepted so far")
    run.teacher_stats = teacher.stats() if hasattr(teacher, "stats") else None
    if not run.interrupted and not run.stopped:
        with timings("select"):
            close_exhausted(run, selector)
    progress.stage("Measuring diversity and writing the dataset")
    write(out, task, teacher, options, run, selection(run), final=True,
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
            blocks = selection_blocks(task, quota)
            pool = sum(p for _, p in blocks)
            slices[value] = Slice(value, quota, blocks,
                                  max(_MIN_ATTEMPTS, math.ceil(pool * factor)))
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
          stats: RunStats, progress: Progress | None = None,
          budget: Budget | None = None) -> list[Candidate]:
    """Answer every candidate: from the cache where possible, else in one teacher batch. Under
    a spending cap, only the requests whose worst case fits are sent; the answered candidates
    are returned."""
    seconds: dict[str, float] = {}
    allow = None
    if budget is not None and budget.capped:
        allow = lambda missing: budget.allow(  # noqa: E731
            (estimate_tokens(r.messages), r.sampling.max_tokens) for r in missing)
    results = ask(teacher, [c.teach for c in candidates], cache,
                  progress.answers if progress else None, seconds, allow)
    stats.start_seconds += seconds.get("start", 0.0)
    stats.teach_seconds += seconds.get("generate", 0.0)
    answered = [c for c in candidates if c.teach.key in results]
    for c in answered:
        c.result = results[c.teach.key]
        stats.count_tokens(c.result)
        if budget is not None and not c.result.cached:
            budget.spend(c.result.prompt_tokens, c.result.completion_tokens)
    if budget is not None:
        stats.spent_usd = budget.spent_usd if budget.price is not None else None
    stats.requests += len(answered)
    stats.cache_hits += sum(c.result.cached for c in answered if c.result)
    return answered


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
          run: RunResult, budget: Budget | None = None) -> None:
    """The expensive filter, on what the cheap ones kept: one judge batch per generated batch.
    Its new tokens count toward the spending caps (checked before the next batch)."""
    if llm_judge is None or not passed:
        return
    before = run.stats.new_prompt_tokens, run.stats.new_completion_tokens
    verdicts = llm_judge.judge([(row_id(c.fields), c.fields) for c in passed], cache, run.stats)
    if budget is not None:
        budget.spend(run.stats.new_prompt_tokens - before[0],
                     run.stats.new_completion_tokens - before[1])
    for c, (verdict, decision) in zip(passed, verdicts):
        c.verdict, c.decision = verdict, decision


def admit(passed: list[Candidate], run: RunResult, selector: Selector) -> None:
    """Candidates still kept join their slice's open block; a block that is full is selected."""
    for c in passed:
        if c.decision is not None and c.decision.keep:
            s = run.slices[c.request.slice]
            s.accepted += 1
            run.stats.accepted += 1
            run.accepted.append(c)
            s.open.append(c)
            if s.block_full:
                close_block(s, selector)
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


def close_block(s: Slice, selector: Selector) -> None:
    """Select the open block: keep its `rows` candidates farthest from each other and from the
    slice's rows so far. The rest go to `rejected` as not_selected. Both are final."""
    quota = s.blocks[s.closed][0]
    keep = set(selector.select([(row_id(c.fields), c.fields) for c in s.open], quota,
                               chosen=[(row_id(c.fields), c.fields) for c in s.rows]))
    for i, c in enumerate(s.open):
        if i in keep:
            s.rows.append(c)
        else:
            s.passed_over.append(Candidate(c.request, c.teach, c.result, c.fields,
                                           Decision(False, "not_selected",
                                                    "a more diverse row was kept"),
                                           c.verdict))
    s.open = []
    s.closed += 1


def close_exhausted(run: RunResult, selector: Selector) -> None:
    """At the end of a run, a slice that ran out of attempts selects what its open block has."""
    for s in run.slices.values():
        if s.open:
            close_block(s, selector)


def selection(run: RunResult) -> Selection:
    """The rows of every selected block, and the candidates selection passed over."""
    rows = [c for s in run.slices.values() for c in s.rows]
    return Selection(rows, [c for s in run.slices.values() for c in s.passed_over])


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

