"""Ray overhead per engine, and a capacity table from it: the same requests through the local
engine and through `RayTeacher`, side by side in one process.

    python scripts/bench_ray.py [--prompts 8] [--max-tokens N] [--rounds 2] [--actors 1]
                                [--teacher embedded] [--teacher-config FILE] [--acceptance X]

The local side is the teacher `make_teacher(--teacher, --teacher-config)` builds, answering
through `.generate` in this process. The Ray side is the same spec and config behind
`RayTeacher` with `--actors` actors, inside `factory.cluster.ray_session` (a local Ray instance,
or the cluster in RAY_ADDRESS). Both get the same rendered requests of the built-in task (per-
request seeds, the task's JSON schema); each round uses fresh prompts and who goes first
alternates. The two sides have their own engines, so neither reuses the other's prefix cache;
each sees the same sequence of prompts.

Printed: output tokens/s and requests/s per side, the ratio Ray / local (Ray's overhead per
engine: with --actors 1 both sides run one engine), tokens per request, the acceptance rate (the
share of the local side's answers that pass the task's filter stage, `pipeline.filter_batch`
with the task's chain, no quota surplus; or --acceptance from a real run's manifest), the
driver's own cost per request (render, cache write, filters), and records/hour for 1, 8 and 64
engines with the arithmetic:

    records/h = engines x requests/s per engine x 3600 x acceptance x Ray efficiency

On a GPU node, pass the GPU teacher (`--teacher vllm:MODEL --teacher-config gpu.yaml`) and the
same script measures the GPU engine. The local engine and the actor's must not share a GPU (each
takes `gpu_memory_utilization` of it, and Ray does not know about the local one): give the Ray
side its own GPUs through a cluster started apart from this process, e.g.

    CUDA_VISIBLE_DEVICES=1 ray start --head --num-gpus 1
    CUDA_VISIBLE_DEVICES=0 python scripts/bench_ray.py --ray-address 127.0.0.1:6379 \
        --teacher vllm:MODEL --teacher-config gpu.yaml --prompts 256

With --actors N > 1 the Ray side runs N engines and the "per engine" rate is the Ray side's
total divided by N.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from factory.cache import ResponseCache  # noqa: E402
from factory.cluster import describe_address, ray_session  # noqa: E402
from factory.filtering import build_filters  # noqa: E402
from factory.logs import quiet_third_parties  # noqa: E402
from factory.pipeline import (  # noqa: E402
    Candidate, RunResult, Slice, filter_batch, plan_slices, render,
)
from factory.plan import Planner  # noqa: E402
from factory.progress import RunStats  # noqa: E402
from factory.render import Renderer  # noqa: E402
from factory.tasks import load_task  # noqa: E402
from factory.teachers import RayOptions, make_teacher  # noqa: E402

ENGINES = (1, 8, 64)
_NO_QUOTA = 10 ** 9  # slices that never fill, so every answer goes through every filter


def candidates(task, teacher, n: int, round_: int) -> list[Candidate]:
    """n rendered requests spread over the slices; each round uses another run seed."""
    planner = Planner(task, 2000 + round_)
    slices = list(plan_slices(task, planner.quotas(n)))
    requests = [planner.request(slices[i % len(slices)], i // len(slices)) for i in range(n)]
    return render(task, teacher, Renderer(task), requests)


def with_max_tokens(task, max_tokens: int | None):
    if max_tokens is None:
        return task
    generation = task.config.generation.model_copy(update={"max_tokens": max_tokens})
    task.config = task.config.model_copy(update={"generation": generation})
    return task


class Side:
    """One contender's totals over all rounds, and its answers for the filter stage."""

    def __init__(self, name: str, teacher) -> None:
        self.name, self.teacher = name, teacher
        self.seconds = 0.0
        self.requests = self.prompt_tokens = self.output_tokens = self.errors = 0
        self.answered: list[Candidate] = []

    def run(self, batch: list[Candidate]) -> tuple[float, int, int]:
        start = time.perf_counter()
        results = {r.key: r for r in self.teacher.generate([c.teach for c in batch])}
        elapsed = time.perf_counter() - start
        tokens = sum(r.completion_tokens for r in results.values())
        self.seconds += elapsed
        self.requests += len(results)
        self.output_tokens += tokens
        self.prompt_tokens += sum(r.prompt_tokens for r in results.values())
        self.errors += sum(bool(r.error) for r in results.values())
        self.answered += [Candidate(c.request, c.teach, results[c.teach.key])
                          for c in batch if c.teach.key in results]
        return elapsed, len(results), tokens

    @property
    def tok_s(self) -> float:
        return self.output_tokens / self.seconds

    @property
    def req_s(self) -> float:
        return self.requests / self.seconds


