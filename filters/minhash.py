"""Fast MinHash signatures for near-duplicate detection, vectorised with numpy.

Contract
--------
* ``normalize(text)`` lower-cases, deletes every character that is neither a letter, a
  digit nor whitespace (punctuation, symbols, ``_``, control characters: ``"don't"`` becomes
  ``"dont"``), collapses whitespace runs to one space and strips the ends. It is also the
  key used for exact dedup.
* ``MinHasher(num_perm=128, kind="word", n=5, seed=1).signatures(texts)`` returns a
  ``(len(texts), num_perm)`` ``uint32`` array. Row ``i`` is the MinHash of the set of shingles
  of ``normalize(texts[i])``: n consecutive words (``kind="word"``) or n consecutive characters,
  spaces included (``kind="char"``). A document with fewer than n tokens is one shingle made
  of all its tokens; an empty document (nothing left after normalisation) gets the all-
  ``0xFFFFFFFF`` row, which estimates similarity 1.0 with other empty documents and ~0 with
  anything else.
* Rows are deterministic: they depend only on the text and the configuration, not on
  ``PYTHONHASHSEED``, the platform, the batch size or the neighbouring texts.
* ``jaccard(sig_a, sig_b)`` is the fraction of equal positions (the Jaccard estimate).
* ``to_datasketch(row, seed)`` wraps a row in a ``datasketch.LeanMinHash`` usable with
  ``datasketch.MinHashLSH.insert`` / ``query``. Only compare such sketches with each other:
  the values are not those datasketch's own ``MinHash.update`` would compute for the same text
  (different shingle hashing), although datasketch >= 2 labels both ``"affine32"``.

How
---
Texts are processed in batches of at most ``batch_size`` documents (and about
``max_batch_chars`` characters). A batch is normalised with a few whole-batch string calls,
each word gets a 64-bit polynomial hash computed with prefix sums over the batch's bytes (no
Python loop per word, no shingle strings), consecutive word hashes are combined into shingle
hashes with a rolling polynomial, mixed and cut to 32 bits. Each permutation is the affine
map ``a * x + b mod 2**32`` with ``a`` odd (a bijection, the same family as datasketch's
default "affine32" scheme). Documents are sorted by shingle count and laid out as columns of
cache-sized ``(longest, docs)`` tables (short columns padded with their own last shingle), so
that each permutation costs one multiply, one add and one column-wise ``np.minimum.reduce``.

This module is hand-written because it is ~90x faster than a datasketch ``MinHash.update()``
loop and ~15x faster than ``datasketch.MinHash.bulk`` (~12x on prebuilt shingles), text to
signature, with the same estimation error: measured by ``scripts/bench_minhash.py`` on the
project's 2-core machine (10,000 texts of ~100 words, word 5-grams, 128 permutations), where
it computed 32,000-63,000 signatures/s depending on background load.

Memory: signatures cost ``4 * num_perm`` bytes per row, i.e. 512 MB (488 MiB) for 1M rows at
128 permutations (1 GB if widened to uint64, as datasketch < 2 stores them). Working memory is
bounded by the batch limits, whatever the number of texts: roughly 40 bytes per UTF-8 byte of
a batch (~80 MB for a full default batch of 2M ASCII characters, up to 4x that for scripts
with multi-byte characters), plus ~16 bytes per cell of a permutation table (``block_cells``,
4 MB by default, or one document's shingles if larger). ``iter_signatures`` yields one batch
at a time for streaming.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np

__all__ = ["MinHasher", "jaccard", "normalize", "to_datasketch", "EMPTY_VALUE"]

EMPTY_VALUE = np.uint32(0xFFFFFFFF)  # every position of an empty document's signature

_U64 = np.uint64
_WORD_PRIME = 0x9E3779B97F4A7C15  # odd multiplier of the per-word polynomial hash
_SHINGLE_MULT = 0xD6E8FEB86659FD93  # odd multiplier of the rolling shingle combination
_CHAR_SALT = 0x2545F4914F6CDD1D  # makes char hashes differ from raw code points

# A character is dropped if it is neither word character nor whitespace, or is "_".
_DROP_RE = re.compile(r"[^\w\s]|_")
# Same, but keeps "\x00", the document separator inside a joined batch.
_DROP_BATCH_RE = re.compile(r"[^\w\s\x00]|_")
# Whitespace outside ASCII, made a plain space so that it splits words in the byte array.
_UNICODE_WS_RE = re.compile(r"[^\S\t\n\x0b\x0c\r\x1c-\x1f ]+")
_ASCII_DROP = bytes(
    c for c in range(1, 128) if not (chr(c).isalnum() or chr(c).isspace())
)


def normalize(text: str) -> str:
    """Lower-case, delete punctuation/symbols, collapse whitespace (see module docstring)."""
    return " ".join(_DROP_RE.sub("", text.lower()).split())


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser, a bijection on uint64 with full avalanche (modifies ``x``)."""
    x ^= x >> _U64(30)
    x *= _U64(0xBF58476D1CE4E5B9)
    x ^= x >> _U64(27)
    x *= _U64(0x94D049BB133111EB)
    x ^= x >> _U64(31)
    return x


