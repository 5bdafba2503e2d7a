"""The validation report: its numbers on inputs whose answer is known, the downstream comparison
on a small real BANKING77 split, the page itself, and the command's errors."""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from factory.report import ReportOptions, build_report, distribution, downstream
from tests.conftest import run_cli

BANKING = Path(__file__).resolve().parents[2] / "shared" / "data" / "banking77" / "train.csv"
if not BANKING.is_file():
    BANKING = Path("/work/shared/data/banking77/train.csv")
INTENTS = ["card_arrival", "exchange_rate", "lost_or_stolen_card", "top_up_failed",
           "cash_withdrawal_charge"]


def banking_rows() -> dict[str, list[str]]:
    """Texts of the five test intents, in file order."""
    by_label: dict[str, list[str]] = defaultdict(list)
    with BANKING.open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if row["category"] in INTENTS:
                by_label[row["category"]].append(row["text"])
    return by_label


def write_csv(path: Path, rows: list[tuple[str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "category"])
        writer.writerows(rows)
    return path


@pytest.fixture(scope="module")
def split(tmp_path_factory) -> dict[str, Path]:
    """Disjoint parts per intent: seeds/reference (first 5), 'synthetic' (next 8, real rows
    standing in for a teacher's), test (last 12); plus a factory-like folder of the synthetic
    part whose manifest names the banking-intents task and its seed file."""
    root = tmp_path_factory.mktemp("report")
    rows = banking_rows()
    part = {name: [] for name in ("reference", "synthetic", "test")}
    for label, texts in rows.items():
        part["reference"] += [(t, label) for t in texts[:5]]
        part["synthetic"] += [(t, label) for t in texts[5:13]]
        part["test"] += [(t, label) for t in texts[-12:]]
    paths = {name: write_csv(root / f"{name}.csv", r) for name, r in part.items()}
    folder = root / "run"
    (folder / "data").mkdir(parents=True)
    table = [{"id": f"s{i}", "text": t, "category": c} for i, (t, c) in
             enumerate(part["synthetic"])]
    table.append({"id": "copy", "text": part["reference"][0][0], "category": INTENTS[0]})
    pq.write_table(pa.Table.from_pylist(table), folder / "data" / "train.parquet")
    manifest = {"task": "banking-intents", "files": {"train": "data/train.parquet"},
                "command": f"factory distill --task banking-intents --seeds {paths['reference']}"}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return {**paths, "folder": folder}


# -- numbers on crafted inputs ---------------------------------------------------------------


def test_identical_sets_have_zero_divergence_and_mmd():
    texts = ["my card has not arrived", "how do I top up", "what is the exchange rate today"]
    assert distribution.ngram_divergence(texts, list(texts))["unigram"] == 0.0
    assert distribution.ngram_divergence(texts, texts * 3)["bigram"] == pytest.approx(0.0)
    emb = np.random.default_rng(0).normal(size=(40, 8))
    result = distribution.mmd(emb, emb.copy())
    assert result["mmd2"] == pytest.approx(0.0, abs=1e-9) and result["p_value"] == 1.0
    lengths = distribution.length_stats(texts, texts)
    assert lengths["words"]["wasserstein"] == 0.0


def test_disjoint_vocabularies_diverge_and_shifted_embeddings_are_told_apart():
    a = ["alpha beta gamma", "beta gamma delta", "alpha delta"]
    b = ["one two three", "two three four", "one four"]
    assert distribution.ngram_divergence(a, b)["unigram"] == pytest.approx(1.0)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(60, 8))
    result = distribution.mmd(x, x + 3.0)
    assert result["mmd2"] > 0.5 and result["p_value"] < 0.02
    close = distribution.mmd(x[:30], x[30:])
    assert close["mmd2"] < result["mmd2"] / 10


def test_length_distance_and_label_shares():
    short, long = ["a b"] * 10, ["a b c d e"] * 10
    assert distribution.length_stats(short, long)["words"]["wasserstein"] == pytest.approx(3.0)
    labels = distribution.label_frequencies(["x", "x", "y", "y"], ["x"] * 4,
                                            {"x": 1.0, "y": 1.0})
    assert labels["tvd_target"] == pytest.approx(0.0)
    assert labels["tvd_reference"] == pytest.approx(0.5)
    assert labels["labels"]["y"] == {"synthetic": 0.5, "reference": 0.0, "target": 0.5}


def test_macro_f1_matches_scikit_learn():
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(2)
    truth, pred = rng.integers(0, 5, 200), rng.integers(0, 6, 200)
    expected = f1_score(truth, pred, labels=sorted(set(truth)), average="macro")
    assert downstream.macro_f1(truth, pred, 6) == pytest.approx(expected)


