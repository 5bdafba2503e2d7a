"""Benchmark: the `openai:` teacher against plain `openai` client loops, on a loopback server.

The server (tests/openai_stub.py, its own process) answers every request after a fixed 200 ms.
Three sides send the same requests, in alternating order, several rounds:

  sequential   the official client, one request after another (what a simple script does)
  raw async    the official async client, asyncio.gather under a semaphore of C
  factory      APITeacher.generate with concurrency C (pacing, retries and accounting included)

Then, against a server that enforces a requests-per-minute limit (429 past it), the factory
teacher configured with that limit: throughput as a share of the limit, and 429s received.

    python scripts/bench_api.py [--requests 640] [--concurrency 64] [--rpm 600 --rpm-seconds 30]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from factory.teachers.api import APIOptions, APITeacher  # noqa: E402
from factory.teachers.base import Sampling, TeachRequest  # noqa: E402

KEY = "bench-key"


def start_stub(*args: str) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "openai_stub.py"), *args],
                            stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline() if proc.stdout else ""
    if not line.startswith("PORT "):
        raise SystemExit("the stub server did not start")
    return proc, int(line.split()[1])


def requests(n: int, offset: int = 0) -> list[TeachRequest]:
    prompt = "Write one short support ticket about a billing problem. " * 20
    return [TeachRequest(f"k{offset + i}", [{"role": "user", "content": prompt}],
                         Sampling(0.9, 0.95, 128, offset + i)) for i in range(n)]


def kwargs(r: TeachRequest) -> dict:
    s = r.sampling
    return {"model": "stub", "messages": r.messages, "temperature": s.temperature,
            "top_p": s.top_p, "max_tokens": s.max_tokens, "seed": s.seed}


def sequential(url: str, batch: list[TeachRequest]) -> float:
    from openai import OpenAI

    client = OpenAI(api_key=KEY, base_url=url, max_retries=0)
    start = time.perf_counter()
    for r in batch:
        client.chat.completions.create(**kwargs(r)).choices[0].message.content
    elapsed = time.perf_counter() - start
    client.close()
    return len(batch) / elapsed


def raw_async(url: str, batch: list[TeachRequest], concurrency: int) -> float:
    from openai import AsyncOpenAI

    async def run() -> float:
        client = AsyncOpenAI(api_key=KEY, base_url=url, max_retries=0)
        gate = asyncio.Semaphore(concurrency)

        async def one(r: TeachRequest) -> str:
            async with gate:
                completion = await client.chat.completions.create(**kwargs(r))
                return completion.choices[0].message.content or ""

        start = time.perf_counter()
        await asyncio.gather(*(one(r) for r in batch))
        elapsed = time.perf_counter() - start
        await client.close()
        return len(batch) / elapsed

    return asyncio.run(run())


def factory(url: str, batch: list[TeachRequest], options: APIOptions) -> tuple[float, int]:
    teacher = APITeacher("stub", options, base_url=url)
    teacher.start()
    start = time.perf_counter()
    results = list(teacher.generate(batch))
    elapsed = time.perf_counter() - start
    teacher.close()
    errors = sum(r.error is not None for r in results)
    return len(batch) / elapsed, errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=640)
    parser.add_argument("--sequential-requests", type=int, default=25)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rpm", type=int, default=600)
    parser.add_argument("--rpm-seconds", type=float, default=30.0)
    args = parser.parse_args()
    import os

    os.environ["FACTORY_API_KEY"] = KEY
    proc, port = start_stub("--delay", "0.2")
    url = f"http://127.0.0.1:{port}/v1"
    rates: dict[str, list[float]] = {"sequential": [], "raw_async": [], "factory": []}
    options = APIOptions(concurrency=args.concurrency, timeout=60)
    try:
        raw_async(url, requests(32, 10**6), args.concurrency)  # warm-up: imports, connections
        for round_ in range(args.rounds):
            batch = requests(args.requests, round_ * args.requests)
            rates["sequential"].append(sequential(url, batch[:args.sequential_requests]))
            sides = ["raw_async", "factory"] if round_ % 2 == 0 else ["factory", "raw_async"]
            for side in sides:
                if side == "raw_async":
                    rates[side].append(raw_async(url, batch, args.concurrency))
                else:
                    rate, errors = factory(url, batch, options)
                    assert errors == 0, f"{errors} failed requests"
                    rates[side].append(rate)
    finally:
        proc.terminate()
        proc.wait()
    med = {k: statistics.median(v) for k, v in rates.items()}
    print(f"loopback server, 200 ms per answer, concurrency {args.concurrency}, "
          f"{args.requests} requests, median of {args.rounds} rounds (requests/s):")
    for side, rate in med.items():
        print(f"  {side:<11} {rate:8.1f}")
    print(f"  factory / sequential = {med['factory'] / med['sequential']:.1f}x (goal >= 50x)")
    print(f"  factory / raw async  = {med['factory'] / med['raw_async']:.2f}x (goal >= 0.90x)")

    proc, port = start_stub("--delay", "0.2", "--rpm", str(args.rpm))
    url = f"http://127.0.0.1:{port}/v1"
    n = int(args.rpm * args.rpm_seconds / 60)
    try:
        rate, errors = factory(url, requests(n, 10**7), APIOptions(
            concurrency=args.concurrency, requests_per_minute=args.rpm, timeout=60))
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats") as response:
            stats = json.load(response)
    finally:
        proc.terminate()
        proc.wait()
    share = rate * 60 / args.rpm
    print(f"server enforcing {args.rpm} requests/minute, {n} requests: "
          f"{rate * 60:.0f} requests/minute = {share:.1%} of the limit (goal >= 90%), "
          f"429s received: {stats.get('rate_limited', 0)} (goal 0), failed: {errors}")


if __name__ == "__main__":
    main()
