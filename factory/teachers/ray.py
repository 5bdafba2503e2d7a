"""Any teacher spread over a Ray cluster (`--engine ray`): one engine or API client per actor.

The driver keeps everything that decides *what* is asked — planning, rendering, request keys, the
cache, the filters — so a Ray run sends exactly the requests a local run sends for the same seed
(tests/test_ray.py: given a local run's answers, a Ray run asks nothing and writes the same rows).
Live, with one actor, an uninterrupted Ray run got the local run's answers and rows (36 of 36,
each engine queues a whole chunk before its first step, see `VLLMTeacher.generate`); after an
interruption the answers can differ. With more than one actor a batch is cut into chunks, and an
engine's answers depend on the batch it computes them in, so they can differ from a local run's
(the requests are the same). Only the answering moves to the cluster:

* Each actor builds the same teacher the local engine would (`make_teacher` with the same spec and
  teacher config) and loads it once, for the whole run. For `embedded` and `vllm:` teachers that is
  one vLLM engine per actor, placed on `tensor_parallel_size` GPUs where the cluster has GPUs, else
  on one CPU node each. Actors check that their teacher's identity (model and revision) is the
  driver's, so a node with another model version cannot mix answers into the cache.
* A batch is cut into chunks, one per actor at a time; an actor that finishes gets the next chunk
  (the slowest engine never holds the others back). Each chunk's answers reach the driver's cache
  as soon as it lands, so a killed driver loses at most the chunks in flight.
* An actor that dies (a lost node, an engine crash) is restarted by Ray (at most MAX_RESTARTS
  times) and its chunk is sent again, to the first actor that is idle or back; the manifest
  counts these as `worker_restarts`.
* API teachers run as several client actors that share one rate limit: a small limiter actor
  hands out send times from one pair of request/token buckets (`RateLimiter.reserve`), and a 429
  or a server's lower limit seen by any client pauses or slows them all.

Why not Ray Data for generation: a Ray Data pipeline's actor pool lives for one dataset
execution, and the factory asks for one batch at a time (the next batch's size depends on how
many rows the last one kept), so every batch would load its engines again — minutes per batch for
a large model. Persistent actors load once. The filters and dedup, which see whole datasets, do
run on Ray Data (`factory filter --engine ray`).
"""

from __future__ import annotations

import asyncio
import logging
import math
import socket
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from factory.errors import FactoryError
from factory.teachers.base import Teacher, TeachRequest, TeachResult

log = logging.getLogger(__name__)

# Ray restarts a dead actor this many times; its chunk is re-sent each time.
MAX_RESTARTS = 3


@dataclass
class RayOptions:
    """How the teacher is spread: `actors` engines or clients (None: one per GPU group of
    `tensor_parallel_size`, else one per node for local models, 4 for API teachers), and the
    cluster address for logs and the manifest (never with credentials)."""

    actors: int | None = None
    address: str = "local instance"


@dataclass
class _Spec:
    """What an actor needs to build the driver's teacher (no secrets: API keys are read from
    each worker's own environment)."""

    spec: str
    config: dict[str, Any]
    base_url: str | None
    concurrency: int | None
    identity: dict[str, str]


class _TeacherWorker:
    """The actor body: one teacher, built and loaded once."""

    def __init__(self, spec: _Spec, limiter: Any = None) -> None:
        from factory.logs import quiet_third_parties
        from factory.teachers import TeacherConfig, build_teacher

        quiet_third_parties()
        self.teacher: Any = None
        self.error: str | None = None
        try:  # a user's error is reported by `start`, as one line, not as an actor crash
            teacher = build_teacher(spec.spec, TeacherConfig.model_validate(spec.config),
                                    base_url=spec.base_url, concurrency=spec.concurrency)
        except FactoryError as exc:  # e.g. no API key in the environment of this node's Ray
            self.error = f"on the Ray worker on {socket.gethostname()}: {exc}"
            return
        if teacher.identity() != spec.identity:
            self.error = (f"the Ray worker on {socket.gethostname()} has another teacher "
                          f"({teacher.identity()}) than the driver ({spec.identity}) — install "
                          "the same model and package versions on every node")
            return
        if limiter is not None and hasattr(teacher, "limiter"):
            teacher.limiter = SharedLimiter(limiter)
        self.teacher = teacher

    def start(self) -> tuple[str, str | None]:
        """(host, error): the teacher loaded, or the one-line reason it could not be."""
        if self.error is None:
            try:
                self.teacher.start()
            except FactoryError as exc:
                self.error = str(exc)
        return socket.gethostname(), self.error

    def generate(self, requests: list[TeachRequest]) -> list[TeachResult]:
        return list(self.teacher.generate(requests))

    def stats(self) -> dict[str, Any] | None:
        stats = getattr(self.teacher, "stats", None)
        return stats() if stats else None

    def close(self) -> None:
        if self.teacher is not None:
            self.teacher.close()


