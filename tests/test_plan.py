"""The plan: quotas, deterministic requests, even use of seeds and of the attribute grid."""

from __future__ import annotations

from collections import Counter

from factory.plan import Planner, quotas
from factory.tasks import load_task


def test_quotas_sum_exactly_and_follow_weights():
    assert quotas({"a": 1, "b": 1, "c": 1}, 10) == {"a": 4, "b": 3, "c": 3}
    assert sum(quotas({"a": 0.3, "b": 0.4, "c": 0.2, "d": 0.1}, 24).values()) == 24
    assert quotas({"a": 3, "b": 1}, 8) == {"a": 6, "b": 2}
    assert quotas({"a": 1, "b": 0}, 5) == {"a": 5, "b": 0}


def test_requests_are_deterministic_and_seeded_per_request():
    task = load_task("support-tickets")
    a, b = Planner(task, 7), Planner(task, 7)
    assert [a.request("billing", i) for i in range(20)] == [b.request("billing", i)
                                                             for i in range(20)]
    seeds = {a.request(s, i).seed for s in ("billing", "shipping") for i in range(50)}
    assert len(seeds) == 100
    other = Planner(task, 8)
    assert a.request("billing", 0).seed != other.request("billing", 0).seed


def test_seeds_stratified_and_rotated_evenly():
    task = load_task("support-tickets")
    planner = Planner(task, 0)
    same = [s.id for s in task.seeds if s.record["category"] == "billing"]
    uses = Counter()
    for i in range(60):
        request = planner.request("billing", i)
        assert len(request.seed_ids) == task.config.seeds.per_request
        assert request.seed_ids[0] in same
        assert all(sid not in same for sid in request.seed_ids[1:])
        uses[request.seed_ids[0]] += 1
    assert set(uses) == set(same)
    assert max(uses.values()) - min(uses.values()) <= 1


def test_attributes_are_used_evenly_in_varied_combinations():
    task = load_task("support-tickets")
    planner = Planner(task, 0)
    combos = [planner.request("billing", i).attributes for i in range(48)]
    for name, values in task.config.attributes.items():
        counts = Counter(dict(c)[name] for c in combos)
        assert set(counts) == set(values)
        assert max(counts.values()) - min(counts.values()) <= 1, name
    assert len(set(combos)) >= 45


def test_secondary_label_follows_its_weights():
    task = load_task("support-tickets")
    planner = Planner(task, 0)
    counts = Counter(dict(planner.request("billing", i).labels)["priority"] for i in range(100))
    assert counts == Counter({"medium": 40, "low": 30, "high": 20, "urgent": 10})


def test_gap_quotas_balance_real_plus_synthetic():
    from factory.plan import gap_quotas

    real = {"a": 10, "b": 2, "c": 0}
    flat = {"a": 1, "b": 1, "c": 1}
    assert gap_quotas(real, flat) == {"a": 0, "b": 8, "c": 10}
    assert gap_quotas(real, flat, 12) == {"a": 0, "b": 5, "c": 7}
    spread = gap_quotas(real, flat, 100)
    assert sum(spread.values()) == 100
    totals = [real[k] + spread[k] for k in real]
    assert max(totals) - min(totals) <= 1
    assert gap_quotas({"a": 6, "b": 0}, {"a": 2, "b": 1}) == {"a": 0, "b": 3}