def acceptance(task, answered: list[Candidate]) -> tuple[float, Counter[str], float]:
    """(share passing, drop reasons, filter seconds per answer) through the pipeline's filter
    stage, one chain for all rounds as in one run."""
    chain = build_filters(task)
    values = sorted({c.request.slice for c in answered})
    slices = {v: Slice(v, _NO_QUOTA, [(_NO_QUOTA, _NO_QUOTA)], _NO_QUOTA) for v in values}
    run = RunResult(Path("."), RunStats(target=_NO_QUOTA), slices)
    start = time.perf_counter()
    passed = filter_batch(task, chain, answered, run)
    seconds = time.perf_counter() - start
    return len(passed) / len(answered), run.stats.dropped, seconds / len(answered)


def cache_seconds(answered: list[Candidate]) -> float:
    """Seconds per answer to persist answers in the SQLite response cache, as the driver does."""
    with tempfile.TemporaryDirectory() as tmp, ResponseCache(Path(tmp) / "c.sqlite") as cache:
        start = time.perf_counter()
        cache.put_many([c.result for c in answered if c.result is not None])
        return (time.perf_counter() - start) / len(answered)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="support-tickets")
    parser.add_argument("--teacher", default="embedded")
    parser.add_argument("--teacher-config", type=Path, default=None)
    parser.add_argument("--prompts", type=int, default=8, help="requests per round and side")
    parser.add_argument("--max-tokens", type=int, default=None,
                        help="default: the task's generation.max_tokens")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--actors", type=int, default=1, help="Ray actors (engines)")
    parser.add_argument("--ray-address", default=None, help="default: RAY_ADDRESS, else local")
    parser.add_argument("--acceptance", type=float, default=None,
                        help="use this acceptance rate (e.g. a manifest's) instead of measuring")
    args = parser.parse_args()
    quiet_third_parties()  # engine logs off the terminal; they cost the same on both sides

    task = with_max_tokens(load_task(args.task), args.max_tokens)
    print(f"task {args.task}, teacher {args.teacher}, max_tokens "
          f"{task.config.generation.max_tokens}, {args.prompts} prompts x {args.rounds} rounds, "
          f"{args.actors} Ray actor(s)", flush=True)
    local = make_teacher(args.teacher, args.teacher_config)
    clock = time.perf_counter()
    render_start = time.perf_counter()
    batches = [candidates(task, local, args.prompts, r) for r in range(args.rounds)]
    render_s = (time.perf_counter() - render_start) / (args.prompts * args.rounds)
    warm = candidates(task, local, 2, -1)
    local.start()
    warm_results = list(local.generate([c.teach for c in warm]))  # first calls not measured
    acceptance(task, [Candidate(c.request, c.teach, r) for c, r in zip(warm, warm_results)])
    print(f"local engine ready in {time.perf_counter() - clock:.1f} s", flush=True)

    with ray_session(args.ray_address):
        ray_teacher = make_teacher(args.teacher, args.teacher_config,
                                   ray=RayOptions(args.actors, describe_address(args.ray_address)))
        clock = time.perf_counter()
        ray_teacher.start()
        list(ray_teacher.generate([c.teach for c in warm]))
        print(f"Ray actor(s) ready in {time.perf_counter() - clock:.1f} s on "
              f"{', '.join(ray_teacher.engine_info()['nodes'])}", flush=True)
        sides = {"local": Side("local", local), "ray": Side("ray", ray_teacher)}
        for r, batch in enumerate(batches):
            order = ["local", "ray"] if r % 2 == 0 else ["ray", "local"]
            for name in order:
                t, n, tokens = sides[name].run(batch)
                print(f"round {r}: {name:5s} {n:4d} requests, {tokens:6d} output tokens in "
                      f"{t:7.2f} s = {tokens / t:7.1f} tok/s, {n / t:6.3f} req/s", flush=True)
        restarts = ray_teacher.engine_info()["worker_restarts"]
        ray_teacher.close()
    local.close()
    report(args, task, sides, render_s, restarts)


