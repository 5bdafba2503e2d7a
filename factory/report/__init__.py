"""`factory report`: is a synthetic dataset close to the real data, and does it help a student?

    build_report(ReportOptions(folder=Path("runs/banking-intents"),
                               reference=Path("real.csv"), test=Path("test.csv")))

reads the folder's accepted rows, the real reference (and test) data and the task's seeds, and
writes into `folder/report/`:

    report.html       one self-contained page: verdict, then distribution, diversity, privacy,
                      downstream and spot-check sections, plots embedded as PNG data URIs
    report.json       every number in the page; `headline` holds the few a dataset card shows
    spot_check.csv    a seeded sample of rows with an empty `verdict` column for a reviewer

One module per section: inputs, distribution, privacy, downstream, plots, html. Every input is
read and checked before anything is written.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from factory.errors import FactoryError
from factory.report import distribution, downstream, inputs, plots, privacy
from factory.report.inputs import TextSet

log = logging.getLogger(__name__)

SPOT_CHECK_ROWS = 150


@dataclass
class ReportOptions:
    folder: Path
    reference: Path
    test: Path | None = None
    text_field: str | None = None
    label_field: str | None = None
    seeds: Path | None = None
    spot_check: int = SPOT_CHECK_ROWS
    seed: int = 0
    command: str = ""


@dataclass
class Inputs:
    synthetic: TextSet
    reference: TextSet
    test: TextSet | None
    seeds: TextSet | None
    target: dict[str, float] | None
    text_field: str
    label_field: str | None


def build_report(options: ReportOptions, embedder: Any | None = None,
                 say: Callable[[str], None] = lambda message: None) -> dict[str, Any]:
    """Measure, then write report.html, report.json and spot_check.csv; returns the JSON."""
    say("Reading the synthetic, reference and test data")
    data = load_inputs(options)
    say("Embedding every text (all-MiniLM-L6-v2)")
    emb = embed_all(data, embedder)
    report: dict[str, Any] = {"inputs": describe_inputs(data, options)}
    say("Comparing distributions")
    report["distribution"] = measure_distribution(data, emb, options.seed)
    say("Measuring diversity")
    report["diversity"] = measure_diversity(data, emb, options.seed)
    say("Finding each synthetic row's nearest real row")
    report["privacy"] = measure_privacy(data, emb)
    say("Training the student three ways" if data.test else "No --test: skipping downstream")
    report["downstream"] = measure_downstream(data, emb, options.seed)
    report["spot_check"] = spot_check(data, report["privacy"], options.spot_check, options.seed)
    report["verdict"] = verdict(report)
    report["headline"] = headline(report)
    say("Drawing the plots and writing the report")
    write_report(options.folder / "report", report, data)
    return report


# -- inputs ----------------------------------------------------------------------------------


def load_inputs(options: ReportOptions) -> Inputs:
    manifest = inputs.read_manifest(options.folder) if options.folder.is_dir() else None
    cols = inputs.columns(manifest, options.text_field, options.label_field, options.seeds)
    synthetic = inputs.read_synthetic(options.folder, manifest, cols)
    reference = inputs.read_set("reference", options.reference, cols.text, cols.label)
    test = (inputs.read_set("test", options.test, cols.text, cols.label)
            if options.test else None)
    seeds = inputs.seed_set(cols.task, cols.text, cols.seeds_file)
    target = None
    if cols.task is not None and cols.label in cols.task.config.labels:
        target = cols.task.config.label_weights(cols.label)
    return Inputs(synthetic, reference, test, seeds, target, cols.text, cols.label)


def describe_inputs(data: Inputs, options: ReportOptions) -> dict[str, Any]:
    sets = [data.synthetic, data.reference, data.test, data.seeds]
    test_overlap = None
    if data.test is not None:
        known = {privacy.normalise(t) for t in data.reference.texts}
        test_overlap = sum(privacy.normalise(t) in known for t in data.test.texts)
    return {
        "folder": str(options.folder), "text_field": data.text_field,
        "label_field": data.label_field,
        "sets": {s.name: {"path": s.source, "rows": len(s)} for s in sets if s is not None},
        "test_rows_also_in_reference": test_overlap,
        "command": options.command,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "seed": options.seed,
    }


def embed_all(data: Inputs, embedder: Any | None) -> dict[str, np.ndarray]:
    if embedder is None:
        from filters.diversity import MiniLMEmbedder

        # one torch thread: on a shared CPU (a teacher, other jobs) the default pool is far
        # slower (filters/diversity.py)
        embedder = MiniLMEmbedder(threads=1)
    sets = [s for s in (data.synthetic, data.reference, data.test, data.seeds) if s is not None]
    texts = [t for s in sets for t in s.texts]
    try:
        vectors = embedder.encode(texts)
    except ImportError as exc:
        raise FactoryError(str(exc), field="embeddings",
                           hint="install the project's dependencies") from None
    out, start = {}, 0
    for s in sets:
        out[s.name] = vectors[start:start + len(s)]
        start += len(s)
    return out


# -- sections --------------------------------------------------------------------------------


def measure_distribution(data: Inputs, emb: dict[str, np.ndarray], seed: int) -> dict[str, Any]:
    synth, real = data.synthetic, data.reference
    return {
        "lengths": distribution.length_stats(synth.texts, real.texts),
        "ngrams": distribution.ngram_divergence(synth.texts, real.texts),
        "labels": distribution.label_frequencies(synth.labels, real.labels, data.target),
        "mmd": distribution.mmd(emb["synthetic"], emb["reference"], seed=seed),
        "map": distribution.map_2d(emb["synthetic"], emb["reference"], seed=seed),
    }


def measure_diversity(data: Inputs, emb: dict[str, np.ndarray], seed: int) -> dict[str, Any]:
    """The filters' diversity metrics on the synthetic rows and on as many real rows (a seeded
    sample), since distinct-n and the Vendi score grow with the number of rows."""
    from filters.diversity import diversity_report

    n = min(len(data.synthetic), len(data.reference))
    out: dict[str, Any] = {"rows": n}
    for s in (data.synthetic, data.reference):
        rows = distribution.sample_rows(len(s), n, seed)
        texts = [s.texts[i] for i in rows]
        out[s.name] = {k: float(v) for k, v in
                       diversity_report(texts, emb[s.name][rows], seed=seed).items()}
    return out


def measure_privacy(data: Inputs, emb: dict[str, np.ndarray]) -> dict[str, Any]:
    synth = data.synthetic
    out: dict[str, Any] = {"threshold": privacy.NEAR_COPY}
    for real in (data.reference, data.seeds):
        if real is not None:
            out[real.name] = privacy.against(real.name, synth.texts, synth.ids, emb["synthetic"],
                                             real.texts, real.ids, emb[real.name])
    if data.seeds is None:
        out["seeds_note"] = ("the folder's task seeds could not be read: pass --seeds to "
                             "compare against them")
    return out


def measure_downstream(data: Inputs, emb: dict[str, np.ndarray], seed: int) -> dict[str, Any]:
    if data.test is None:
        return {"skipped": "no --test given: the downstream comparison needs a held-out real "
                           "test set"}
    if not (data.test.labels and data.reference.labels and data.synthetic.labels):
        return {"skipped": "no label column: the downstream comparison needs labels"}
    synth, real = data.synthetic, data.reference
    train = {
        "real": (emb["reference"], real.labels),
        "synthetic": (emb["synthetic"], synth.labels),
        "real+synthetic": (np.vstack([emb["reference"], emb["synthetic"]]),
                           real.labels + synth.labels),
    }
    return downstream.evaluate(train, emb["test"], data.test.labels, seed=seed)


def spot_check(data: Inputs, priv: dict[str, Any], size: int, seed: int) -> dict[str, Any]:
    synth = data.synthetic
    rows = sorted(random.Random(seed).sample(range(len(synth)), min(size, len(synth))))
    nearest = priv["reference"]["nearest"]
    return {"rows": [{"row": i, "id": synth.ids[i], "text": synth.texts[i],
                      "label": synth.labels[i] if synth.labels else "",
                      "nearest_real_similarity": nearest[i], "verdict": ""} for i in rows],
            "sampled": len(rows), "of": len(synth), "seed": seed}


# -- verdict and headline --------------------------------------------------------------------


def verdict(report: dict[str, Any]) -> dict[str, Any]:
    """A plain-language reading of the numbers: worth it, not worth it, inconclusive."""
    notes = []
    down = report["downstream"]
    diff = down.get("differences", {}).get("real+synthetic - real", {}).get("macro_f1")
    if diff is None:
        call = "not measured"
        notes.append("No downstream test was run (give --test REAL_TEST): only the distance "
                     "from the real data was measured, which cannot show the data helps.")
    else:
        real = down["settings"]["real"]["macro_f1"]
        both = down["settings"]["real+synthetic"]["macro_f1"]
        low, high = diff["ci"]
        change = (f"macro-F1 {real:.3f} → {both:.3f} ({diff['delta']:+.3f}, 95% CI "
                  f"{low:+.3f} to {high:+.3f})")
        if low > 0:
            call = "worth it"
            notes.append(f"Adding the synthetic rows to the real ones improved the student: "
                         f"{change}.")
        elif high < 0:
            call = "not worth it"
            notes.append(f"Adding the synthetic rows made the student worse: {change}.")
        else:
            call = "inconclusive"
            notes.append(f"Adding the synthetic rows made no difference the test set can "
                         f"resolve: {change}.")
    mmd = report["distribution"]["mmd"]
    if mmd["p_value"] < 0.05:
        notes.append(f"The synthetic texts are distinguishable from the real ones in embedding "
                     f"space (MMD² {mmd['mmd2']:.4f}, permutation p = {mmd['p_value']:.3f}).")
    else:
        notes.append(f"The synthetic and real texts are not distinguishable in embedding space "
                     f"at this sample size (MMD² {mmd['mmd2']:.4f}, p = {mmd['p_value']:.3f}).")
    near = report["privacy"]["reference"]["near_copies"]
    seeds = report["privacy"].get("seeds", {}).get("near_copies", 0)
    if near or seeds:
        notes.append(f"{near} synthetic rows nearly copy a reference row and {seeds} a seed "
                     f"example (cosine ≥ {privacy.NEAR_COPY}); review them before publishing.")
    else:
        notes.append("No synthetic row nearly copies a real one.")
    return {"call": call, "notes": notes}


def headline(report: dict[str, Any]) -> dict[str, float | int | str]:
    """The flat summary a dataset card shows (name -> number or string)."""
    sets = report["inputs"]["sets"]
    dist, priv = report["distribution"], report["privacy"]
    out: dict[str, float | int | str] = {
        "verdict": report["verdict"]["call"],
        "synthetic_rows": sets["synthetic"]["rows"],
        "reference_rows": sets["reference"]["rows"],
        "mmd2": round(dist["mmd"]["mmd2"], 5),
        "mmd_p_value": round(dist["mmd"]["p_value"], 4),
        "js_unigram": round(dist["ngrams"]["unigram"], 4),
        "js_bigram": round(dist["ngrams"]["bigram"], 4),
        "length_wasserstein_words": round(dist["lengths"]["words"]["wasserstein"], 3),
        "near_copies_reference": priv["reference"]["near_copies"],
        "near_copy_threshold": priv["threshold"],
    }
    if "seeds" in priv:
        out["near_copies_seeds"] = priv["seeds"]["near_copies"]
    down = report["downstream"]
    if "settings" in down:
        out["test_rows"] = down["test_rows"]
        for name, key in (("real", "real"), ("synthetic", "synthetic"),
                          ("real+synthetic", "real_plus_synthetic")):
            s = down["settings"].get(name, {})
            for metric in ("accuracy", "macro_f1"):
                if metric in s:
                    out[f"{metric}_{key}"] = round(s[metric], 4)
        diff = down["differences"].get("real+synthetic - real", {})
        for metric, d in diff.items():
            out[f"{metric}_delta"] = round(d["delta"], 4)
            out[f"{metric}_delta_ci_low"] = round(d["ci"][0], 4)
            out[f"{metric}_delta_ci_high"] = round(d["ci"][1], 4)
    else:
        out["downstream"] = "not measured"
    return out


# -- writing ---------------------------------------------------------------------------------


def write_report(out: Path, report: dict[str, Any], data: Inputs) -> None:
    from factory.output import _write_text
    from factory.report.html import render

    figures = draw(report, data)
    page = render(report, figures)
    _write_text(out / "spot_check.csv", spot_check_csv(report["spot_check"]["rows"]))
    _write_text(out / "report.json", json.dumps(_rounded(report), indent=1,
                                                ensure_ascii=False) + "\n")
    _write_text(out / "report.html", page)


def draw(report: dict[str, Any], data: Inputs) -> dict[str, str]:
    dist = report["distribution"]
    figures = {
        "lengths": plots.lengths([len(distribution.words(t)) for t in data.synthetic.texts],
                                 [len(distribution.words(t)) for t in data.reference.texts]),
        "map": plots.embedding_map(dist["map"]),
        "nearest": plots.nearest({k: report["privacy"][k]["nearest"] for k in
                                  ("reference", "seeds") if k in report["privacy"]},
                                 privacy.NEAR_COPY),
    }
    if dist["labels"]["labels"]:
        figures["labels"] = plots.labels(dist["labels"]["labels"])
    if "settings" in report["downstream"]:
        figures["downstream"] = plots.downstream(report["downstream"]["settings"])
    return figures


def spot_check_csv(rows: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["row", "id", "label", "text",
                                                "nearest_real_similarity", "verdict", "note"])
    writer.writeheader()
    for row in rows:
        writer.writerow({**row, "note": ""})
    return buffer.getvalue()


def _rounded(obj: Any) -> Any:
    """Floats rounded to 6 digits and NaN as null, so the JSON is valid and readable."""
    if isinstance(obj, float):
        return None if obj != obj else round(obj, 6)
    if isinstance(obj, dict):
        return {k: _rounded(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_rounded(v) for v in obj]
    return obj
