"""Tests of filters.minhash: normalisation, signature properties, accuracy, datasketch interop."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from filters.minhash import (  # noqa: E402
    EMPTY_VALUE,
    MinHasher,
    jaccard,
    normalize,
    to_datasketch,
)


def _load_bench() -> ModuleType:
    path = REPO_ROOT / "scripts" / "bench_minhash.py"
    spec = importlib.util.spec_from_file_location("bench_minhash", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bench = _load_bench()

# Texts that exercise the normalisation paths: ASCII, Unicode letters and whitespace, final
# sigma, underscores, control characters, NUL, tabs/newlines, punctuation-only, empty.
TRICKY = [
    "Hello, World! This is   a test; of the normaliser.",
    "Ça va?\u00a0Très bien\u2026 merci\u2003beaucoup, MONSIEUR.",
    "ΟΔΟΣ ΚΑΙ ΣΟΦΙΑ σοφός λόγος εδώ",
    "snake_case and kebab-case\tand\nnew\x1clines\x00inside",
    "!!! ??? ...",
    "",
    "   ",
    "two words",
    "日本語 の テキスト も 扱える はず です",
]


def _corpus(count: int, seed: int = 3) -> list[str]:
    return bench.make_corpus(count, seed=seed)


def _digest(sig: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(sig).tobytes()).hexdigest()


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Hello,   World!", "hello world"),
        ("  don't\tstop\n", "dont stop"),
        ("snake_case-word e.g. 3.14", "snakecaseword eg 314"),
        ("Ça va?\u00a0Très bien\u2026", "ça va très bien"),
        ("", ""),
        ("!!! --- ???", ""),
        ("A\x00B\x1cC", "ab c"),
    ],
)
def test_normalize(raw: str, expected: str) -> None:
    assert normalize(raw) == expected


def test_shape_dtype_and_determinism() -> None:
    texts = _corpus(20)
    sig = MinHasher(num_perm=64).signatures(texts)
    assert sig.shape == (20, 64) and sig.dtype == np.uint32
    assert np.array_equal(sig, MinHasher(num_perm=64).signatures(texts))
    assert not np.array_equal(sig, MinHasher(num_perm=64, seed=2).signatures(texts))
    assert MinHasher().signatures([]).shape == (0, 128)


def test_identical_and_equivalent_texts() -> None:
    text = _corpus(1)[0]
    variant = "  " + text.upper().replace(" ", " ,\t") + "!!"
    sig = MinHasher().signatures([text, text, variant])
    assert np.array_equal(sig[0], sig[1]) and np.array_equal(sig[0], sig[2])
    assert jaccard(sig[0], sig[2]) == 1.0


def test_fast_path_agrees_with_normalize() -> None:
    """The whole-batch normalisation must give the same words as normalize() per text."""
    hasher = MinHasher()
    raw = hasher.signatures(TRICKY)
    assert np.array_equal(raw, hasher.signatures([normalize(t) for t in TRICKY]))
    ascii_alone = hasher.signatures(TRICKY[:1])  # an all-ASCII batch takes the bytes path
    assert np.array_equal(ascii_alone[0], raw[0])
    spaced = hasher.signatures(["a b c d e f", "a\u00a0b\u2003c\u3000d\te\nf", "a bc d e f"])
    assert np.array_equal(spaced[0], spaced[1])
    assert not np.array_equal(spaced[0], spaced[2])


def test_disjoint_texts_estimate_near_zero() -> None:
    words = bench.make_vocab(400, seed=11)
    a, b = " ".join(words[:200]), " ".join(words[200:])
    sig = MinHasher().signatures([a, b])
    assert jaccard(sig[0], sig[1]) < 0.05


@pytest.fixture(scope="module")
def pairs() -> list[tuple[str, str, float]]:
    return bench.make_pairs(200, seed=5)


def _estimates(hasher: MinHasher, pairs: list[tuple[str, str, float]]) -> np.ndarray:
    sig = hasher.signatures([t for p in pairs for t in p[:2]])
    return np.array([jaccard(sig[2 * i], sig[2 * i + 1]) for i in range(len(pairs))])


def test_estimation_error_against_true_jaccard(pairs: list[tuple[str, str, float]]) -> None:
    truth = np.array([p[2] for p in pairs])
    assert truth.min() < 0.05 and truth.max() > 0.95  # the pairs do span 0..1
    est = _estimates(MinHasher(), pairs)
    assert np.mean(np.abs(est - truth)) < 0.03
    assert abs(np.mean(est - truth)) < 0.01  # no systematic bias
    # More permutations must help (the estimate is the mean of num_perm indicators).
    assert np.mean(np.abs(_estimates(MinHasher(num_perm=512), pairs) - truth)) < 0.02


def test_error_not_worse_than_datasketch(pairs: list[tuple[str, str, float]]) -> None:
    truth = np.array([p[2] for p in pairs])
    ds = bench.ds_bulk([t for p in pairs for t in p[:2]])
    ds_est = np.array([ds[2 * i].jaccard(ds[2 * i + 1]) for i in range(len(pairs))])
    ours = _estimates(MinHasher(), pairs)
    assert np.mean(np.abs(ours - truth)) <= np.mean(np.abs(ds_est - truth)) + 0.005


@pytest.mark.parametrize("kind", ["word", "char"])
def test_independent_of_batching(kind: str) -> None:
    texts = _corpus(60) + TRICKY + ["word " * 3000] + _corpus(5, seed=4)
    reference = MinHasher(kind=kind).signatures(texts)
    small = MinHasher(kind=kind, batch_size=7, max_batch_chars=900, block_cells=4000)
    assert np.array_equal(reference, small.signatures(texts))
    singles = np.stack([MinHasher(kind=kind).signature(t) for t in texts[-20:]])
    assert np.array_equal(reference[-20:], singles)
    streamed = np.concatenate(list(MinHasher(kind=kind, batch_size=16).iter_signatures(texts)))
    assert np.array_equal(reference, streamed)


def test_independent_of_pythonhashseed() -> None:
    texts = _corpus(30) + TRICKY
    here = {kind: _digest(MinHasher(kind=kind).signatures(texts)) for kind in ("word", "char")}
    script = (
        "import sys, hashlib, json, numpy as np\n"
        f"sys.path.insert(0, {str(REPO_ROOT)!r})\n"
        "from filters.minhash import MinHasher\n"
        "texts = json.loads(sys.stdin.read())\n"
        "for kind in ('word', 'char'):\n"
        "    sig = MinHasher(kind=kind).signatures(texts)\n"
        "    print(hashlib.sha256(np.ascontiguousarray(sig).tobytes()).hexdigest())\n"
    )
    hashseed = "54321" if os.environ.get("PYTHONHASHSEED") == "12345" else "12345"
    done = subprocess.run(
        [sys.executable, "-c", script],
        input=json.dumps(texts),
        env={**os.environ, "PYTHONHASHSEED": hashseed},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert done.stdout.split() == [here["word"], here["char"]]


def test_short_and_empty_documents() -> None:
    hasher = MinHasher()
    sig = hasher.signatures(["", "  ", "?!", "Two words", "two  WORDS.", "words two",
                             "one two three four", "one two three four five"])
    assert (sig[0:3] == EMPTY_VALUE).all()
    assert (sig[3] != EMPTY_VALUE).all()
    assert np.array_equal(sig[3], sig[4])
    assert jaccard(sig[3], sig[5]) < 0.1  # a short text is one ordered shingle
    assert jaccard(sig[6], sig[7]) < 0.1  # 4 words: whole-text shingle; 5 words: one 5-gram
    assert jaccard(sig[0], sig[1]) == 1.0 and jaccard(sig[0], sig[3]) == 0.0


def _char_set(text: str, n: int) -> set[str]:
    norm = normalize(text)
    if len(norm) < n:
        return {norm} if norm else set()
    return {norm[i : i + n] for i in range(len(norm) - n + 1)}


def test_char_shingles() -> None:
    hasher = MinHasher(kind="char", n=5, num_perm=256)
    texts = [
        "The quick brown fox jumps over the lazy dog near the river bank.",
        "The quick brown fox jumped over a lazy dog near the river bank!",
        "Completely unrelated sentence about compilers and type systems.",
        "Ab",
        "AB!",
        "Über naïve café crème brûlée déjà vu",
        "uber naive cafe creme brulee deja vu",
    ]
    sig = hasher.signatures(texts)
    truth = len(_char_set(texts[0], 5) & _char_set(texts[1], 5)) / len(
        _char_set(texts[0], 5) | _char_set(texts[1], 5)
    )
    assert abs(jaccard(sig[0], sig[1]) - truth) < 0.12
    assert jaccard(sig[0], sig[2]) < 0.1
    assert np.array_equal(sig[3], sig[4]) and (sig[3] != EMPTY_VALUE).all()
    assert jaccard(sig[5], sig[6]) < 0.5  # accents are kept, not folded
    word_sig = MinHasher(kind="word", n=5, num_perm=256).signatures(texts[:2])
    assert not np.array_equal(word_sig, sig[:2])


def test_datasketch_lsh_interop() -> None:
    from datasketch import MinHashLSH

    corpus = _corpus(50, seed=21)
    words = normalize(corpus[0]).split()
    words[40] = "zzzchanged"  # one substitution: true 5-gram Jaccard ~0.9
    near_dup = " ".join(words)
    unrelated = _corpus(1, seed=99)[0]
    sig = MinHasher(seed=1).signatures(corpus + [near_dup, unrelated])
    lsh = MinHashLSH(threshold=0.5, num_perm=128)
    for i in range(len(corpus)):
        lsh.insert(f"doc{i}", to_datasketch(sig[i], seed=1))
    assert "doc0" in lsh.query(to_datasketch(sig[50], seed=1))
    assert lsh.query(to_datasketch(sig[51], seed=1)) == []
    sketch = to_datasketch(sig[0], seed=1)
    assert sketch.jaccard(to_datasketch(sig[50], seed=1)) == jaccard(sig[0], sig[50])
    assert jaccard(sig[0], sig[50]) > 0.7


def test_jaccard_rejects_mismatched_shapes() -> None:
    with pytest.raises(ValueError):
        jaccard(np.zeros(4, np.uint32), np.zeros(5, np.uint32))
    with pytest.raises(ValueError):
        MinHasher(kind="sentence")


def test_benchmark_small_run() -> None:
    res = bench.run_benchmark(docs=200, update_docs=20, pairs=30, repeats=1)
    for key in ("ours", "bulk", "update", "ours_per_update", "ours_per_bulk"):
        assert res[key] > 0
    assert res["err_ours"] < 0.06 and res["err_datasketch"] < 0.06
    assert "PASS" in bench.report(res) or "FAIL" in bench.report(res)