def report(args, task, sides: dict[str, Side], render_s: float, restarts: int) -> None:
    lo, ra = sides["local"], sides["ray"]
    same = sum(a.result.text == b.result.text for a, b in zip(lo.answered, ra.answered))
    measured, dropped, filter_s = acceptance(task, lo.answered)
    ray_acc, _, _ = acceptance(task, ra.answered)
    write_s = cache_seconds(lo.answered)
    acc = args.acceptance if args.acceptance is not None else measured
    efficiency = (ra.req_s / args.actors) / lo.req_s
    per_engine = lo.req_s  # one engine answering in this process
    print(f"\n{'side':6s} {'requests':>8s} {'seconds':>8s} {'out tok/s':>10s} {'req/s':>7s} "
          f"{'prompt tok/req':>15s} {'out tok/req':>12s} {'errors':>6s}")
    for s in (lo, ra):
        print(f"{s.name:6s} {s.requests:8d} {s.seconds:8.1f} {s.tok_s:10.1f} {s.req_s:7.3f} "
              f"{s.prompt_tokens / s.requests:15.1f} {s.output_tokens / s.requests:12.1f} "
              f"{s.errors:6d}")
    print(f"identical answers on both sides: {same} of {len(lo.answered)}; "
          f"Ray worker restarts: {restarts}")
    print(f"ratio Ray / local (per engine): {efficiency:.3f} in requests/s, "
          f"{(ra.tok_s / args.actors) / lo.tok_s:.3f} in output tok/s")
    print(f"acceptance (pipeline filter stage, local answers): {measured:.3f} "
          f"({round(measured * len(lo.answered))} of {len(lo.answered)}); Ray answers: "
          f"{ray_acc:.3f}; drops: {dict(dropped.most_common())}")
    if args.acceptance is not None:
        print(f"acceptance used below: {acc:.3f} (--acceptance)")
    driver_s = render_s + write_s + filter_s
    print(f"driver per request: render {render_s * 1e3:.2f} ms + cache write "
          f"{write_s * 1e3:.2f} ms + filters {filter_s * 1e3:.2f} ms = {driver_s * 1e3:.2f} ms "
          f"-> at most {1 / driver_s:,.0f} requests/s through one driver (selection excluded)")
    per_hour = per_engine * 3600 * acc * efficiency
    print(f"\nrecords/h per engine = {per_engine:.4f} req/s x 3600 x {acc:.3f} x "
          f"{efficiency:.3f} = {per_hour:,.1f}")
    print(f"{'engines':>7s}  arithmetic{'':38s}  {'records/h':>12s}  {'req/s at driver':>15s}")
    for n in ENGINES:
        total = n * per_hour
        line = f"{n} x {per_engine:.4f} x 3600 x {acc:.3f} x {efficiency:.3f}"
        print(f"{n:7d}  {line:48s}  {total:12,.0f}  {n * per_engine * efficiency:15.2f}")


if __name__ == "__main__":
    main()