class _Powers:
    """Cached ``P**i`` and ``P**-i`` mod 2**64 for the word hash, grown on demand."""

    def __init__(self) -> None:
        self.tables = (np.ones(1, dtype=_U64), np.ones(1, dtype=_U64))

    def get(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        tables = self.tables  # replaced as a whole, so concurrent readers stay consistent
        if len(tables[0]) < size:
            size = max(size, 2 * len(tables[0]))
            inverse = pow(_WORD_PRIME, -1, 1 << 64)
            tables = (self._series(_WORD_PRIME, size), self._series(inverse, size))
            self.tables = tables
        return tables

    @staticmethod
    def _series(base: int, size: int) -> np.ndarray:
        out = np.empty(size, dtype=_U64)
        out[0], done = 1, 1
        while done < size:  # doubling: out[done:2*done] = out[:done] * base**done
            take = min(done, size - done)
            np.multiply(out[:take], _U64(pow(base, done, 1 << 64)), out=out[done : done + take])
            done += take
        return out


_POWERS = _Powers()


def _normalized_bytes(joined: str) -> np.ndarray:
    """``joined`` lower-cased, punctuation deleted, as bytes; whitespace/NUL bytes are <= 32."""
    lowered = joined.lower()
    if lowered.isascii():
        data = lowered.encode("ascii").translate(None, _ASCII_DROP)
    else:
        data = _UNICODE_WS_RE.sub(" ", _DROP_BATCH_RE.sub("", lowered)).encode("utf-8")
    return np.frombuffer(data, dtype=np.uint8)


def _batch_bytes(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(normalised batch as bytes, positions of the NUL bytes that separate the texts)."""
    data = _normalized_bytes("\x00".join(texts))
    separators = np.flatnonzero(data == 0)
    if len(separators) != len(texts) - 1:  # a text contains NUL, which normalize() drops
        data = _normalized_bytes("\x00".join(t.replace("\x00", "") for t in texts))
        separators = np.flatnonzero(data == 0)
    return data, separators


def _word_tokens(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(64-bit hash of every word of the batch in order, number of words per text)."""
    data, separators = _batch_bytes(texts)
    inside = np.zeros(len(data) + 2, dtype=bool)
    np.greater(data, 32, out=inside[1:-1])  # bytes <= 32 separate words
    bounds = np.flatnonzero(inside[1:] != inside[:-1])  # start, end, start, end, ...
    starts, ends = bounds[0::2], bounds[1::2]  # word = data[start:end]
    powers, inverse = _POWERS.get(len(data))
    prefix = np.multiply(powers[: len(data)], data)
    np.cumsum(prefix, out=prefix)  # prefix[i] = sum(data[k] * P**k for k <= i) mod 2**64
    around = prefix[bounds - 1]  # prefix before each start, prefix at each end
    if len(bounds) and bounds[0] == 0:
        around[0] = 0
    hashes = (around[1::2] - around[0::2]) * inverse[starts]  # = sum(data[s+k] * P**k)
    hashes += (ends - starts).astype(_U64) << _U64(56)
    doc_ends = np.searchsorted(starts, separators)
    counts = np.diff(doc_ends, prepend=0, append=len(starts))
    return _mix64(hashes), counts


def _char_tokens(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(64-bit hash of every character of the normalised texts, characters per text)."""
    normed = [normalize(t) for t in texts]
    codes = np.frombuffer("".join(normed).encode("utf-32-le"), dtype=np.uint32)
    hashes = codes.astype(_U64) + _U64(_CHAR_SALT)
    return _mix64(hashes), np.fromiter(map(len, normed), dtype=np.int64, count=len(normed))


def _shingles(tokens: np.ndarray, counts: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Hashes of the n-token windows inside each text (a short text: one whole-text window).

    Returns (uint32 shingle hashes grouped by text in order, number of shingles per text).
    """
    first = np.concatenate(([0], np.cumsum(counts)))
    per_doc = np.where(counts >= n, counts - n + 1, (counts > 0).astype(np.int64))
    windows = _windows(tokens, first, n)
    short = np.flatnonzero((counts > 0) & (counts < n))
    out = np.empty(int(per_doc.sum()), dtype=_U64)
    if len(short):
        slot = np.ones(len(out), dtype=bool)
        head = np.concatenate(([0], np.cumsum(per_doc)))[short]
        slot[head] = False
        out[head] = _short_windows(tokens, first[short], counts[short], n)
        out[slot] = windows
    else:
        out[:] = windows
    return (_mix64(out) >> _U64(32)).astype(np.uint32), per_doc


def _windows(tokens: np.ndarray, first: np.ndarray, n: int) -> np.ndarray:
    """Rolling hash of every n-window that does not cross a text boundary."""
    size = len(tokens) - n + 1
    if size <= 0:
        return np.empty(0, dtype=_U64)
    acc = tokens[:size].copy()
    for j in range(1, n):
        acc *= _U64(_SHINGLE_MULT)
        acc += tokens[j : j + size]
    valid = np.ones(size, dtype=bool)
    crossing = first[1:-1, None] - np.arange(1, n)  # windows that start < n before a boundary
    valid[crossing[(crossing >= 0) & (crossing < size)]] = False
    return acc[valid]


def _short_windows(
    tokens: np.ndarray, start: np.ndarray, count: np.ndarray, n: int
) -> np.ndarray:
    """The same rolling hash over all tokens of texts that have fewer than n of them."""
    acc = np.zeros(len(start), dtype=_U64)
    for j in range(n - 1):
        live = count > j
        step = acc[live] * _U64(_SHINGLE_MULT)
        acc[live] = step + tokens[start[live] + j]
    return acc


class MinHasher:
    """Computes MinHash signatures of texts; see the module docstring for the contract."""

    def __init__(
        self,
        num_perm: int = 128,
        kind: str = "word",
        n: int = 5,
        seed: int = 1,
        batch_size: int = 2048,
        max_batch_chars: int = 1 << 21,
        block_cells: int = 1 << 18,
    ) -> None:
        if kind not in ("word", "char"):
            raise ValueError(f"kind must be 'word' or 'char', got {kind!r}")
        if min(num_perm, n, batch_size, block_cells) < 1:
            raise ValueError("num_perm, n, batch_size and block_cells must be positive")
        self.num_perm, self.kind, self.n, self.seed = num_perm, kind, n, seed
        self.batch_size, self.max_batch_chars = batch_size, max_batch_chars
        self.block_cells = block_cells
        rng = np.random.default_rng(seed)
        self.a = rng.integers(0, 1 << 32, num_perm, dtype=np.uint32) | np.uint32(1)
        self.b = rng.integers(0, 1 << 32, num_perm, dtype=np.uint32)

    def signatures(self, texts: Sequence[str]) -> np.ndarray:
        """``(len(texts), num_perm)`` uint32 signatures, computed batch by batch."""
        out = np.empty((len(texts), self.num_perm), dtype=np.uint32)
        row = 0
        for sig in self.iter_signatures(texts):
            out[row : row + len(sig)] = sig
            row += len(sig)
        return out

    def iter_signatures(self, texts: Iterable[str]) -> Iterator[np.ndarray]:
        """Signatures of consecutive batches of ``texts`` (any iterable), in order."""
        for batch in self._batches(texts):
            yield self._batch_signatures(batch)

    def signature(self, text: str) -> np.ndarray:
        """Signature of one text (slow path for ad-hoc use; prefer ``signatures``)."""
        return self.signatures([text])[0]

    def _batches(self, texts: Iterable[str]) -> Iterator[list[str]]:
        batch: list[str] = []
        chars = 0
        for text in texts:
            full = len(batch) >= self.batch_size or chars + len(text) > self.max_batch_chars
            if batch and full:
                yield batch
                batch, chars = [], 0
            batch.append(text)
            chars += len(text)
        if batch:
            yield batch

    def _batch_signatures(self, batch: Sequence[str]) -> np.ndarray:
        tokenize = _word_tokens if self.kind == "word" else _char_tokens
        tokens, counts = tokenize(batch)
        hashes, per_doc = _shingles(tokens, counts, self.n)
        return self._min_permuted(hashes, per_doc)

    def _min_permuted(self, hashes: np.ndarray, per_doc: np.ndarray) -> np.ndarray:
        """Per-document minima of ``a * h + b mod 2**32`` over each document's shingles."""
        sig = np.full((len(per_doc), self.num_perm), EMPTY_VALUE, dtype=np.uint32)
        first = np.concatenate(([0], np.cumsum(per_doc)[:-1]))
        order = np.argsort(per_doc, kind="stable")
        order = order[per_doc[order] > 0]
        for group in _groups(per_doc[order], self.block_cells):
            docs = order[group]
            sig[docs] = self._group_minima(hashes, first[docs], per_doc[docs]).T
        return sig

    def _group_minima(self, hashes: np.ndarray, first: np.ndarray, count: np.ndarray) -> np.ndarray:
        """(num_perm, docs) minima; docs laid out as columns of a (longest, docs) matrix.

        Shorter documents are padded with their own last shingle, which leaves minima intact.
        """
        rows = np.arange(int(count.max()))[:, None]
        table = hashes[first + np.minimum(rows, count - 1)]
        work = np.empty_like(table)
        out = np.empty((self.num_perm, table.shape[1]), dtype=np.uint32)
        for k in range(self.num_perm):
            np.multiply(table, self.a[k], out=work)
            np.add(work, self.b[k], out=work)
            np.minimum.reduce(work, axis=0, out=out[k])
        return out


def _groups(counts: np.ndarray, cells: int) -> Iterator[slice]:
    """Consecutive slices of ascending ``counts`` with len(slice) * max(slice) <= cells."""
    i = 0
    while i < len(counts):
        stop = min(len(counts), i + max(1, cells // int(counts[i])))
        size = np.arange(1, stop - i + 1) * counts[i:stop]
        j = i + max(1, int(np.count_nonzero(size <= cells)))
        yield slice(i, j)
        i = j


def jaccard(sig_a: np.ndarray, sig_b: np.ndarray) -> float:
    """Jaccard estimate of two signatures: the fraction of positions where they agree."""
    a, b = np.asarray(sig_a), np.asarray(sig_b)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"signatures must be 1-D and of equal shape: {a.shape} vs {b.shape}")
    return float(np.count_nonzero(a == b)) / len(a)


def to_datasketch(sig_row: np.ndarray, seed: int = 1) -> Any:
    """A ``datasketch.LeanMinHash`` holding ``sig_row``, for ``MinHashLSH.insert``/``query``.

    ``seed`` should be the ``MinHasher`` seed; datasketch only compares sketches of equal seed.
    Under datasketch >= 2 the sketch is labelled with the "affine32" scheme (same value range
    and permutation family); older versions store the values as uint64.
    """
    from datasketch import LeanMinHash

    values = np.asarray(sig_row, dtype=np.uint32)
    try:
        return LeanMinHash(seed=seed, hashvalues=values, scheme="affine32")
    except TypeError:  # datasketch < 2 has no permutation schemes
        return LeanMinHash(seed=seed, hashvalues=values.astype(np.uint64))
