"""The plan: quotas per label slice, and a deterministic stream of requests for each slice.

Request `j` of slice `s` is a pure function of (task, run seed, s, j): its target labels, its
attribute combination, its few-shot seed ids and its sampling seed. So a rerun, a resume or another
engine asks for exactly the same requests, and a response cache keyed on them is hit.

Few-shot seeds are stratified and rotated: one seed of the target label (when the seed set has one)
plus seeds of other labels, each pool walked through a seeded permutation so seeds are used evenly.
Each attribute walks its values in shuffled rounds, so every value is used evenly and the
combinations vary.

In augment mode (`mode: augment`) request `j` of slice `s` rewrites one source row, a seed of
label `s`: the slice's sources are walked through a seeded permutation, round after round, and
each round shifts the rewrite kind, so a source is rewritten a different way each time it comes
back. The request's labels are the source's own.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import numpy as np

from factory.errors import FactoryError
from factory.tasks import Task

@dataclass(frozen=True)
class Request:
    slice: str
    index: int
    labels: tuple[tuple[str, str], ...]
    attributes: tuple[tuple[str, str], ...]
    seed_ids: tuple[str, ...]
    seed: int
    # augment mode: the seed row being rewritten and how
    source_id: str | None = None
    rewrite: str | None = None


def derive_seed(*parts: object) -> int:
    """A 31-bit seed from any parts, stable across processes and machines."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def quotas(weights: dict[str, float], total: int) -> dict[str, int]:
    """Split `total` by `weights` with the largest-remainder method (sums exactly to total)."""
    norm = sum(weights.values())
    exact = {k: total * w / norm for k, w in weights.items()}
    counts = {k: math.floor(v) for k, v in exact.items()}
    rest = total - sum(counts.values())
    by_remainder = sorted(exact, key=lambda k: (-(exact[k] - counts[k]), list(exact).index(k)))
    for k in by_remainder[:rest]:
        counts[k] += 1
    return counts


