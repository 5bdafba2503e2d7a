"""How close each synthetic row comes to a real one: the nearest real row by cosine similarity of
sentence embeddings, against the reference set and the task's seed examples.

A synthetic row whose nearest real row has similarity >= NEAR_COPY is a near-copy: the teacher
repeated, or barely reworded, something real. Exact copies (equal after lower-casing and
collapsing whitespace) are counted apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

# all-MiniLM-L6-v2 cosine, measured on banking messages: trivial edits (case, punctuation, a word
# added) 0.96-0.99; close rewordings ("My card has not arrived yet." / "My card still hasn't
# arrived.") 0.82-0.92; looser paraphrases 0.6-0.7. 0.95 flags copies and trivial edits, not
# paraphrases.
NEAR_COPY = 0.95
LISTED = 50
_BLOCK = 2048


def nearest(queries: np.ndarray, pool: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each query row, the highest cosine similarity to a pool row and that row's index
    (rows are unit vectors)."""
    best = np.full(len(queries), -1.0, dtype=np.float32)
    where = np.zeros(len(queries), dtype=np.int64)
    for start in range(0, len(queries), _BLOCK):
        sims = queries[start:start + _BLOCK] @ pool.T
        where[start:start + _BLOCK] = sims.argmax(axis=1)
        best[start:start + _BLOCK] = sims.max(axis=1)
    return np.clip(best, -1.0, 1.0), where


def normalise(text: str) -> str:
    return " ".join(text.lower().split())


def against(name: str, texts: Sequence[str], ids: Sequence[str], emb: np.ndarray,
            real_texts: Sequence[str], real_ids: Sequence[str], real_emb: np.ndarray,
            threshold: float = NEAR_COPY) -> dict[str, Any]:
    """Nearest-real-row similarities of every synthetic row against one real set."""
    sims, where = nearest(emb, real_emb)
    exact_pool = set(normalise(t) for t in real_texts)
    exact = [normalise(t) in exact_pool for t in texts]
    near = np.flatnonzero(sims >= threshold)
    order = near[np.argsort(-sims[near], kind="stable")]
    listed = [{"id": ids[i], "text": texts[i], "similarity": round(float(sims[i]), 4),
               "real_id": real_ids[where[i]], "real_text": real_texts[where[i]],
               "exact": bool(exact[i])} for i in order[:LISTED]]
    return {
        "against": name, "rows": len(real_texts), "threshold": threshold,
        "near_copies": int(len(near)), "exact_copies": int(sum(exact)),
        "similarity": {"mean": float(sims.mean()), "median": float(np.median(sims)),
                       "p90": float(np.percentile(sims, 90)), "max": float(sims.max())},
        "listed": listed,
        "nearest": sims.round(4).tolist(),
    }
