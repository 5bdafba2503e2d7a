"""Make a planted-duplicates dataset from real short texts, to measure a dedup filter.

Contract
--------
``plant(texts, n_originals, n_near, n_exact, seed)`` returns a shuffled list of ``Row``:

* ``n_originals`` distinct originals drawn from ``texts``. "Distinct" is decided by a measure
  independent of the filter under test: two texts whose word *sets* (after
  ``filters.minhash.normalize``) have Jaccard >= ``max_word_jaccard`` (default 0.5) are never
  both picked, so the natural rewordings a real corpus contains ("How do I top up my card?" /
  "How can I top up my card?") do not count as misses or false alarms: only planting is measured.
* ``n_near`` near copies (label ``"near"``), each of a different original with at least
  ``min_words`` words: one or two light word edits (swap two neighbours, insert a filler word,
  delete a word, typo a word by swapping/dropping/doubling a letter), plus random
  case/punctuation/whitespace noise. Its normalised text always differs from the original's.
* ``n_exact`` exact copies (label ``"exact"``) of other originals: only case, punctuation and
  whitespace changed, so that ``normalize(copy) == normalize(original)``.
* Every copy comes after its original in the list (``source`` is the original's id), so a
  first-wins filter should flag exactly the copies.

Run ``python scripts/plant_duplicates.py OUT.jsonl`` to write the BANKING77 version as JSONL.
"""

from __future__ import annotations

import csv
import json
import random
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from filters.minhash import normalize  # noqa: E402

BANKING77 = REPO.parent / "shared" / "data" / "banking77" / "train.csv"
FILLERS = ("please", "just", "really", "actually", "now", "still", "also", "again", "so")
PUNCT_ENDINGS = ("", "?", "!", ".", "??", "...")


@dataclass(frozen=True)
class Row:
    id: str
    text: str
    label: str  # "original", "near" or "exact"
    source: str = ""  # id of the original a copy was made from


def load_texts(path: Path = BANKING77, column: str = "text") -> list[str]:
    """The ``column`` of a CSV file, in file order."""
    with path.open(newline="", encoding="utf-8") as handle:
        return [row[column] for row in csv.DictReader(handle)]


def pick_originals(texts: list[str], count: int, rng: random.Random,
                   max_word_jaccard: float = 0.5) -> list[str]:
    """``count`` texts, pairwise word-set Jaccard < ``max_word_jaccard`` (greedy, random order)."""
    order = list(dict.fromkeys(texts))
    rng.shuffle(order)
    chosen: list[str] = []
    chosen_sets: list[frozenset[str]] = []
    for text in order:
        words = frozenset(normalize(text).split())
        if words and all(_set_jaccard(words, other) < max_word_jaccard for other in chosen_sets):
            chosen.append(text)
            chosen_sets.append(words)
            if len(chosen) == count:
                return chosen
    raise ValueError(f"only {len(chosen)} distinct originals available, wanted {count}")


def _set_jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    return len(a & b) / len(a | b)


def exact_variant(text: str, rng: random.Random) -> str:
    """``text`` with case, punctuation and whitespace changed; ``normalize`` is unchanged."""
    words = text.split()
    style = rng.choice(("lower", "upper", "title", "word"))
    if style == "lower":
        words = [w.lower() for w in words]
    elif style == "upper":
        words = [w.upper() for w in words]
    elif style == "title":
        words = [w.capitalize() for w in words]
    else:
        i = rng.randrange(len(words))
        words[i] = words[i].swapcase()
    words[-1] = words[-1].rstrip("?!.") + rng.choice(PUNCT_ENDINGS)
    gap = rng.choice((" ", "  ", " \t", ", "))
    i = rng.randrange(len(words))
    out = " ".join(words[:i]) + (gap if i else "") + " ".join(words[i:])
    out = rng.choice(("", " ", "\n")) + out + rng.choice(("", " ", "\n"))
    return out if normalize(out) == normalize(text) else text.upper()


def _typo(word: str, rng: random.Random) -> str:
    i = rng.randrange(1, len(word) - 1)
    kind = rng.choice(("swap", "drop", "double"))
    if kind == "swap":
        return word[:i] + word[i + 1] + word[i] + word[i + 2:]
    if kind == "drop":
        return word[:i] + word[i + 1:]
    return word[:i] + word[i] + word[i:]


def _edit_once(words: list[str], rng: random.Random) -> list[str]:
    kind = rng.choice(("swap", "insert", "delete", "typo"))
    i = rng.randrange(len(words))
    if kind == "swap" and len(words) > 1:
        j = min(i + 1, len(words) - 1)
        i = j - 1
        return words[:i] + [words[j], words[i]] + words[j + 1:]
    if kind == "insert":
        return words[:i] + [rng.choice(FILLERS)] + words[i:]
    if kind == "delete" and len(words) > 3:
        return words[:i] + words[i + 1:]
    long_words = [k for k, w in enumerate(words) if len(w) >= 4 and w.isalpha()]
    if long_words:
        k = rng.choice(long_words)
        return words[:k] + [_typo(words[k], rng)] + words[k + 1:]
    return words[:i] + [rng.choice(FILLERS)] + words[i:]


def near_variant(text: str, rng: random.Random, max_edits: int = 2) -> str:
    """``text`` with 1..``max_edits`` light word edits and some case/punctuation noise."""
    for _ in range(100):
        words = text.split()
        for _ in range(rng.randint(1, max_edits)):
            words = _edit_once(words, rng)
        out = exact_variant(" ".join(words), rng) if rng.random() < 0.5 else " ".join(words)
        if normalize(out) != normalize(text):
            return out
    raise ValueError(f"could not edit {text!r}")


def plant(texts: list[str], n_originals: int = 1500, n_near: int = 300, n_exact: int = 100,
          seed: int = 0, min_words: int = 6, max_word_jaccard: float = 0.5) -> list[Row]:
    """The shuffled planted dataset described in the module docstring."""
    rng = random.Random(seed)
    originals = pick_originals(texts, n_originals, rng, max_word_jaccard)
    rows = [Row(f"o{i}", text, "original") for i, text in enumerate(originals)]
    eligible = [r for r in rows if len(normalize(r.text).split()) >= min_words]
    if len(eligible) < n_near + n_exact:
        raise ValueError(f"only {len(eligible)} originals have >= {min_words} words")
    sources = rng.sample(eligible, n_near + n_exact)
    copies = [Row(f"n{i}", near_variant(r.text, rng), "near", r.id)
              for i, r in enumerate(sources[:n_near])]
    copies += [Row(f"e{i}", exact_variant(r.text, rng), "exact", r.id)
               for i, r in enumerate(sources[n_near:])]
    return _shuffle_copies_last(rows + copies, rng)


def _shuffle_copies_last(rows: list[Row], rng: random.Random) -> list[Row]:
    """Shuffle, then swap any copy that precedes its original with that original."""
    rows = rows[:]
    rng.shuffle(rows)
    where = {row.id: i for i, row in enumerate(rows)}
    for i, row in enumerate(rows):
        j = where.get(row.source, -1)
        if row.source and j > i:
            rows[i], rows[j] = rows[j], rows[i]
            where[row.id], where[row.source] = j, i
    return rows


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: plant_duplicates.py OUT.jsonl", file=sys.stderr)
        return 2
    rows = plant(load_texts())
    with open(argv[0], "w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(asdict(row)) + "\n")
    print(f"wrote {len(rows)} rows to {argv[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
