"""Exact and near-duplicate filters, streaming, first one wins.

Contract
--------
* ``ExactDuplicateFilter().check(text, id)`` drops a text whose ``minhash.normalize`` form
  (case, punctuation and whitespace removed) equals that of an earlier kept text:
  ``drop("exact_duplicate", detail=earlier_id)``; otherwise it remembers the text and keeps it.
* ``NearDuplicateFilter(shingle, ngram, num_perm, threshold, seed).check(text, id)`` computes
  the text's MinHash signature (``minhash.MinHasher``), queries a ``datasketch.MinHashLSH``
  index of the earlier *kept* texts and verifies every candidate with the signature Jaccard
  estimate: a candidate matches when the estimate is >= ``threshold``. On a match the text is
  dropped with ``near_duplicate`` and detail ``"<earlier id> (jaccard 0.81)"`` (the best match,
  the earliest one on ties); otherwise it is inserted and kept. ``check_many(texts, ids)``
  computes all signatures in one vectorised call, then streams through the index in order,
  so it gives exactly the decisions of calling ``check`` on each text in turn.
* ``Deduplicator(config)`` combines both with two reference indexes that are checked but
  never grow: few-shot seeds (``add_seeds``: reason ``seed_copy``, no parroting the examples)
  and an evaluation set (``add_decontamination``: reason ``contaminated``). Each reference
  match, exact or near, is reported with its own reason; the order of precedence is
  ``contaminated``, ``seed_copy``, ``exact_duplicate``, ``near_duplicate``. Only kept records
  enter the stream index. ``check_record(fields, id)`` joins ``config["text_fields"]``;
  ``check_records`` is its batch form. ``ValueError`` on a bad config or a missing field.

Defaults: character 3-grams, 128 permutations, threshold 0.6
--------------------------------------------------------------
Measured on BANKING77 (real banking queries, median 10 words) with ``tests/test_dedup.py``'s
planted set (1,500 originals, 300 copies with one or two word edits - swap, insert, delete,
typo - plus case/punctuation noise) using exact shingle-set Jaccard:

* word shingles are brittle on short texts: one edit in a 10-word query changes 3 of its 8
  word 3-grams, so only 48% of the planted copies reach Jaccard 0.5 with word 3-grams and 77%
  with word 2-grams, while 7-16 distinct originals already collide at 0.5 (word 2-grams);
* character n-grams degrade gracefully. Copies reaching the threshold / distinct originals
  whose nearest other original reaches it: char 3 @ 0.6: 98.3-98.7% / 1-7;
  char 4 @ 0.5: 98.0-98.3% / 5-19 (out of 1,500); char 5 @ 0.5, measured with the looser
  0.6 word-set selection: 92% / 22-28.
* for long texts (support tickets, 30-150 words) char 3-grams stay safe: the most similar pair
  of the 36 built-in seed tickets has Jaccard 0.24, and edited copies stay above 0.92.

End to end (this module, defaults, planted seeds 0-3, originals picked with word-set Jaccard
< 0.5): near copies precision 0.967-0.987, recall 0.967-0.983; exact copies 1.0 / 0.98-1.0;
overall 0.980-0.990 / 0.975-0.988. char 4 @ 0.5 reached the same recall at precision
0.945-0.974. Throughput is ~1,000 rows/s (datasketch hashes each band in Python).

So ``char``/3/0.6 separates lightly edited copies from distinct real queries best, on short
and long texts alike. With 128 permutations the Jaccard estimate has a standard deviation of
about 0.045 near 0.6, which costs about a point of recall; 256 permutations halve the noise
for twice the signature memory. The LSH bands are chosen by ``lsh_params``: the longest band
whose ``num_perm // rows`` bands still catch a pair at the threshold with probability >= 0.98
(32 bands of 4 for the defaults); verification then removes the extra candidates.

Memory
------
Per kept row an index stores: the signature, ``4 * num_perm`` bytes in preallocated numpy
blocks (no MinHash or LeanMinHash objects are kept); one 64-bit band key per band in the LSH
tables (band keys are 8-byte blake2b digests held as ints; each bucket holds a bare row number
and only becomes a list on collision, instead of datasketch's set per bucket and its per-key
copy of all band keys); the exact-match entry (8-byte digest -> row); the caller's id string.
tracemalloc on 100,000 synthetic rows of 6-30 random words (``Deduplicator`` with the defaults,
batches of 2,000, all rows kept) measured 3,480 bytes/row, i.e. ~3.5 GB for a million rows:
512 for the signature, ~2,500 for the 32 LSH bands, the rest for the exact map and the id
list (the id strings themselves are the caller's and not counted). With 64 permutations
(21 bands of 3) it measured 2,260 bytes/row; with datasketch's stock dict storage, 10,900.
The index grows with the number of kept rows and nothing else; there is no eviction.
"""