class Planner:
    """Makes the requests of one run. `planner.request(slice, j)` is deterministic."""

    def __init__(self, task: Task, run_seed: int) -> None:
        self.task = task
        self.run_seed = run_seed
        config = task.config
        self.slice_field = config.slice_field
        self.k = min(config.seeds.per_request, len(task.seeds))
        self._names = list(config.attributes)
        self._values = [config.attributes[n] for n in self._names]
        self._label_cycles: dict[str, list[str]] = {}
        self._perms: dict[tuple[str, ...], np.ndarray] = {}

    def quotas(self, num_records: int) -> dict[str, int]:
        weights = self.task.config.label_weights(self.slice_field)
        if self.augment:  # only labels that have rows to rewrite
            weights = {k: w for k, w in weights.items() if self._sources(k)}
        return quotas(weights, num_records)

    @property
    def augment(self) -> bool:
        return self.task.config.mode == "augment"

    def request(self, slice_value: str, index: int) -> Request:
        if self.augment:
            return self._augment_request(slice_value, index)
        return Request(
            slice=slice_value,
            index=index,
            labels=self._labels(slice_value, index),
            attributes=self._attributes(slice_value, index),
            seed_ids=self._seed_ids(slice_value, index),
            seed=derive_seed(self.task.name, self.run_seed, "sample", slice_value, index),
        )

    # -- augment: one source row of the slice per request, the rewrite kind rotating

    def _sources(self, slice_value: str) -> list[str]:
        return [s.id for s in self.task.seeds if s.record.get(self.slice_field) == slice_value]

    def _augment_request(self, slice_value: str, index: int) -> Request:
        sources = self._sources(slice_value)
        if not sources:
            raise FactoryError(f"no source row of {self.slice_field} {slice_value!r} to rewrite",
                               field="--seeds", hint="add rows of that label to the seed file")
        round_, position = divmod(index, len(sources))
        source = sources[int(self._permutation(("source", slice_value), len(sources))[position])]
        kinds = list(self.task.config.augment.rewrites)
        offset = derive_seed(self.run_seed, "rewrite", slice_value, source) % len(kinds)
        record = next(s.record for s in self.task.seeds if s.id == source)
        labels = tuple((name, str(record[name])) for name in self.task.config.labels)
        return Request(
            slice=slice_value, index=index, labels=labels,
            attributes=self._attributes(slice_value, index),
            seed_ids=tuple(i for i in self._seed_ids(slice_value, index) if i != source),
            seed=derive_seed(self.task.name, self.run_seed, "sample", slice_value, index),
            source_id=source, rewrite=kinds[(round_ + offset) % len(kinds)],
        )

    # -- labels: the slice's value, then each other label by smooth weighted round-robin

    def _labels(self, slice_value: str, index: int) -> tuple[tuple[str, str], ...]:
        labels = [(self.slice_field, slice_value)]
        for name in list(self.task.config.labels)[1:]:
            sequence = self._label_cycle(name)
            offset = derive_seed(self.run_seed, "label", name, slice_value) % len(sequence)
            labels.append((name, sequence[(index + offset) % len(sequence)]))
        return tuple(labels)

    def _label_cycle(self, name: str, length: int = 1000) -> list[str]:
        if name not in self._label_cycles:
            weights = {k: w for k, w in self.task.config.label_weights(name).items() if w > 0}
            total, credit, cycle = sum(weights.values()), dict.fromkeys(weights, 0.0), []
            for _ in range(length):
                for k in weights:
                    credit[k] += weights[k] / total
                pick = max(credit, key=lambda k: credit[k])
                credit[pick] -= 1.0
                cycle.append(pick)
            self._label_cycles[name] = cycle
        return self._label_cycles[name]

    # -- attributes: each attribute walks its values in shuffled rounds

    def _attributes(self, slice_value: str, index: int) -> tuple[tuple[str, str], ...]:
        """Within every round of n requests each of an attribute's n values is used once; the
        rounds are shuffled independently per attribute, so combinations vary across the grid."""
        picked = []
        for name, values in zip(self._names, self._values):
            round_, position = divmod(index, len(values))
            order = self._permutation(("attr", name, slice_value, str(round_)), len(values))
            picked.append((name, values[int(order[position])]))
        return tuple(picked)

    # -- seeds: one of the target label, the rest from other labels, each pool rotated

    def _seed_ids(self, slice_value: str, index: int) -> tuple[str, ...]:
        if self.k == 0:
            return ()
        same = [s.id for s in self.task.seeds if s.record.get(self.slice_field) == slice_value]
        other = [s.id for s in self.task.seeds if s.record.get(self.slice_field) != slice_value]
        picked: list[str] = []
        if same:
            order = self._permutation(("same", slice_value), len(same))
            picked.append(same[int(order[index % len(same)])])
        pool = other if other else [i for i in same if i not in picked]
        need = self.k - len(picked)
        if pool and need > 0:
            order = self._permutation(("other", slice_value), len(pool))
            start = index * need
            take = range(min(need, len(pool)))
            picked += [pool[int(order[(start + t) % len(pool)])] for t in take]
        return tuple(picked)

    def _permutation(self, key: tuple[str, ...], n: int) -> np.ndarray:
        if key not in self._perms:
            rng = np.random.default_rng(derive_seed(self.task.name, self.run_seed, *key))
            self._perms[key] = rng.permutation(n)
        return self._perms[key]


def gap_quotas(real: dict[str, int], weights: dict[str, float],
               total: int | None = None) -> dict[str, int]:
    """Synthetic quotas that bring real + synthetic to the target mix (`weights`).

    With `total`, exactly `total` synthetic rows are spread to lift the labels furthest below the
    mix first (water-filling); without it, just enough to reach the mix without removing any real
    row. Labels already above the mix get none.
    """
    weights = {k: w for k, w in weights.items() if w > 0}
    norm = sum(weights.values())
    share = {k: w / norm for k, w in weights.items()}
    if total is None:
        scale = max(real.get(k, 0) / share[k] for k in share)
        return {k: max(0, math.ceil(scale * share[k] - real.get(k, 0) - 1e-9)) for k in share}

    def needed(scale: float) -> dict[str, float]:
        return {k: max(0.0, scale * share[k] - real.get(k, 0)) for k in share}

    low, high = 0.0, float(sum(real.values()) + total) / min(share.values()) + 1.0
    for _ in range(100):
        mid = (low + high) / 2
        low, high = (mid, high) if sum(needed(mid).values()) < total else (low, mid)
    exact = needed(high)
    counts = {k: math.floor(v) for k, v in exact.items()}
    rest = total - sum(counts.values())
    for k in sorted(exact, key=lambda k: -(exact[k] - counts[k]))[:max(rest, 0)]:
        counts[k] += 1
    return counts
