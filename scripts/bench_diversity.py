"""Benchmark filters.diversity: encode speed, k-center time, report time, real vs templated.

Run from anywhere: ``python scripts/bench_diversity.py [--threads 1] [--skip-model]``.
Measures (best of ``--rounds`` for the numpy parts):

* MiniLM encoding speed on distinct BANKING77 texts (sentences/s, model load excluded);
* ``k_center`` on 10,000 x 384 random unit vectors, k = 1,000;
* ``diversity_report`` on 1,000 BANKING77 texts: metrics alone (embeddings given) and with
  encoding;
* the report on 300 real BANKING77 texts vs 300 texts made of 10 templates repeated.

Importable: ``run_benchmark(encode_texts=200, report_texts=300)`` returns the numbers.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from filters.diversity import (  # noqa: E402
    MiniLMEmbedder,
    diversity_report,
    k_center,
    normalize_rows,
)

BANKING77 = REPO_ROOT.parent / "shared" / "data" / "banking77" / "train.csv"
TEMPLATES = [
    "I want to check the balance of my account please",
    "How do I activate my new card",
    "Why was I charged a fee for this transfer",
    "Can you help me reset my PIN",
    "My payment was declined at the store",
    "I need to change my address on file",
    "Where is my refund for the cancelled order",
    "How long does a bank transfer take",
    "I lost my card and need a replacement",
    "What is the exchange rate for euros today",
]


def banking_texts(count: int, seed: int = 0) -> list[str]:
    """`count` distinct BANKING77 training texts drawn without replacement."""
    with BANKING77.open(newline="", encoding="utf-8") as handle:
        texts = [row["text"] for row in csv.DictReader(handle)]
    picks = np.random.default_rng(seed).choice(len(texts), size=count, replace=False)
    return [texts[i] for i in picks]


def best_time(fn: Callable[[], Any], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def bench_k_center(n: int = 10_000, d: int = 384, k: int = 1_000, rounds: int = 1) -> float:
    rows = normalize_rows(np.random.default_rng(0).normal(size=(n, d)))
    return best_time(lambda: k_center(rows, k), rounds)


def run_benchmark(encode_texts: int = 1_000, report_texts: int = 1_000, rounds: int = 1,
                  threads: int | None = None, model: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {"k_center_10k_384_k1000_s": bench_k_center(rounds=rounds)}
    texts = banking_texts(max(encode_texts, report_texts), seed=1)
    random_rows = normalize_rows(np.random.default_rng(2).normal(size=(report_texts, 384)))
    report = lambda: diversity_report(texts[:report_texts], random_rows)  # noqa: E731
    out["report_metrics_only_s"] = best_time(report, rounds)
    if not model:
        return out
    embedder = MiniLMEmbedder(threads=threads)
    start = time.perf_counter()
    embedder.encode(["warm up"])
    out["model_load_s"] = time.perf_counter() - start
    seconds = best_time(lambda: embedder.encode(texts[:encode_texts]), 1)
    out["encode_sentences_per_s"] = encode_texts / seconds
    full = lambda: diversity_report(texts[:report_texts], embedder=embedder)  # noqa: E731
    out["report_with_encoding_s"] = best_time(full, 1)
    out["real_300"] = diversity_report(banking_texts(300, seed=10), embedder=embedder)
    out["templated_300"] = diversity_report(TEMPLATES * 30, embedder=embedder)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encode-texts", type=int, default=1_000)
    parser.add_argument("--report-texts", type=int, default=1_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch threads while encoding")
    parser.add_argument("--skip-model", action="store_true", help="numpy parts only")
    args = parser.parse_args()
    result = run_benchmark(args.encode_texts, args.report_texts, args.rounds, args.threads,
                           model=not args.skip_model)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
