"""filters.dedup_ray on a local Ray instance (2 CPUs): the local dedup's decisions, row by row,
on real BANKING77 queries with planted duplicates, seed copies and eval-set copies."""

from __future__ import annotations

import importlib.util
import random
import sys
from collections import Counter, defaultdict

import pytest

from filters.dedup import Deduplicator
from tests.conftest import REPO

ray = pytest.importorskip("ray")
from filters.dedup_ray import RayDeduplicator  # noqa: E402

pytestmark = pytest.mark.ray

_spec = importlib.util.spec_from_file_location("plant", REPO / "scripts" / "plant_duplicates.py")
planter = importlib.util.module_from_spec(_spec)
sys.modules["plant"] = planter
_spec.loader.exec_module(planter)


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def planted() -> dict:
    """1,500 distinct queries, 300 near and 100 exact copies, then 70 more verbatim copies;
    seeds and an eval set that copy some of the originals, exactly or lightly edited."""
    texts = planter.load_texts()
    rows = planter.plant(texts, n_originals=1500, n_near=300, n_exact=100, seed=0)
    rng = random.Random(3)
    originals = [r.text for r in rows if r.label == "original"]
    stream = [r.text for r in rows] + [r.text for r in rows[:50]] + [r.text for r in rows[10:30]]
    seeds = [planter.near_variant(t, rng) for t in rng.sample(originals, 20)]
    seeds += rng.sample(texts, 10)
    evals = [t.upper() for t in rng.sample(originals, 20)]
    evals += [planter.near_variant(t, rng) for t in rng.sample(originals, 20)]
    return {"texts": stream, "ids": [f"row-{i}" for i in range(len(stream))],
            "seeds": (seeds, [f"seed-{i}" for i in range(len(seeds))]),
            "evals": (evals, [f"eval-{i}" for i in range(len(evals))])}


def local_decisions(config: dict, texts, ids, seeds=None, evals=None):
    dedup = Deduplicator(config)
    if seeds:
        dedup.add_seeds(*seeds)
    if evals:
        dedup.add_decontamination(*evals)
    return dedup.check_texts(texts, ids)


def as_tuples(decisions):
    return [(d.keep, d.reason, d.detail) for d in decisions]


def clusters(decisions, ids) -> dict[str, set[str]]:
    """Each kept row with the rows dropped as its exact or near duplicate."""
    found: dict[str, set[str]] = defaultdict(set)
    for row_id, d in zip(ids, decisions):
        if d.reason in ("exact_duplicate", "near_duplicate"):
            found[d.detail.split(" ")[0]].add(row_id)
    return dict(found)


# A chain: B copies A and C copies B but not A. B is dropped, so C is kept (nothing kept
# matches it); then a verbatim copy of B and an exact copy of A.
CHAIN = {"chain-a": "please tell me how to get my new card activated today",
         "chain-b": "please tell me how to get my new card activated right away",
         "chain-c": "so how to get my new card activated right away then",
         "chain-b2": "PLEASE TELL ME HOW TO GET MY NEW CARD ACTIVATED RIGHT AWAY",
         "chain-a2": "please tell me how to get my new card activated today!"}


def test_same_decisions_and_clusters_as_the_local_dedup(planted):
    """Row by row, with a number of hash partitions that is not the CPU count (the decisions
    must not depend on how rows are spread)."""
    config = {"text_fields": ["text"]}
    texts = planted["texts"] + list(CHAIN.values())
    ids = planted["ids"] + list(CHAIN)
    want = local_decisions(config, texts, ids, planted["seeds"], planted["evals"])
    dedup = RayDeduplicator(config, partitions=5)
    got = dedup.decide(texts, ids, seeds=planted["seeds"], decontaminate=planted["evals"])
    reasons = Counter(d.reason for d in want)
    # The planted set exercises every reason, and the verbatim copies every collapse path.
    assert reasons["near_duplicate"] >= 250 and reasons["exact_duplicate"] >= 150
    assert reasons["seed_copy"] >= 15 and reasons["contaminated"] >= 30
    assert [d.reason for d in want[-5:]] == [None, "near_duplicate", None, "near_duplicate",
                                             "exact_duplicate"]
    assert as_tuples(got) == as_tuples(want)
    assert clusters(got, ids) == clusters(want, ids)
    assert dedup.stats["rows"] == len(texts) and dedup.stats["verified_pairs"] > 0


@pytest.mark.parametrize("only", ["exact", "near"])
def test_exact_or_near_alone(planted, only):
    """With one of the two checks off; near alone still drops verbatim copies (jaccard 1.00)
    of a kept row, and reference copies keep their own reasons."""
    config = {"text_fields": ["text"], "exact": only == "exact", "near": only == "near"}
    texts, ids = planted["texts"][:600], planted["ids"][:600]
    want = local_decisions(config, texts, ids, planted["seeds"], planted["evals"])
    got = RayDeduplicator(config).decide(texts, ids, seeds=planted["seeds"],
                                         decontaminate=planted["evals"])
    assert as_tuples(got) == as_tuples(want)
    assert any(not d.keep for d in want)


def test_no_rows_and_no_pairs(planted):
    """An empty input gives no decisions and starts no Ray Data job; distinct rows give no
    candidate pair, and the stats say so."""
    dedup = RayDeduplicator({"text_fields": ["text"]})
    assert dedup.decide([], []) == []
    texts = ["the card never arrived in the post", "how do i change my pin number",
             "why was i charged twice for one coffee"]
    got = dedup.decide(texts, ["a", "b", "c"])
    assert [d.keep for d in got] == [True, True, True]
    assert dedup.stats["candidate_pairs"] == 0 and dedup.stats["verified_pairs"] == 0
