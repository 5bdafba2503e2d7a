"""Exact and near-duplicate dedup of a whole dataset on Ray Data: the decisions of
``filters.dedup.Deduplicator`` without one in-memory index on one node.

Contract
--------
``RayDeduplicator(config).decide(texts, ids, seeds=(texts, ids), decontaminate=(texts, ids))``
returns one ``Decision`` per text, equal (reason and detail) to what
``Deduplicator(config)`` gives when the seeds and the eval set are added as references and the
texts are checked in order: ``contaminated``, ``seed_copy``, ``exact_duplicate`` and
``near_duplicate`` with the same precedence, the same first-wins rule and the same matched id
in the detail. ``decide_dataset(ds, ...)`` takes a Ray Dataset with the columns ``row`` (the
order, an int), ``id`` and ``text`` instead, for data that does not fit on the driver, and
returns the decisions of the dropped rows only, by row.

How
---
1. *Sign* (``map_batches``, in parallel): each row's normalised-text digest (the exact-dedup
   key), its MinHash signature (``filters.minhash.MinHasher``) and one 64-bit key per LSH band
   (``filters.dedup.lsh_params``: 32 bands of 4 for the defaults).
2. *Exact groups*: rows are hash-partitioned on the digest; each group of equal texts elects
   its first row (its *representative*) and the first row of each reference set with that text.
3. *Band groups*: each row becomes one row per band, hash-partitioned on the band key; in
   every bucket of two or more distinct texts, the candidate pairs are (reference, row) and
   (earlier row, later row). A bucket holds each distinct text once, so a text copied ten
   thousand times costs one member, not fifty million pairs.
4. *Verify*: the unique candidate pairs are joined with both rows' signatures and kept when
   the signature Jaccard estimate reaches the threshold - the same estimate the local index
   uses, so the same pairs pass.
5. *Resolve* (on the driver): first wins is a sequential rule - a row is dropped only by an
   earlier row that was itself kept - so it runs over the verified pairs in row order. Only
   rows with a verified pair or an identical text are visited: memory and time grow with the
   duplicates, not with the dataset.

Why the same decisions: the local index's candidates for a text are the kept earlier texts
sharing a band with it; kept texts are always the first of their exact text, so every one of
them stands in the bucket of each of its bands and meets the text there. Later copies of a
text share its signature: they are exact duplicates of it when it was kept, and otherwise are
decided from its verified pairs with the rows kept before them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

from filters.base import KEEP, Decision, drop
from filters.dedup import _digest, _near_detail, _validated, lsh_params
from filters.minhash import MinHasher, normalize

__all__ = ["RayDeduplicator", "blocks_for"]

# Where a row comes from; smaller sources take precedence (the local order of checks).
DECONTAMINATE, SEEDS, STREAM = 0, 1, 2
_REASONS = {DECONTAMINATE: "contaminated", SEEDS: "seed_copy"}
_ROW_BITS = 40  # a row's uid is source << 40 | row
_MASK = (1 << _ROW_BITS) - 1
_BLOCK_ROWS = 2048
_PARTITION_ROWS = 50_000
_MIX = np.uint64(0x9E3779B97F4A7C15)


def _uid(source: np.ndarray | int, row: np.ndarray | int) -> Any:
    return (np.asarray(source, np.int64) << _ROW_BITS) | np.asarray(row, np.int64)


def _band_keys(sig: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """(n, bands) uint64 keys: band i's values mixed with i, so buckets never mix bands."""
    out = np.empty((len(sig), bands), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for band in range(bands):
            key = np.full(len(sig), np.uint64(band + 1) * _MIX, dtype=np.uint64)
            for value in sig[:, band * rows:(band + 1) * rows].T.astype(np.uint64):
                key = (key ^ value) * _MIX
                key ^= key >> np.uint64(29)
            out[:, band] = key
    return out


class _Sign:
    """map_batches UDF: digest, signature and band keys of each row."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.near = config["near"]
        self.hasher = MinHasher(num_perm=config["num_perm"], kind=config["shingle"],
                                n=config["ngram"], seed=config["seed"])
        self.bands, self.rows = lsh_params(float(config["threshold"]), config["num_perm"])

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        texts = [str(t) for t in batch["text"]]
        out = {"uid": _uid(batch["source"], batch["row"]), "id": batch["id"],
               "digest": np.array([_digest(normalize(t).encode("utf-8")) for t in texts],
                                  dtype=np.uint64)}
        if self.near:
            sig = self.hasher.signatures(texts)
            out["sig"] = sig
            out["bands"] = _band_keys(sig, self.bands, self.rows)
        return out


def _runs(keys: np.ndarray) -> list[slice]:
    """Slices of equal consecutive values of a sorted key column."""
    if not len(keys):
        return []
    cuts = np.flatnonzero(keys[1:] != keys[:-1]) + 1
    edges = [0, *cuts.tolist(), len(keys)]
    return [slice(a, b) for a, b in zip(edges[:-1], edges[1:])]


def _exact_groups(block: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per group of equal texts: every row that is not alone, with its group's first row of
    each source (-1: none). Input sorted by digest."""
    out: dict[str, list[int]] = {"uid": [], "first_stream": [], "first_seed": [],
                                 "first_decontaminate": []}
    uid, digest = block["uid"], block["digest"]
    for run in _runs(digest):
        if run.stop - run.start < 2:
            continue
        members = np.sort(uid[run])
        firsts = {}
        for source in (DECONTAMINATE, SEEDS, STREAM):
            mine = members[(members >> _ROW_BITS) == source]
            firsts[source] = int(mine[0]) if len(mine) else -1
        for member in members:
            out["uid"].append(int(member))
            out["first_stream"].append(firsts[STREAM])
            out["first_seed"].append(firsts[SEEDS])
            out["first_decontaminate"].append(firsts[DECONTAMINATE])
    return {k: np.array(v, dtype=np.int64) for k, v in out.items()}


def _explode(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """One row per (row, band): the band key, the row and its text's digest."""
    bands = batch["bands"]
    return {"key": bands.reshape(-1), "uid": np.repeat(batch["uid"], bands.shape[1]),
            "digest": np.repeat(batch["digest"], bands.shape[1])}


def _bucket_pairs(block: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Candidate pairs of every bucket of a block sorted by band key: (a, b) with b a stream
    row and a a reference or an earlier stream row; each distinct text once per source."""
    a_out: list[np.ndarray] = []
    b_out: list[np.ndarray] = []
    key, uid, digest = block["key"], block["uid"], block["digest"]
    for run in _runs(key):
        if run.stop - run.start < 2:
            continue
        members = uid[run]
        source = members >> _ROW_BITS
        # The first row of each (source, text): later copies share its signature.
        order = np.lexsort((members, digest[run], source))
        members, source, texts = members[order], source[order], digest[run][order]
        first = np.ones(len(members), dtype=bool)
        first[1:] = (texts[1:] != texts[:-1]) | (source[1:] != source[:-1])
        members, source = members[first], source[first]
        stream = members[source == STREAM]
        if not len(stream) or len(members) < 2:
            continue
        refs = members[source != STREAM]
        if len(refs):
            a_out.append(np.repeat(refs, len(stream)))
            b_out.append(np.tile(stream, len(refs)))
        i, j = np.triu_indices(len(stream), k=1)
        a_out.append(stream[i])
        b_out.append(stream[j])
    if not a_out:
        return {"a": np.zeros(0, np.int64), "b": np.zeros(0, np.int64)}
    return {"a": np.concatenate(a_out), "b": np.concatenate(b_out)}


def _scores(num_perm: int, threshold: float):
    def score(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        equal = np.count_nonzero(np.stack(batch["sig_a"]) == np.stack(batch["sig_b"]), axis=1)
        scores = equal / num_perm
        keep = scores >= threshold
        return {"a": batch["a"][keep], "b": batch["b"][keep], "score": scores[keep]}
    return score


class RayDeduplicator:
    """``Deduplicator``'s decisions for a whole dataset, computed on Ray Data.

    ``RayDeduplicator({"text_fields": ["text"]}).decide(texts, ids)`` (other keys: see
    ``filters.dedup.DEFAULT_CONFIG``). Needs a connected Ray (``ray.init``).
    """

    name = "dedup"

    def __init__(self, config: dict[str, Any], *, partitions: int | None = None) -> None:
        self.config = _validated(config)
        self.partitions = partitions
        self.stats: dict[str, int] = {}

    def decide(self, texts: Sequence[str], ids: Sequence[str], *,
               seeds: tuple[Sequence[str], Sequence[str]] | None = None,
               decontaminate: tuple[Sequence[str], Sequence[str]] | None = None
               ) -> list[Decision]:
        """One decision per text, in order (see the module docstring)."""
        import ray

        if len(texts) != len(ids):
            raise ValueError(f"{len(texts)} texts but {len(ids)} ids")
        if not texts:
            return []
        ds = ray.data.from_items([{"row": i, "id": str(d), "text": str(t)}
                                  for i, (t, d) in enumerate(zip(texts, ids))],
                                 override_num_blocks=blocks_for(len(texts)))
        dropped = self.decide_dataset(ds, seeds=seeds, decontaminate=decontaminate)
        return [dropped.get(i, KEEP) for i in range(len(texts))]

    def decide_dataset(self, ds: Any, *,
                       seeds: tuple[Sequence[str], Sequence[str]] | None = None,
                       decontaminate: tuple[Sequence[str], Sequence[str]] | None = None
                       ) -> dict[int, Decision]:
        """Decisions of the dropped rows of `ds` (columns row, id, text), by row."""
        import ray

        cfg = self.config
        parts = [ds.map_batches(_tag(STREAM), batch_format="numpy")]
        for source, ref in ((SEEDS, seeds), (DECONTAMINATE, decontaminate)):
            if ref is not None and len(ref[0]):
                if len(ref[0]) != len(ref[1]):
                    raise ValueError(f"{len(ref[0])} reference texts but {len(ref[1])} ids")
                items = [{"source": source, "row": i, "id": str(d), "text": str(t)}
                         for i, (t, d) in enumerate(zip(*ref))]
                parts.append(ray.data.from_items(items,
                                                 override_num_blocks=blocks_for(len(items))))
        tagged = parts[0].union(*parts[1:]) if len(parts) > 1 else parts[0]
        signed = tagged.map_batches(_Sign(cfg), batch_format="numpy").materialize()
        rows = signed.count() - sum(len(p[0]) for p in (seeds, decontaminate) if p)
        self.stats = {"rows": rows, "candidate_pairs": 0}
        partitions = self.partitions or _partitions(rows)
        groups = self._exact(signed, partitions)
        pairs = self._near(signed, partitions) if cfg["near"] else []
        found = self._resolve(groups, pairs)
        ids = self._ids(signed, {named for _, named, _ in found.values()})
        self.stats.update(identical_rows=len(groups), verified_pairs=len(pairs),
                          partitions=partitions)
        return {uid & _MASK: drop(reason, _detail(reason, ids[named], score))
                for uid, (reason, named, score) in found.items()}

    # -- stages

    @staticmethod
    def _ids(signed: Any, uids: set[int]) -> dict[int, str]:
        """The ids of the rows the decisions name (only those reach the driver)."""
        if not uids:
            return {}
        wanted = np.fromiter(uids, dtype=np.int64)

        def named(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            mask = np.isin(batch["uid"], wanted)
            return {"uid": batch["uid"][mask], "id": batch["id"][mask]}

        ids: dict[int, str] = {}
        for batch in (signed.select_columns(["uid", "id"]).map_batches(named, batch_format="numpy")
                      .iter_batches(batch_format="numpy")):
            ids.update(zip(batch["uid"].tolist(), batch["id"].tolist()))
        return ids

    @staticmethod
    def _exact(signed: Any, partitions: int) -> dict[int, tuple[int, int, int]]:
        """uid -> (first stream, first seed, first eval row) of its text, for rows whose text
        is not unique."""
        found = (signed.select_columns(["uid", "digest"])
                 .repartition(partitions, keys=["digest"], sort=True)
                 .map_batches(_exact_groups, batch_size=None, batch_format="numpy"))
        groups: dict[int, tuple[int, int, int]] = {}
        for batch in found.iter_batches(batch_format="numpy"):
            for uid, stream, seed, evalrow in zip(
                    batch["uid"].tolist(), batch["first_stream"].tolist(),
                    batch["first_seed"].tolist(), batch["first_decontaminate"].tolist()):
                groups[uid] = (stream, seed, evalrow)
        return groups

    def _near(self, signed: Any, partitions: int) -> list[tuple[int, int, float]]:
        """Verified (a, b, jaccard) pairs: b a stream row, a a reference or earlier row."""
        cfg = self.config
        candidates = (signed.select_columns(["uid", "digest", "bands"])
                      .map_batches(_explode, batch_format="numpy")
                      .repartition(partitions, keys=["key"], sort=True)
                      .map_batches(_bucket_pairs, batch_size=None, batch_format="numpy"))
        unique = (candidates.groupby(["a", "b"], num_partitions=partitions).count()
                  .select_columns(["a", "b"]).materialize())
        self.stats["candidate_pairs"] = unique.count()
        if not self.stats["candidate_pairs"]:
            return []
        sigs = signed.select_columns(["uid", "sig"])
        joined = (unique
                  .join(sigs.rename_columns({"uid": "a", "sig": "sig_a"}), "inner",
                        partitions, on=("a",))
                  .join(sigs.rename_columns({"uid": "b", "sig": "sig_b"}), "inner",
                        partitions, on=("b",)))
        verified = joined.map_batches(_scores(cfg["num_perm"], float(cfg["threshold"])),
                                      batch_format="numpy")
        pairs = []
        for batch in verified.iter_batches(batch_format="numpy"):
            pairs += zip(batch["a"].tolist(), batch["b"].tolist(), batch["score"].tolist())
        return pairs

    def _resolve(self, groups: dict[int, tuple[int, int, int]],
                 pairs: list[tuple[int, int, float]]
                 ) -> dict[int, tuple[str, int, float | None]]:
        """First wins, in row order, over the rows with an identical text or a verified pair:
        uid -> (reason, the uid it matched, jaccard; None for an exact reference match)."""
        exact_on = self.config["exact"]
        refs: dict[int, list[tuple[int, float]]] = defaultdict(list)  # rep -> [(ref, score)]
        peers: dict[int, list[tuple[int, float]]] = defaultdict(list)  # rep -> [(row, score)]
        for a, b, score in pairs:
            if a >> _ROW_BITS == STREAM:
                peers[a].append((b, score))
                peers[b].append((a, score))
            else:
                refs[b].append((a, score))
        todo = sorted({u for u in groups if u >> _ROW_BITS == STREAM} | set(peers) | set(refs))
        dropped: dict[int, tuple[str, int, float | None]] = {}
        for uid in todo:
            rep, seed_exact, eval_exact = groups.get(uid, (uid, -1, -1))
            found = None
            for source, exact in ((DECONTAMINATE, eval_exact), (SEEDS, seed_exact)):
                if exact >= 0:
                    found = (_REASONS[source], exact, None)
                else:
                    near = [(r, s) for r, s in refs.get(rep, ()) if r >> _ROW_BITS == source]
                    found = _best(_REASONS[source], near)
                if found is not None:
                    break
            if found is None:
                rep_kept = rep != uid and rep not in dropped
                if rep_kept and exact_on:
                    found = ("exact_duplicate", rep, None)
                else:
                    kept = [(p, s) for p, s in peers.get(rep, ())
                            if p < uid and p not in dropped]
                    if rep_kept:
                        kept.append((rep, 1.0))
                    found = _best("near_duplicate", kept)
            if found is not None:
                dropped[uid] = found
        return dropped


def _detail(reason: str, named: str, score: float | None) -> str:
    """The local dedup's detail: the earlier id; "(exact)" or the jaccard for references."""
    if reason == "exact_duplicate":
        return named
    return f"{named} (exact)" if score is None else _near_detail((named, score))


def _best(reason: str, matches: list[tuple[int, float]]) -> tuple[str, int, float] | None:
    """The best-scoring match, the earliest on ties (the local index's argmax)."""
    if not matches:
        return None
    uid, score = min(matches, key=lambda m: (-m[1], m[0]))
    return reason, uid, score


def _partitions(rows: int) -> int:
    """Hash partitions of each shuffle: one per CPU of the cluster, and more for large data so
    that a partition holds about `_PARTITION_ROWS` rows (times the bands, for the band keys)."""
    import ray

    cpus = int(ray.cluster_resources().get("CPU", 1))
    return max(2, cpus, min(1000, -(-rows // _PARTITION_ROWS)))


def blocks_for(rows: int) -> int:
    """Blocks for a dataset made on the driver: enough to use every CPU, each of at least
    `_BLOCK_ROWS` rows (a block costs a task at every stage)."""
    import ray

    cpus = int(ray.cluster_resources().get("CPU", 1))
    return max(1, min(2 * cpus, -(-rows // _BLOCK_ROWS)))


def _tag(source: int):
    def tag(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"source": np.full(len(batch["row"]), source, dtype=np.int64),
                "row": batch["row"].astype(np.int64), "id": batch["id"], "text": batch["text"]}
    return tag