class _LimiterWorker:
    """The actor body of the shared rate limit: one RateLimiter, used by reservation."""

    def __init__(self, rpm: float | None, tpm: float | None) -> None:
        from factory.teachers.limits import RateLimiter

        self.limiter = RateLimiter(rpm, tpm)

    def reserve(self, tokens: int) -> float:
        return self.limiter.reserve(tokens)

    def settle(self, reserved: int, used: int) -> None:
        self.limiter.settle(reserved, used)

    def pause(self, seconds: float) -> None:
        self.limiter.pause(seconds)

    def observe(self, headers: dict[str, str]) -> None:
        self.limiter.observe(headers)

    def status(self) -> Any:
        return self.limiter.status()


class SharedLimiter:
    """`RateLimiter`'s interface inside a client actor, backed by the limiter actor: `acquire`
    reserves a send time there and sleeps until it; the rest are sent without waiting."""

    def __init__(self, handle: Any) -> None:
        self.handle = handle

    async def acquire(self, tokens: int = 0) -> None:
        delay = await self.handle.reserve.remote(tokens)
        if delay > 0:
            await asyncio.sleep(delay)

    def settle(self, reserved: int, used: int) -> None:
        self.handle.settle.remote(reserved, used)

    def pause(self, seconds: float) -> None:
        self.handle.pause.remote(seconds)

    def observe(self, headers: Any) -> None:
        limits = {k: v for k, v in (headers or {}).items()
                  if k.lower().startswith("x-ratelimit-")}
        if limits:  # most responses carry none: no message to the limiter then
            self.handle.observe.remote(limits)

    def status(self) -> Any:
        import ray

        return ray.get(self.handle.status.remote())