def test_downstream_with_a_label_missing_from_one_training_set():
    rng = np.random.default_rng(3)
    centres = rng.normal(size=(3, 16)) * 3
    def draw(labels):
        return np.stack([centres[i] + rng.normal(size=16) for i in labels]), [
            "abc"[i] for i in labels]
    x_real, y_real = draw([0, 1, 2] * 5)
    x_syn, y_syn = draw([0, 1] * 8)        # label c never synthesised
    x_one, y_one = draw([0] * 4)           # one label only
    x_test, y_test = draw([0, 1, 2] * 10)
    result = downstream.evaluate({"real": (x_real, y_real), "synthetic": (x_syn, y_syn),
                                  "one": (x_one, y_one), "empty": (x_one[:0], [])},
                                 x_test, y_test, resamples=200)
    s = result["settings"]
    assert s["real"]["accuracy"] > 0.9 and s["synthetic"]["unseen_test_labels"] == 1
    assert s["synthetic"]["accuracy"] == pytest.approx(2 / 3, abs=0.1)
    assert s["one"]["accuracy"] == pytest.approx(1 / 3) and "skipped" in s["empty"]
    low, high = s["real"]["macro_f1_ci"]
    assert low <= s["real"]["macro_f1"] <= high
    assert result["differences"]["synthetic - real"]["accuracy"]["ci"][1] < 0


# -- the whole report on a small real split --------------------------------------------------


class Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.ids: set[str] = set()
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs.get("src", ""))
        if "id" in attrs:
            self.ids.add(attrs["id"])
        assert not (tag in ("script", "link") or (tag == "img" and not
                    attrs.get("src", "").startswith("data:image/png;base64,")))

    def handle_data(self, data):
        self.text.append(data)


@pytest.fixture(scope="module")
def report(split) -> dict:
    return build_report(ReportOptions(folder=split["folder"], reference=split["reference"],
                                      test=split["test"], spot_check=20))


def test_report_numbers_on_a_real_split(report, split):
    assert report["inputs"]["text_field"] == "text"
    assert report["inputs"]["label_field"] == "category"
    down = report["downstream"]["settings"]
    assert set(down) == {"real", "synthetic", "real+synthetic"}
    assert down["real"]["train_rows"] == 25 and down["real+synthetic"]["train_rows"] == 66
    assert all(0.5 < s["accuracy"] <= 1.0 for s in down.values())
    diff = report["downstream"]["differences"]["real+synthetic - real"]["macro_f1"]
    assert diff["ci"][0] <= diff["delta"] <= diff["ci"][1]
    # the planted copy of a reference row (also a seed) is found on both sides
    for side in ("reference", "seeds"):
        assert report["privacy"][side]["exact_copies"] == 1
        assert report["privacy"][side]["listed"][0]["id"] == "copy"
    assert report["distribution"]["labels"]["missing_in_synthetic"] == []
    assert 0 < report["distribution"]["ngrams"]["unigram"] < 0.5


def test_html_json_and_spot_check_written(report, split):
    out = split["folder"] / "report"
    page = Page()
    page.feed((out / "report.html").read_text(encoding="utf-8"))
    assert len(page.images) == 5
    assert {"distribution", "diversity", "privacy", "downstream", "spot-check"} <= page.ids
    assert "Verdict:" in " ".join(page.text)
    saved = json.loads((out / "report.json").read_text())
    headline = saved["headline"]
    assert all(isinstance(v, (int, float, str)) for v in headline.values())
    for key in ("macro_f1_real", "macro_f1_real_plus_synthetic", "macro_f1_delta", "mmd2",
                "js_unigram", "near_copies_reference", "verdict"):
        assert key in headline
    with (out / "spot_check.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 20 and all(r["verdict"] == "" for r in rows)


def test_without_test_set_downstream_is_skipped(split, tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "train.csv").write_text(split["synthetic"].read_text())
    result = build_report(ReportOptions(folder=folder, reference=split["reference"],
                                        label_field="category"))
    assert "skipped" in result["downstream"] and result["verdict"]["call"] == "not measured"
    assert result["headline"]["downstream"] == "not measured"
    assert (folder / "report" / "report.html").is_file()


# -- the command -----------------------------------------------------------------------------


def test_cli_missing_file_and_missing_column_exit_2(split, tmp_path):
    missing = run_cli("report", str(split["folder"]), "--reference", str(tmp_path / "no.csv"))
    assert missing.returncode == 2
    lines = missing.stderr.strip().splitlines()
    assert len(lines) == 1 and "no.csv" in lines[0]
    other = tmp_path / "other.csv"
    other.write_text("text,intent\nmy card is lost,lost_or_stolen_card\n")
    column = run_cli("report", str(split["folder"]), "--reference", str(other))
    assert column.returncode == 2
    line = column.stderr.strip()
    assert "other.csv" in line and "--label-field" in line and "'category'" in line
    assert "\n" not in line
    assert not (tmp_path / "report").exists()


def test_many_labels_plot_as_one_point_per_label():
    from factory.report import plots

    table = {f"intent_{i}": {"synthetic": (i % 3) / 60, "reference": 1 / 30} for i in range(30)}
    assert plots.labels(table).startswith("data:image/png;base64,")
