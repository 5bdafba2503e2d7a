"""Factory overhead: the generation stage vs raw `vllm.LLM.generate`, same prompts, one process.

    python scripts/bench_generate.py [--prompts 32] [--max-tokens 128] [--rounds 2]

Both sides share one engine (the embedded teacher unless --teacher says otherwise) and the same
rendered prompts, sampling parameters, per-request seeds and JSON schema. The raw side calls
`LLM.generate` on prompts already through the chat template; the factory side runs
`factory.pipeline.teach` (chat template, sampling parameters, one generate call per batch, the
SQLite response cache written per batch). Each round gives both sides the same fresh prompts; who
goes first alternates, and vLLM's prefix cache is reset before each side (otherwise the second
side would reuse the first one's prefill). The ratio is factory throughput over raw throughput
in output tokens per second; the goal is >= 0.90.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from factory.cache import ResponseCache  # noqa: E402
from factory.logs import quiet_third_parties  # noqa: E402
from factory.pipeline import Candidate, plan_slices, render, teach  # noqa: E402
from factory.plan import Planner  # noqa: E402
from factory.progress import RunStats  # noqa: E402
from factory.render import Renderer  # noqa: E402
from factory.tasks import load_task  # noqa: E402
from factory.teachers import make_teacher  # noqa: E402


def candidates(task, teacher, n: int, round_: int) -> list[Candidate]:
    """n rendered requests spread over the slices; each round uses another run seed."""
    planner = Planner(task, 1000 + round_)
    slices = list(plan_slices(task, planner.quotas(n)))
    requests = [planner.request(slices[i % len(slices)], i // len(slices)) for i in range(n)]
    return render(task, teacher, Renderer(task), requests)


def with_max_tokens(task, max_tokens: int):
    generation = task.config.generation.model_copy(update={"max_tokens": max_tokens})
    task.config = task.config.model_copy(update={"generation": generation})
    return task


def run_raw(teacher, batch: list[Candidate]) -> tuple[float, int]:
    llm = teacher.engine()
    llm.reset_prefix_cache()
    requests = [c.teach for c in batch]
    prompts = teacher.prompts(requests)
    params = [teacher.sampling_params(r) for r in requests]
    start = time.perf_counter()
    outputs = llm.generate(prompts, params, use_tqdm=False)
    elapsed = time.perf_counter() - start
    return elapsed, sum(len(o.outputs[0].token_ids) for o in outputs)


def run_factory(teacher, batch: list[Candidate], folder: Path) -> tuple[float, int]:
    teacher.engine().reset_prefix_cache()
    stats = RunStats(target=len(batch))
    with ResponseCache(folder / "cache.sqlite") as cache:
        start = time.perf_counter()
        teach(teacher, batch, cache, stats)
        elapsed = time.perf_counter() - start
    return elapsed, stats.new_completion_tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="support-tickets")
    parser.add_argument("--teacher", default="embedded")
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    quiet_third_parties()  # engine logs off the terminal; they cost the same on both sides

    task = with_max_tokens(load_task(args.task), args.max_tokens)
    teacher = make_teacher(args.teacher)
    warm = candidates(task, teacher, 4, -1)
    run_raw(teacher, warm)  # engine start-up and first-call costs are not measured
    raw_t = raw_n = fac_t = fac_n = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            batch = candidates(task, teacher, args.prompts, r)
            sides = ["raw", "factory"] if r % 2 == 0 else ["factory", "raw"]
            for side in sides:  # alternate who goes first; the prefix cache is reset each time
                if side == "raw":
                    t, n = run_raw(teacher, batch)
                    raw_t, raw_n = raw_t + t, raw_n + n
                else:
                    t, n = run_factory(teacher, batch, Path(tmp) / f"r{r}")
                    fac_t, fac_n = fac_t + t, fac_n + n
                print(f"round {r}: {side:7s} {n:6d} tokens in {t:7.2f} s = {n / t:7.1f} tok/s",
                      flush=True)
    raw_rate, fac_rate = raw_n / raw_t, fac_n / fac_t
    ratio = fac_rate / raw_rate
    print(f"\n{args.prompts} prompts x {args.rounds} rounds, max_tokens {args.max_tokens}")
    print(f"raw vllm.LLM.generate : {raw_rate:8.1f} output tok/s")
    print(f"factory teach stage   : {fac_rate:8.1f} output tok/s")
    verdict = "PASS" if ratio >= 0.9 else "FAIL"
    print(f"ratio factory / raw   : {ratio:8.3f}  (goal >= 0.90: {verdict})")
    teacher.close()


if __name__ == "__main__":
    main()