class RayTeacher:
    """`--engine ray`: the teacher `inner` answers on Ray actors; this object, on the driver,
    names it (so request keys are the local engine's) and hands out the chunks.

    >>> teacher = RayTeacher(make_teacher("embedded"), "embedded", TeacherConfig(), RayOptions())
    """

    def __init__(self, inner: Teacher, spec: str, config: Any, options: RayOptions, *,
                 base_url: str | None = None, concurrency: int | None = None) -> None:
        self.inner = inner
        self.options = options
        self.kind = getattr(inner, "kind", spec.partition(":")[0])
        self._api = self.kind == "openai"
        self._spec = _Spec(spec, config.model_dump(), base_url, concurrency, inner.identity())
        self._config = config
        self._actors: list[Any] = []
        self._limiter: Any = None
        self._hosts: list[str] = []
        self._probes: dict[Any, Any] = {}  # lost actors' probes: ref -> actor
        self._gone: set[int] = set()  # ids of the actors out of restarts
        self.counts: Counter[str] = Counter()

    # -- Teacher protocol

    def identity(self) -> dict[str, str]:
        return self.inner.identity()

    def describe(self) -> str:
        return self.inner.describe()

    def engine_info(self) -> dict[str, Any]:
        return {"kind": "ray", "address": self.options.address,
                "actors": len(self._actors) or self.options.actors,
                "nodes": sorted(set(self._hosts)),
                "worker_restarts": self.counts["worker_restarts"]}

    def start(self) -> None:
        if self._actors:
            return
        import ray

        count, resources = self._placement(ray)
        if self._api:
            api = self._config.api
            self._limiter = ray.remote(num_cpus=0)(_LimiterWorker).remote(
                api.requests_per_minute, api.tokens_per_minute)
        worker = ray.remote(max_restarts=MAX_RESTARTS, **resources)(_TeacherWorker)
        self._actors = [worker.remote(self._spec, self._limiter) for _ in range(count)]
        log.info("ray: starting %d %s actors (%s)", count, self.kind, resources)
        started = [self._start_one(ray, actor) for actor in self._actors]
        errors = [error for _, error in started if error]
        if errors:
            self.close()
            raise FactoryError(errors[0])
        self._hosts = [host for host, _ in started]
        log.info("ray: %d actors ready on %s", count, ", ".join(sorted(set(self._hosts))))

    def _start_one(self, ray: Any, actor: Any) -> tuple[str, str | None]:
        """Load one actor's teacher; an actor lost while loading is restarted by Ray and asked
        again (at most MAX_RESTARTS times)."""
        for attempt in range(MAX_RESTARTS + 1):
            try:
                return ray.get(actor.start.remote())
            except ray.exceptions.RayActorError as exc:
                failure: Exception = exc
                if attempt == MAX_RESTARTS:
                    break
                self.counts["worker_restarts"] += 1
                log.warning("ray: an actor was lost while loading (%s); retrying",
                            _first_line(exc))
                try:
                    ray.get(_back(actor))
                except ray.exceptions.RayActorError as gone:  # out of restarts
                    failure = gone
                    break
            except ray.exceptions.RayError as exc:  # e.g. its runtime environment failed
                failure = exc
                break
        self.close()
        raise FactoryError(f"the teacher did not start on Ray: {_first_line(failure)}",
                           field="--engine",
                           hint="see factory.log and the Ray worker logs under /tmp/ray"
                           ) from failure

    def _placement(self, ray: Any) -> tuple[int, dict[str, Any]]:
        """How many actors, and what each one reserves."""
        tp = self._config.engine.tensor_parallel_size
        total = ray.cluster_resources()
        gpus = int(total.get("GPU", 0))
        nodes = len([n for n in ray.nodes() if n.get("Alive")])
        if self._api:
            return self.options.actors or 4, {"num_cpus": 0}
        if gpus:
            default = max(1, gpus // tp)
            resources: dict[str, Any] = {"num_gpus": tp, "num_cpus": 1}
        else:
            default = max(1, nodes)
            resources = {"num_cpus": 1}
        count = self.options.actors or default
        if gpus and count * tp > gpus:
            raise FactoryError(f"{count} actors of {tp} GPUs need {count * tp} GPUs; the "
                               f"cluster has {gpus}", field="--ray-actors",
                               hint="use fewer actors or a smaller tensor_parallel_size")
        return count, resources

    def generate(self, requests: list[TeachRequest],
                 on_answer: Callable[[int, int], None] | None = None) -> Iterator[TeachResult]:
        for chunk in self.generate_chunks(requests, on_answer):
            yield from chunk

    def generate_chunks(self, requests: list[TeachRequest],
                        on_answer: Callable[[int, int], None] | None = None
                        ) -> Iterator[list[TeachResult]]:
        """Answers chunk by chunk, as each lands (the cache persists every chunk at once)."""
        if not requests:
            return
        import ray

        self.start()
        size = math.ceil(len(requests) / max(1, len(self._live())))
        todo = [requests[i:i + size] for i in range(0, len(requests), size)]
        # A chunk's call, or (chunk None) a lost actor's probe, done once Ray has it back;
        # probes still waiting at the end of a batch carry over to the next.
        running: dict[Any, tuple[Any, list[TeachRequest] | None]] = {
            ref: (actor, None) for ref, actor in self._probes.items()}
        self._probes = {}
        waiting = {id(actor) for actor, _ in running.values()}
        idle = [actor for actor in self._live() if id(actor) not in waiting]
        done = 0
        try:
            while todo or any(chunk is not None for _, chunk in running.values()):
                while todo and idle:
                    actor, chunk = idle.pop(), todo.pop(0)
                    running[actor.generate.remote(chunk)] = (actor, chunk)
                if not running:
                    raise FactoryError("every Ray actor of the teacher died for good (each "
                                       f"was restarted {MAX_RESTARTS} times)", field="--engine",
                                       hint="the answers so far are cached: rerun to resume; "
                                            "see the Ray worker logs under /tmp/ray")
                ready, _ = ray.wait(list(running), num_returns=1)
                actor, chunk = running.pop(ready[0])
                try:
                    results = ray.get(ready[0])
                except ray.exceptions.RayActorError as exc:
                    if chunk is None:  # out of restarts: the others carry on without it
                        log.warning("ray: an actor is gone for good (%s)", _first_line(exc))
                        self._gone.add(id(actor))
                        continue
                    self.counts["worker_restarts"] += 1
                    log.warning("ray: an actor was lost (%s); re-sending its %d requests",
                                _first_line(exc), len(chunk))
                    todo.insert(0, chunk)
                    running[_back(actor)] = (actor, None)
                    continue
                idle.append(actor)
                if chunk is None:
                    log.info("ray: a restarted actor is back")
                    continue
                done += len(results)
                if on_answer:
                    on_answer(done, len(requests))
                yield results
        finally:
            for ref, (actor, chunk) in running.items():
                if chunk is None:
                    self._probes[ref] = actor
                else:
                    ray.cancel(ref, force=False)

    def _live(self) -> list[Any]:
        """The actors not gone for good."""
        return [actor for actor in self._actors if id(actor) not in self._gone]

    def stats(self) -> dict[str, Any] | None:
        """The API clients' retries and failures summed over actors, and the shared limit."""
        if not self._api or not self._actors:
            return None
        import ray

        merged: dict[str, Any] = {"retries": Counter(), "failed": Counter()}
        for actor in self._live():
            try:
                part = ray.get(actor.stats.remote())
            except ray.exceptions.RayActorError:  # restarting: its counts start over anyway
                continue
            if not part:
                continue
            merged["retries"].update(part["retries"])
            merged["failed"].update(part["failed"])
            for key in ("structured_output", "requests_per_minute", "tokens_per_minute",
                        "cooldowns", "cooldown_seconds"):
                merged[key] = part[key]  # the shared limiter's, the same in every actor
        merged["retries"], merged["failed"] = dict(merged["retries"]), dict(merged["failed"])
        merged["actors"] = len(self._actors)
        return merged

    def close(self) -> None:
        if not self._actors:
            return
        import ray

        try:
            ray.get([a.close.remote() for a in self._live()], timeout=60)
        except Exception:  # noqa: BLE001 - shutting down; the log keeps the reason
            log.warning("ray: closing the actors failed", exc_info=True)
        for actor in self._actors:
            ray.kill(actor)
        self._actors, self._probes, self._gone = [], {}, set()


def _back(actor: Any) -> Any:
    """A call that returns once Ray has restarted `actor` (calls sent to an actor while it
    restarts fail at once), or fails if it is gone for good."""
    return actor.__ray_ready__.options(max_task_retries=-1).remote()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[-1][:300] if text else type(exc).__name__
