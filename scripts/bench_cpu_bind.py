"""CPU engine thread binding: vLLM's own choice vs every core, two engines in one process.

    python scripts/bench_cpu_bind.py [--prompts 16] [--max-tokens 150] [--rounds 2]

On a CPU-only machine, vLLM's automatic binding (VLLM_CPU_OMP_THREADS_BIND=auto) keeps cores free
for its scheduler process; the factory's default on machines of up to 4 cores (`cpu_threads_bind:
null`, factory/teachers/vllm.py:cpu_binding) binds every core and reserves none. This starts one
engine of the embedded teacher with each binding (the environment is set before each engine is
built; its processes read it then), gives both the same rendered requests of the built-in task
(per-request seeds, the JSON schema) and alternates who goes first each round. Prints output
tokens/s per side and the ratio every-core / vLLM's.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_ray import candidates, with_max_tokens  # noqa: E402
from factory.logs import quiet_third_parties  # noqa: E402
from factory.tasks import load_task  # noqa: E402
from factory.teachers import make_teacher  # noqa: E402


def build(spec: str, config: Path | None, bind: str, reserved: str | None):
    """A started teacher whose engine was built under this binding."""
    os.environ["VLLM_CPU_OMP_THREADS_BIND"] = bind
    if reserved is None:
        os.environ.pop("VLLM_CPU_NUM_OF_RESERVED_CPU", None)
    else:
        os.environ["VLLM_CPU_NUM_OF_RESERVED_CPU"] = reserved
    teacher = make_teacher(spec, config)
    clock = time.perf_counter()
    teacher.start()
    print(f"engine with VLLM_CPU_OMP_THREADS_BIND={bind} ready in "
          f"{time.perf_counter() - clock:.1f} s", flush=True)
    return teacher


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="support-tickets")
    parser.add_argument("--teacher", default="embedded")
    parser.add_argument("--teacher-config", type=Path, default=None)
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=150)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    quiet_third_parties()
    cores = sorted(os.sched_getaffinity(0))
    task = with_max_tokens(load_task(args.task), args.max_tokens)
    sides = {
        "vllm-auto": build(args.teacher, args.teacher_config, "auto", None),
        "all-cores": build(args.teacher, args.teacher_config, ",".join(map(str, cores)), "0"),
    }
    totals = {name: [0.0, 0, 0] for name in sides}  # seconds, output tokens, prompt tokens
    warm = [c.teach for c in candidates(task, sides["vllm-auto"], 2, -1)]
    for teacher in sides.values():
        list(teacher.generate(warm))
    for r in range(args.rounds):
        batch = [c.teach for c in candidates(task, sides["vllm-auto"], args.prompts, r)]
        order = list(sides) if r % 2 == 0 else list(sides)[::-1]
        for name in order:
            start = time.perf_counter()
            results = list(sides[name].generate(batch))
            t = time.perf_counter() - start
            n = sum(x.completion_tokens for x in results)
            totals[name][0] += t
            totals[name][1] += n
            totals[name][2] += sum(x.prompt_tokens for x in results)
            print(f"round {r}: {name:9s} {n:6d} output tokens in {t:7.2f} s = "
                  f"{n / t:7.1f} tok/s", flush=True)
    for teacher in sides.values():
        teacher.close()
    count = args.prompts * args.rounds
    print(f"\n{count} requests per side, {len(cores)} cores, max_tokens {args.max_tokens}")
    for name, (t, n, p) in totals.items():
        print(f"{name:9s}: {n / t:7.1f} output tok/s ({n / count:.0f} output, "
              f"{p / count:.0f} prompt tokens per request)")
    ratio = (totals["all-cores"][1] / totals["all-cores"][0]) / (
        totals["vllm-auto"][1] / totals["vllm-auto"][0])
    print(f"ratio all-cores / vllm-auto: {ratio:.2f}")


if __name__ == "__main__":
    main()
