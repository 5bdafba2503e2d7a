"""How far the synthetic rows sit from the real ones: lengths, words, labels and embeddings.

Every function takes plain lists or arrays and returns plain numbers, so each can be checked on
inputs whose answer is known (identical sets: JS divergence 0 and MMD² 0).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

# Each side of the MMD and the 2-D map is a seeded sample of at most this many rows: the kernel
# matrix of 2 x 1500 rows is 36 MB and its permutation test takes about a second.
MAX_KERNEL_ROWS = 1500
PERMUTATIONS = 200


def words(text: str) -> list[str]:
    return text.lower().split()


def length_stats(synthetic: Sequence[str], real: Sequence[str]) -> dict[str, Any]:
    """Word and character counts per text on each side, and the Wasserstein (earth mover's)
    distance between the two distributions, in words and in characters."""
    from scipy.stats import wasserstein_distance

    out: dict[str, Any] = {}
    for unit, measure in (("words", lambda t: len(words(t))), ("chars", len)):
        s = np.array([measure(t) for t in synthetic], dtype=float)
        r = np.array([measure(t) for t in real], dtype=float)
        out[unit] = {
            "synthetic": _summary(s), "reference": _summary(r),
            "wasserstein": float(wasserstein_distance(s, r)),
        }
    return out


def _summary(values: np.ndarray) -> dict[str, float]:
    return {"mean": float(values.mean()), "median": float(np.median(values)),
            "p10": float(np.percentile(values, 10)), "p90": float(np.percentile(values, 90))}


def ngram_counts(texts: Sequence[str], n: int) -> Counter[tuple[str, ...]]:
    counts: Counter[tuple[str, ...]] = Counter()
    for text in texts:
        tokens = words(text)
        counts.update(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))
    return counts


def js_divergence(p: Counter, q: Counter) -> float:
    """Jensen–Shannon divergence (base 2, so 0 to 1) between two count distributions.

    0 when the relative frequencies are equal, 1 when the supports are disjoint; nan when a side
    is empty.
    """
    total_p, total_q = sum(p.values()), sum(q.values())
    if not total_p or not total_q:
        return math.nan
    keys = list(set(p) | set(q))
    a = np.array([p.get(k, 0) for k in keys], dtype=float) / total_p
    b = np.array([q.get(k, 0) for k in keys], dtype=float) / total_q
    m = (a + b) / 2

    def kl(x: np.ndarray) -> float:
        mask = x > 0
        return float(np.sum(x[mask] * np.log2(x[mask] / m[mask])))

    return max(0.0, min(1.0, (kl(a) + kl(b)) / 2))


def ngram_divergence(synthetic: Sequence[str], real: Sequence[str]) -> dict[str, Any]:
    """JS divergence of word unigram and bigram frequencies, and the words that differ most."""
    out: dict[str, Any] = {}
    for n, name in ((1, "unigram"), (2, "bigram")):
        out[name] = js_divergence(ngram_counts(synthetic, n), ngram_counts(real, n))
    s, r = ngram_counts(synthetic, 1), ngram_counts(real, 1)
    ts, tr = max(sum(s.values()), 1), max(sum(r.values()), 1)
    gap = {k[0]: s.get(k, 0) / ts - r.get(k, 0) / tr for k in set(s) | set(r)}
    ranked = sorted(gap.items(), key=lambda kv: kv[1])
    out["overused"] = [[w, round(g, 5)] for w, g in ranked[::-1][:15] if g > 0]
    out["underused"] = [[w, round(g, 5)] for w, g in ranked[:15] if g < 0]
    return out


def label_frequencies(synthetic: Sequence[str] | None, reference: Sequence[str] | None,
                      target: dict[str, float] | None) -> dict[str, Any]:
    """Share of each label on each side, and total variation distances (0 = same mix, 1 =
    disjoint) of the synthetic mix from the target mix and from the reference's mix."""
    sides = {"synthetic": synthetic, "reference": reference}
    shares: dict[str, dict[str, float]] = {}
    for name, labels in sides.items():
        if labels:
            counts = Counter(labels)
            shares[name] = {k: v / len(labels) for k, v in counts.items()}
    if target:
        total = sum(target.values()) or 1.0
        shares["target"] = {k: w / total for k, w in target.items()}
    names = sorted({k for side in shares.values() for k in side})
    out: dict[str, Any] = {"labels": {k: {side: round(shares[side].get(k, 0.0), 5)
                                          for side in shares} for k in names}}
    for other in ("target", "reference"):
        if "synthetic" in shares and other in shares:
            out[f"tvd_{other}"] = _tvd(shares["synthetic"], shares[other])
    if "synthetic" in shares and "reference" in shares:
        out["missing_in_synthetic"] = sorted(set(shares["reference"]) - set(shares["synthetic"]))
    return out


def _tvd(a: dict[str, float], b: dict[str, float]) -> float:
    return 0.5 * sum(abs(a.get(k, 0.0) - b.get(k, 0.0)) for k in set(a) | set(b))


def sample_rows(n: int, limit: int, seed: int) -> np.ndarray:
    """Indices of a seeded sample of at most `limit` of `n` rows, sorted."""
    if n <= limit:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, limit, replace=False))


