"""Write the two fixed, disjoint parts of BANKING77's train.csv that the docs and tests use.

    python scripts/banking_split.py ../shared/data/banking77/train.csv --out runs/banking77

    OUT/real.csv   the first 5 rows of each intent in file order: the same rows the
                   banking-intents task takes as its seeds (seeds.per_label: 5), i.e. the real
                   data a student would have
    OUT/test.csv   the last 10 rows of each intent in file order: held out, never a seed

Every intent has at least 35 rows in train.csv, so the parts never overlap. Both files keep the
columns `text,category`.
"""

from __future__ import annotations

import argparse
import csv
from collections import defaultdict
from pathlib import Path


def split(rows: list[dict[str, str]], head: int, tail: int,
          label: str = "category") -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """The first `head` and the last `tail` rows of each label, each part in file order."""
    by_label: dict[str, list[int]] = defaultdict(list)
    for i, row in enumerate(rows):
        by_label[row[label]].append(i)
    first, last = set(), set()
    for indices in by_label.values():
        if len(indices) < head + tail:
            raise SystemExit(f"a label has {len(indices)} rows, fewer than {head} + {tail}")
        first.update(indices[:head])
        last.update(indices[len(indices) - tail:])
    return ([r for i, r in enumerate(rows) if i in first],
            [r for i, r in enumerate(rows) if i in last])


def write(path: Path, rows: list[dict[str, str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=["text", "category"])
        writer.writeheader()
        writer.writerows({"text": r["text"], "category": r["category"]} for r in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("train_csv", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--real-per-label", type=int, default=5)
    parser.add_argument("--test-per-label", type=int, default=10)
    args = parser.parse_args()
    with args.train_csv.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    real, test = split(rows, args.real_per_label, args.test_per_label)
    args.out.mkdir(parents=True, exist_ok=True)
    write(args.out / "real.csv", real)
    write(args.out / "test.csv", test)
    print(f"{args.out / 'real.csv'}: {len(real)} rows; {args.out / 'test.csv'}: {len(test)} rows")


if __name__ == "__main__":
    main()
