"""Train, validation and test splits of the accepted rows, stratified by a label.

    splits = assign_splits(rows, "category", {"validation": 0.1, "test": 0.1}, seed=0)
    splits["train"], splits["validation"], splits["test"]   # lists of rows

A row's place depends only on its `id`, the run seed and the other rows' labels and ids, never
on the order rows arrived in: each label's rows are ordered by a hash of (seed, id), and the
first ones go to the held-out splits. Each split gets N x ratio rows (rounded half up) in all,
shared out across the labels in proportion to their size (largest remainder), so every label
keeps its share in every split. Train always keeps at least one row.
"""

from __future__ import annotations

import hashlib
import math
from collections import defaultdict
from typing import Any

from factory.errors import FactoryError
from factory.tasks import check_split_ratios


def parse_splits(text: str) -> dict[str, float]:
    """`validation=0.1,test=0.1` → {"validation": 0.1, "test": 0.1} (an error names the fix)."""
    ratios: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, eq, value = part.partition("=")
        try:
            if not eq:
                raise ValueError
            ratios[name.strip()] = float(value)
        except ValueError:
            raise FactoryError(f"cannot read {part!r}", field="--splits",
                               hint="write NAME=RATIO pairs, e.g. validation=0.1,test=0.1"
                               ) from None
    try:
        return check_split_ratios(ratios)
    except ValueError as exc:
        raise FactoryError(str(exc).removeprefix("splits: "), field="--splits",
                           hint="e.g. validation=0.1,test=0.1") from None


def _order_key(seed: int, row_id: str) -> str:
    return hashlib.sha256(f"{seed}:{row_id}".encode()).hexdigest()


def _share_out(total: int, sizes: dict[str, int], ratio: float) -> dict[str, int]:
    """`total` rows shared across groups in proportion to their sizes (largest remainder)."""
    exact = {g: n * ratio for g, n in sizes.items()}
    counts = {g: math.floor(x) for g, x in exact.items()}
    by_remainder = sorted(sizes, key=lambda g: (-(exact[g] - counts[g]), g))
    for g in by_remainder[:max(total - sum(counts.values()), 0)]:
        counts[g] += 1
    return counts


def assign_splits(rows: list[dict[str, Any]], label: str, ratios: dict[str, float],
                  seed: int) -> dict[str, list[dict[str, Any]]]:
    """Rows per split name: `train` first, then the held-out splits in `ratios`' order."""
    out: dict[str, list[dict[str, Any]]] = {"train": [], **{name: [] for name in ratios}}
    if not ratios:
        out["train"] = list(rows)
        return out
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[str(row.get(label))].append(row)
    for group in groups.values():
        group.sort(key=lambda r: _order_key(seed, r["id"]))
    sizes = {g: len(members) for g, members in groups.items()}
    taken = dict.fromkeys(groups, 0)
    budget = len(rows) - 1  # train always keeps at least one row
    for name, ratio in ratios.items():
        total = min(math.floor(len(rows) * ratio + 0.5), max(budget, 0))
        budget -= total
        counts = _share_out(total, sizes, ratio)
        for g, k in counts.items():
            k = min(k, sizes[g] - taken[g])
            out[name].extend(groups[g][taken[g]:taken[g] + k])
            taken[g] += k
    for g, members in groups.items():
        out["train"].extend(members[taken[g]:])
    order = {id(r): i for i, r in enumerate(rows)}
    for name in out:  # keep the rows' original order inside each split
        out[name].sort(key=lambda r: order[id(r)])
    return out