def mmd(x: np.ndarray, y: np.ndarray, permutations: int = PERMUTATIONS,
        seed: int = 0) -> dict[str, Any]:
    """Maximum mean discrepancy between two sets of embeddings, with a Gaussian kernel.

    MMD² is the biased (V-statistic) estimate, so identical sets give exactly 0; the kernel
    bandwidth is the median pairwise distance of the pooled rows (the median heuristic). The
    p-value is the share of label permutations whose MMD² reaches the observed one: small means
    the two sets are distinguishable.
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    x = x[sample_rows(len(x), MAX_KERNEL_ROWS, seed)]
    y = y[sample_rows(len(y), MAX_KERNEL_ROWS, seed + 1)]
    pooled = np.vstack([x, y])
    sq = np.sum(pooled ** 2, axis=1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2 * pooled @ pooled.T, 0.0)
    off = d2[~np.eye(len(pooled), dtype=bool)]
    median = float(np.median(off)) if off.size else 0.0
    bandwidth = math.sqrt(median / 2) if median > 0 else 1.0
    kernel = np.exp(-d2 / (2 * bandwidth ** 2))
    weights = np.concatenate([np.full(len(x), 1 / len(x)), np.full(len(y), -1 / len(y))])
    observed = float(max(weights @ kernel @ weights, 0.0))
    rng = np.random.default_rng(seed)
    reached = 0
    for _ in range(permutations):
        w = rng.permutation(weights)
        reached += float(w @ kernel @ w) >= observed - 1e-12
    return {"mmd2": observed, "mmd": math.sqrt(observed), "bandwidth": bandwidth,
            "p_value": (reached + 1) / (permutations + 1), "permutations": permutations,
            "rows": [len(x), len(y)]}


def map_2d(x: np.ndarray, y: np.ndarray, seed: int = 0) -> dict[str, Any]:
    """A 2-D PCA projection of both sets' embeddings (fitted on both), for the scatter plot."""
    from sklearn.decomposition import PCA

    x = np.asarray(x)[sample_rows(len(x), MAX_KERNEL_ROWS, seed)]
    y = np.asarray(y)[sample_rows(len(y), MAX_KERNEL_ROWS, seed + 1)]
    pooled = np.vstack([x, y])
    if len(pooled) < 3:
        return {"method": "pca", "synthetic": [], "reference": [], "explained": [0.0, 0.0]}
    pca = PCA(n_components=2, random_state=seed).fit(pooled)
    points = pca.transform(pooled)
    return {"method": "pca", "synthetic": points[:len(x)].round(4).tolist(),
            "reference": points[len(x):].round(4).tolist(),
            "explained": [round(float(v), 4) for v in pca.explained_variance_ratio_]}