from __future__ import annotations

import hashlib
from collections.abc import Hashable, Iterable, Sequence
from typing import Any

import numpy as np
from datasketch import MinHashLSH

from filters.base import KEEP, Decision, drop
from filters.minhash import MinHasher, normalize, to_datasketch

__all__ = [
    "Deduplicator",
    "ExactDuplicateFilter",
    "NearDuplicateFilter",
    "lsh_params",
    "DEFAULT_CONFIG",
]

DEFAULT_CONFIG: dict[str, Any] = {
    "text_fields": None,  # required: the record fields whose text is compared
    "shingle": "char",
    "ngram": 3,
    "num_perm": 128,
    "threshold": 0.6,
    "seed": 1,
    "exact": True,
    "near": True,
}
_BLOCK_ROWS = 4096  # signatures are stored in blocks of this many rows


def lsh_params(threshold: float, num_perm: int, recall: float = 0.98) -> tuple[int, int]:
    """(bands, rows): longest rows-per-band with P(candidate | Jaccard = threshold) >= recall."""
    for rows in range(num_perm // 2, 1, -1):
        bands = num_perm // rows
        if 1.0 - (1.0 - threshold**rows) ** bands >= recall:
            return bands, rows
    return num_perm, 1


def _digest(data: bytes) -> int:
    """64-bit blake2b of ``data`` as an int: deterministic, unlike ``hash(bytes)``."""
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little")


class _Buckets:
    """datasketch storage for one band: band key -> row number, or a list of them.

    Implements the part of ``datasketch.storage.UnorderedStorage`` that ``MinHashLSH.insert``
    and ``query`` use, at a fraction of the memory of its ``defaultdict(set)``.
    """

    def __init__(self) -> None:
        self._dict: dict[Hashable, Any] = {}

    def insert(self, key: Hashable, *vals: int, **_: Any) -> None:
        for val in vals:
            old = self._dict.setdefault(key, val)
            if old is val:
                continue
            if isinstance(old, list):
                old.append(val)
            else:
                self._dict[key] = [old, val]

    def get(self, key: Hashable) -> list[int]:
        found = self._dict.get(key)
        if found is None:
            return []
        return found if isinstance(found, list) else [found]

    def size(self) -> int:
        return len(self._dict)


class _NoKeys:
    """Replaces the LSH's key -> band-keys table, which only ``remove`` needs."""

    def insert(self, key: Hashable, *vals: Any, **_: Any) -> None:
        pass

    def size(self) -> int:
        return 0


def _compact_lsh(threshold: float, num_perm: int) -> MinHashLSH:
    """A ``MinHashLSH`` with 64-bit band keys and compact in-memory buckets (no removal)."""
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm,
                     params=lsh_params(threshold, num_perm), hashfunc=_digest)
    if not hasattr(lsh, "hashtables") or not hasattr(lsh, "keys"):
        raise RuntimeError("unsupported datasketch version: MinHashLSH has no hashtables/keys")
    lsh.hashtables = [_Buckets() for _ in range(lsh.b)]
    lsh.keys = _NoKeys()
    return lsh


