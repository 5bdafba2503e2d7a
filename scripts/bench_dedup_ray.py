"""Benchmark the distributed dedup (filters/dedup_ray.py) against the local streaming index
(filters/dedup.py) in one process, on the same rows: time, rows/s, the ratio, and whether every
decision is the same.

    python scripts/bench_dedup_ray.py [--rows 20000] [--corpus banking|distinct] [--cpus 2]
                                      [--address ADDRESS]

Two corpora (--corpus). `banking`: real BANKING77 queries (shared/data/banking77/train.csv),
repeated with light edits: each round of the file adds every query once more, a quarter of them
exactly (case and punctuation changed) and a quarter with one or two word edits, the rest
verbatim - heavy duplication, like a mode-collapsed teacher's (past 10,000 rows most rows are
copies). `distinct`: texts of 12-30 Zipf-drawn pseudo-words (4-9 letters, 20,000 of them),
nearly all distinct, with 10% of the rows light word edits of an earlier row - a healthy run,
where most rows are kept and the local index grows with every one. Without --address a local
Ray instance with --cpus CPUs is started. On one small machine the distributed version pays
Ray's task and shuffle overheads with nothing to spread them over; the point of running it on a
cluster is that no node holds the whole index.
"""

from __future__ import annotations

import argparse
import importlib.util
import random
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from filters.dedup import Deduplicator  # noqa: E402


def _planter():
    spec = importlib.util.spec_from_file_location("plant", REPO / "scripts" / "plant_duplicates.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["plant"] = module
    spec.loader.exec_module(module)
    return module


def corpus(rows: int, seed: int = 0) -> list[str]:
    planter = _planter()
    base = planter.load_texts()
    rng = random.Random(seed)
    texts = list(base[:rows])
    while len(texts) < rows:
        for text in base:
            kind = rng.random()
            if kind < 0.25:
                texts.append(planter.exact_variant(text, rng))
            elif kind < 0.5 and len(text.split()) >= 3:
                texts.append(planter.near_variant(text, rng))
            else:
                texts.append(text)
            if len(texts) == rows:
                break
    return texts


def distinct_corpus(rows: int, seed: int = 0) -> list[str]:
    import numpy as np

    planter = _planter()
    rng = np.random.default_rng(seed)
    edit = random.Random(seed)
    vocab = ["".join(chr(97 + c) for c in rng.integers(0, 26, rng.integers(4, 10)))
             for _ in range(20000)]
    weights = 1.0 / np.arange(1, len(vocab) + 1)
    weights /= weights.sum()
    texts: list[str] = []
    while len(texts) < rows:
        if texts and edit.random() < 0.1:
            texts.append(planter.near_variant(edit.choice(texts), edit))
        else:
            words = rng.choice(len(vocab), size=int(rng.integers(12, 31)), p=weights)
            texts.append(" ".join(vocab[w] for w in words))
    return texts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--address", default=None)
    parser.add_argument("--corpus", choices=["banking", "distinct"], default="banking")
    args = parser.parse_args()

    import ray

    from filters.dedup_ray import RayDeduplicator

    texts = corpus(args.rows) if args.corpus == "banking" else distinct_corpus(args.rows)
    ids = [f"row-{i}" for i in range(len(texts))]
    config = {"text_fields": ["text"]}

    start = time.perf_counter()
    local = Deduplicator(config).check_texts(texts, ids)
    local_s = time.perf_counter() - start

    if args.address:
        ray.init(address=args.address, log_to_driver=False)
    else:
        ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    try:
        dedup = RayDeduplicator(config)
        start = time.perf_counter()
        distributed = dedup.decide(texts, ids)
        ray_s = time.perf_counter() - start
        cpus = int(ray.cluster_resources().get("CPU", 0))
    finally:
        ray.shutdown()

    same = [(d.keep, d.reason, d.detail) for d in local] == [
        (d.keep, d.reason, d.detail) for d in distributed]
    dropped = sum(not d.keep for d in local)
    print(f"corpus: {args.corpus}  rows: {len(texts):,}  dropped as duplicates: {dropped:,}  "
          f"candidate pairs: {dedup.stats['candidate_pairs']:,}  "
          f"verified pairs: {dedup.stats['verified_pairs']:,}  "
          f"partitions: {dedup.stats['partitions']}")
    print(f"local streaming index: {local_s:7.1f} s  {len(texts) / local_s:9,.0f} rows/s")
    print(f"Ray Data ({cpus} CPUs):    {ray_s:7.1f} s  {len(texts) / ray_s:9,.0f} rows/s")
    print(f"ratio Ray / local (throughput): {local_s / ray_s:.2f}")
    print(f"identical decisions: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