class _Index:
    """Exact keys and an LSH over signatures of some rows; no keep/drop policy."""

    def __init__(self, num_perm: int, threshold: float, seed: int) -> None:
        self.num_perm, self.threshold, self.seed = num_perm, threshold, seed
        self.ids: list[str] = []
        self._exact: dict[int, int] = {}
        self._blocks: list[np.ndarray] = []
        self._lsh: MinHashLSH | None = None  # created on the first near insert

    def __len__(self) -> int:
        return len(self.ids)

    def exact_match(self, normalized: str) -> str | None:
        """Id of the first row inserted with this normalised text, if any."""
        row = self._exact.get(_digest(normalized.encode("utf-8")))
        return None if row is None else self.ids[row]

    def near_match(self, sig: np.ndarray) -> tuple[str, float] | None:
        """(id, estimated Jaccard) of the best verified candidate >= threshold, earliest on ties."""
        if self._lsh is None:
            return None
        rows = np.array(sorted(self._lsh.query(to_datasketch(sig, self.seed))), dtype=np.int64)
        if not len(rows):
            return None
        stored = np.stack([self._blocks[r // _BLOCK_ROWS][r % _BLOCK_ROWS] for r in rows])
        scores = np.count_nonzero(stored == sig, axis=1) / self.num_perm
        best = int(np.argmax(scores))  # argmax takes the first maximum: the earliest row
        if scores[best] < self.threshold:
            return None
        return self.ids[rows[best]], float(scores[best])

    def insert(self, id: str, normalized: str | None, sig: np.ndarray | None) -> None:
        """Remember a row by its normalised text and/or its signature."""
        row = len(self.ids)
        self.ids.append(id)
        if normalized is not None:
            self._exact.setdefault(_digest(normalized.encode("utf-8")), row)
        if sig is not None:
            self._store_signature(row, sig)
            if self._lsh is None:
                self._lsh = _compact_lsh(self.threshold, self.num_perm)
            self._lsh.insert(row, to_datasketch(sig, self.seed), check_duplication=False)

    def _store_signature(self, row: int, sig: np.ndarray) -> None:
        if row // _BLOCK_ROWS >= len(self._blocks):
            self._blocks.append(np.empty((_BLOCK_ROWS, self.num_perm), dtype=np.uint32))
        self._blocks[row // _BLOCK_ROWS][row % _BLOCK_ROWS] = sig


def _check_params(shingle: str, ngram: int, num_perm: int, threshold: float) -> None:
    """ValueError unless the MinHash/LSH parameters make sense."""
    if shingle not in ("word", "char"):
        raise ValueError(f"shingle must be 'word' or 'char', got {shingle!r}")
    for name, value, low in (("ngram", ngram, 1), ("num_perm", num_perm, 4)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
        raise ValueError(f"threshold must be a number, got {threshold!r}")
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must be in (0, 1], got {threshold!r}")


def _check_ids(texts: Sequence[str], ids: Sequence[str]) -> None:
    if len(texts) != len(ids):
        raise ValueError(f"{len(texts)} texts but {len(ids)} ids")


def _near_detail(match: tuple[str, float]) -> str:
    return f"{match[0]} (jaccard {match[1]:.2f})"


class ExactDuplicateFilter:
    """``check(text, id)``: ``exact_duplicate`` if the normalised text was kept before."""

    name = "exact_dedup"

    def __init__(self) -> None:
        self._index = _Index(num_perm=4, threshold=1.0, seed=1)

    def check(self, text: str, id: str | None = None) -> Decision:
        """Drop a repeat (detail: the earlier id); otherwise remember the text and keep it."""
        normalized = normalize(text)
        earlier = self._index.exact_match(normalized)
        if earlier is not None:
            return drop("exact_duplicate", earlier)
        self._index.insert(id if id is not None else str(len(self._index)), normalized, None)
        return KEEP

    def check_many(self, texts: Sequence[str], ids: Sequence[str]) -> list[Decision]:
        """``check`` on each text in order."""
        _check_ids(texts, ids)
        return [self.check(text, id) for text, id in zip(texts, ids)]


class NearDuplicateFilter:
    """Streaming MinHash-LSH near-duplicate filter (see the module docstring)."""

    name = "near_dedup"

    def __init__(self, shingle: str = "char", ngram: int = 3, num_perm: int = 128,
                 threshold: float = 0.6, seed: int = 1) -> None:
        _check_params(shingle, ngram, num_perm, threshold)
        self.threshold = float(threshold)
        self.hasher = MinHasher(num_perm=num_perm, kind=shingle, n=ngram, seed=seed)
        self._index = _Index(num_perm, self.threshold, seed)

    def __len__(self) -> int:
        """Number of kept (indexed) texts."""
        return len(self._index)

    def check(self, text: str, id: str | None = None) -> Decision:
        """Query the index; drop ``near_duplicate`` on a verified match, else insert and keep."""
        key = id if id is not None else str(len(self._index))
        return self.check_signature(self.hasher.signatures([text])[0], key)

    def check_many(self, texts: Sequence[str], ids: Sequence[str]) -> list[Decision]:
        """``check`` on each text in order, with the signatures computed in one call."""
        _check_ids(texts, ids)
        sigs = self.hasher.signatures(texts)
        return [self.check_signature(sig, id) for sig, id in zip(sigs, ids)]

    def check_signature(self, sig: np.ndarray, id: str) -> Decision:
        """``check`` for a signature computed by ``self.hasher``."""
        match = self._index.near_match(sig)
        if match is not None:
            return drop("near_duplicate", _near_detail(match))
        self._index.insert(id, None, sig)
        return KEEP


def _validated(config: dict[str, Any]) -> dict[str, Any]:
    """``DEFAULT_CONFIG`` updated with ``config``; ValueError on unknown keys or bad values."""
    if not isinstance(config, dict):
        raise ValueError(f"dedup config must be a dict, got {type(config).__name__}")
    unknown = sorted(set(config) - set(DEFAULT_CONFIG))
    if unknown:
        raise ValueError(f"unknown dedup config keys: {unknown}")
    merged = {**DEFAULT_CONFIG, **config}
    fields = merged["text_fields"]
    if (not isinstance(fields, list) or not fields
            or not all(isinstance(f, str) and f for f in fields)):
        raise ValueError(f"text_fields must be a non-empty list of field names, got {fields!r}")
    _check_params(merged["shingle"], merged["ngram"], merged["num_perm"], merged["threshold"])
    for name in ("exact", "near"):
        if not isinstance(merged[name], bool):
            raise ValueError(f"{name} must be true or false, got {merged[name]!r}")
    if isinstance(merged["seed"], bool) or not isinstance(merged["seed"], int):
        raise ValueError(f"seed must be an integer, got {merged['seed']!r}")
    return merged


class Deduplicator:
    """Exact + near dedup of records against the stream, the seeds and an eval set.

    ``Deduplicator({"text_fields": ["subject", "body"]})`` (other keys: see ``DEFAULT_CONFIG``).
    """

    name = "dedup"

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = _validated(config)
        cfg = self.config
        self.text_fields: list[str] = list(cfg["text_fields"])
        self.hasher = MinHasher(num_perm=cfg["num_perm"], kind=cfg["shingle"], n=cfg["ngram"],
                                seed=cfg["seed"])
        args = (cfg["num_perm"], float(cfg["threshold"]), cfg["seed"])
        self.stream, self.seeds, self.decontam = _Index(*args), _Index(*args), _Index(*args)
        self._auto_id = 0

    def add_seeds(self, texts: Sequence[str], ids: Sequence[str]) -> None:
        """Index few-shot examples: later matches are dropped as ``seed_copy``."""
        self._add_reference(self.seeds, texts, ids)

    def add_decontamination(self, texts: Sequence[str], ids: Sequence[str]) -> None:
        """Index an evaluation set: later matches are dropped as ``contaminated``."""
        self._add_reference(self.decontam, texts, ids)

    def _add_reference(self, index: _Index, texts: Sequence[str], ids: Sequence[str]) -> None:
        _check_ids(texts, ids)
        for text, id, sig in zip(texts, ids, self._signatures(texts)):
            index.insert(id, normalize(text), sig)

    def _signatures(self, texts: Sequence[str]) -> Iterable[np.ndarray | None]:
        if self.config["near"]:
            return self.hasher.signatures(texts)
        return [None] * len(texts)

    def text_of(self, fields: dict[str, Any]) -> str:
        """The configured text fields joined by newlines; ValueError if one is missing."""
        parts = []
        for name in self.text_fields:
            value = fields.get(name)
            if not isinstance(value, str):
                raise ValueError(f"record has no text field {name!r}")
            parts.append(value)
        return "\n".join(parts)

    def check_record(self, fields: dict[str, Any], id: str) -> Decision:
        """Decision for one record; a kept record enters the stream index."""
        return self.check_texts([self.text_of(fields)], [id])[0]

    def check_records(self, records: Sequence[dict[str, Any]],
                      ids: Sequence[str]) -> list[Decision]:
        """``check_record`` on each record in order, signatures computed in one call."""
        return self.check_texts([self.text_of(fields) for fields in records], ids)

    def __call__(self, fields: dict[str, Any]) -> Decision:
        """``Filter`` protocol: ``check_record`` with an automatic id ``"#<n>"``."""
        self._auto_id += 1
        return self.check_record(fields, f"#{self._auto_id}")

    def check_texts(self, texts: Sequence[str], ids: Sequence[str]) -> list[Decision]:
        """Decisions for already-joined texts, streamed in order."""
        _check_ids(texts, ids)
        sigs = self._signatures(texts)
        return [self._decide(text, id, sig) for text, id, sig in zip(texts, ids, sigs)]

    def _decide(self, text: str, id: str, sig: np.ndarray | None) -> Decision:
        normalized = normalize(text)
        for index, reason in ((self.decontam, "contaminated"), (self.seeds, "seed_copy")):
            decision = self._reference_match(index, reason, normalized, sig)
            if decision is not None:
                return decision
        if self.config["exact"]:
            earlier = self.stream.exact_match(normalized)
            if earlier is not None:
                return drop("exact_duplicate", earlier)
        match = self.stream.near_match(sig) if sig is not None else None
        if match is not None:
            return drop("near_duplicate", _near_detail(match))
        self.stream.insert(id, normalized if self.config["exact"] else None, sig)
        return KEEP

    @staticmethod
    def _reference_match(index: _Index, reason: str, normalized: str,
                         sig: np.ndarray | None) -> Decision | None:
        if not len(index):
            return None
        earlier = index.exact_match(normalized)
        if earlier is not None:
            return drop(reason, f"{earlier} (exact)")
        match = index.near_match(sig) if sig is not None else None
        return None if match is None else drop(reason, _near_detail(match))
