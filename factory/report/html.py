"""The report page: one self-contained HTML file (inline CSS, plots as data URIs, no scripts).

`render(report, figures)` reads only the report's numbers and the figures' data URIs; every
number it shows is in report.json.
"""

from __future__ import annotations

from html import escape
from typing import Any

CSS = """
body{font:15px/1.5 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;color:#222;max-width:980px;
margin:2em auto;padding:0 1.2em}
h1{font-size:1.6em;margin-bottom:.2em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;
margin-top:2em}h3{margin-bottom:.3em}
.muted{color:#666;font-size:.9em}
.verdict{border-radius:8px;padding:1em 1.2em;margin:1em 0;border:1px solid}
.v-worth{background:#eaf7ee;border-color:#5cb87a}.v-not{background:#fdecec;border-color:#d66}
.v-unsure{background:#fff7e0;border-color:#e0b040}.v-none{background:#eef2f7;border-color:#89a}
.verdict strong{font-size:1.25em}
table{border-collapse:collapse;margin:.6em 0;font-size:.92em}
th,td{border-bottom:1px solid #e4e4e4;padding:.25em .7em;text-align:left;vertical-align:top}
th{background:#f6f6f6}td.n{text-align:right;font-variant-numeric:tabular-nums}
img{max-width:100%;height:auto;display:block;margin:.6em 0}
details{margin:.6em 0}summary{cursor:pointer;color:#245}
.cards{display:flex;flex-wrap:wrap;gap:.6em;margin:.8em 0}
.card{border:1px solid #ddd;border-radius:6px;padding:.5em .8em;min-width:10em}
.card b{display:block;font-size:1.3em}
"""

_CLASS = {"worth it": "v-worth", "not worth it": "v-not", "inconclusive": "v-unsure"}


def render(report: dict[str, Any], figures: dict[str, str]) -> str:
    sections = [summary(report), distribution(report, figures), diversity(report),
                privacy(report, figures), downstream(report, figures), spot_check(report),
                about(report)]
    title = f"Validation report · {escape(report['inputs']['folder'])}"
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{title}</title><style>{CSS}</style></head><body>\n"
            + "\n".join(sections) + "\n</body></html>\n")


def _f(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return "nan" if value != value else f"{value:.{digits}f}"
    return escape(str(value))


def _table(header: list[str], rows: list[list[Any]], numeric_from: int = 1) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td class=\"n\">{_f(c)}</td>" if i >= numeric_from
                         else f"<td>{_f(c)}</td>" for i, c in enumerate(row)) + "</tr>"
        for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _img(figures: dict[str, str], name: str, alt: str) -> str:
    return f"<img src=\"{figures[name]}\" alt=\"{escape(alt)}\">" if name in figures else ""


def summary(report: dict[str, Any]) -> str:
    v, h = report["verdict"], report["headline"]
    sets = report["inputs"]["sets"]
    css = _CLASS.get(v["call"], "v-none")
    notes = "".join(f"<li>{escape(n)}</li>" for n in v["notes"])
    cards = [("synthetic rows", h["synthetic_rows"]), ("reference rows", h["reference_rows"]),
             ("MMD²", h["mmd2"]), ("JS divergence (words)", h["js_unigram"]),
             ("near-copies of reference rows", h["near_copies_reference"])]
    if "near_copies_seeds" in h:
        cards.append(("near-copies of seeds", h["near_copies_seeds"]))
    if "macro_f1_delta" in h:
        cards[2:2] = [("macro-F1 real only", h["macro_f1_real"]),
                      ("macro-F1 real + synthetic", h["macro_f1_real_plus_synthetic"]),
                      ("difference", f"{h['macro_f1_delta']:+.3f}")]
    card_html = "".join(f"<div class=\"card\"><span class=\"muted\">{escape(k)}</span>"
                        f"<b>{_f(val)}</b></div>" for k, val in cards)
    inputs = ", ".join(f"{escape(k)}: {escape(s['path'])} ({s['rows']} rows)"
                       for k, s in sets.items())
    return (f"<h1>Is this synthetic data worth it?</h1>"
            f"<p class=\"muted\">{inputs}</p>"
            f"<div class=\"verdict {css}\"><strong>Verdict: {escape(v['call'])}</strong>"
            f"<ul>{notes}</ul></div><div class=\"cards\">{card_html}</div>"
            "<p class=\"muted\">How to read every number: docs/report.md. All numbers are in "
            "report.json next to this page.</p>")


def distribution(report: dict[str, Any], figures: dict[str, str]) -> str:
    d = report["distribution"]
    lengths = d["lengths"]
    length_rows = [[f"{unit}: {side}", s["mean"], s["median"], s["p10"], s["p90"]]
                   for unit in ("words", "chars") for side, s in
                   (("synthetic", lengths[unit]["synthetic"]),
                    ("reference", lengths[unit]["reference"]))]
    ng = d["ngrams"]
    over = ", ".join(escape(w) for w, _ in ng["overused"]) or "none"
    under = ", ".join(escape(w) for w, _ in ng["underused"]) or "none"
    mmd = d["mmd"]
    parts = [
        "<h2 id=\"distribution\">Distribution: how far from the real data</h2>",
        "<h3>Length</h3>", _img(figures, "lengths", "text length histograms"),
        _table(["", "mean", "median", "10th pct", "90th pct"], length_rows),
        f"<p>Wasserstein distance between the length distributions: "
        f"<b>{lengths['words']['wasserstein']:.2f} words</b> "
        f"({lengths['chars']['wasserstein']:.1f} characters). 0 means the same distribution; "
        "it is the average number of words a text must gain or lose to match.</p>",
        "<h3>Words</h3>",
        f"<p>Jensen–Shannon divergence of word frequencies (0 = same, 1 = no word in "
        f"common): unigrams <b>{ng['unigram']:.3f}</b>, bigrams <b>{ng['bigram']:.3f}</b>.</p>",
        f"<p>Words the synthetic data uses more than the real data: {over}.<br>"
        f"Words it uses less: {under}.</p>",
        labels_part(d["labels"], figures),
        "<h3>Embedding space</h3>",
        f"<p>MMD² (Gaussian kernel on all-MiniLM-L6-v2 embeddings, bandwidth "
        f"{mmd['bandwidth']:.3f}) <b>{mmd['mmd2']:.4f}</b> (MMD {mmd['mmd']:.3f}) on "
        f"{mmd['rows'][0]} synthetic and {mmd['rows'][1]} real rows; permutation p-value "
        f"<b>{mmd['p_value']:.3f}</b> ({mmd['permutations']} permutations). A small p-value "
        "means a classifier could tell the two sets apart.</p>",
        _img(figures, "map", "2-D map of real and synthetic embeddings"),
        f"<p class=\"muted\">PCA of the pooled embeddings; the two axes explain "
        f"{d['map']['explained'][0]:.0%} and {d['map']['explained'][1]:.0%} of the variance. "
        "Synthetic points bunched in a corner of the real cloud mean narrow coverage; points "
        "outside it mean off-distribution text.</p>",
    ]
    return "\n".join(parts)


def labels_part(labels: dict[str, Any], figures: dict[str, str]) -> str:
    table = labels["labels"]
    if not table:
        return ""
    sides = [s for s in ("synthetic", "target", "reference") if any(s in v for v in
                                                                     table.values())]
    rows = [[name, *[v.get(side) for side in sides]] for name, v in table.items()]
    tvd = []
    for key, what in (("tvd_target", "the target mix"), ("tvd_reference", "the reference mix")):
        if key in labels:
            tvd.append(f"from {what} <b>{labels[key]:.3f}</b>")
    missing = labels.get("missing_in_synthetic") or []
    miss = (f"<p>Labels in the reference but absent from the synthetic rows ({len(missing)}): "
            f"{escape(', '.join(missing))}.</p>" if missing else "")
    return ("<h3>Labels</h3>"
            + (f"<p>Total variation distance of the synthetic label mix {', '.join(tvd)} "
               "(0 = identical shares, 1 = disjoint).</p>" if tvd else "")
            + miss + _img(figures, "labels", "label frequencies")
            + "<details><summary>Label shares as a table</summary>"
            + _table(["label", *sides], rows) + "</details>")


def diversity(report: dict[str, Any]) -> str:
    d = report["diversity"]
    names = [("distinct_1", "distinct-1 (higher: more varied words)"),
             ("distinct_2", "distinct-2 (higher: more varied word pairs)"),
             ("self_bleu", "self-BLEU (lower: less repetitive)"),
             ("vendi", "Vendi score (effective number of distinct rows)"),
             ("nn_distance", "mean nearest-neighbour cosine distance (higher: more spread)")]
    rows = [[label, d["synthetic"].get(k), d["reference"].get(k)] for k, label in names]
    return ("<h2 id=\"diversity\">Diversity, side by side</h2>"
            f"<p>The filters' metrics on {d['rows']} rows of each side (the real side is a "
            "seeded sample of as many rows as the synthetic side, since these metrics depend "
            "on the number of rows).</p>" + _table(["metric", "synthetic", "real"], rows))


def privacy(report: dict[str, Any], figures: dict[str, str]) -> str:
    p = report["privacy"]
    parts = ["<h2 id=\"privacy\">Privacy: how close to real rows</h2>",
             f"<p>For every synthetic row, the cosine similarity of its embedding to the nearest "
             f"real row. A near-copy is a synthetic row at or above {p['threshold']}; an exact "
             "copy equals a real row after lower-casing and collapsing spaces.</p>"]
    rows = []
    for name in ("reference", "seeds"):
        if name in p:
            s = p[name]
            rows.append([f"{name} ({s['rows']} rows)", s["near_copies"], s["exact_copies"],
                         s["similarity"]["median"], s["similarity"]["p90"],
                         s["similarity"]["max"]])
    parts.append(_table(["against", "near-copies", "exact copies", "median similarity",
                         "90th pct", "max"], rows))
    if "seeds_note" in p:
        parts.append(f"<p class=\"muted\">{escape(p['seeds_note'])}</p>")
    parts.append(_img(figures, "nearest", "nearest real row similarity histogram"))
    for name in ("reference", "seeds"):
        listed = p.get(name, {}).get("listed", [])
        if listed:
            body = [[r["similarity"], r["text"], r["real_text"]] for r in listed]
            table = _table(["similarity", "synthetic row", f"nearest {name} row"], body,
                           numeric_from=3)
            parts.append(f"<details open><summary>Near-copies of {name} rows "
                         f"({p[name]['near_copies']}, up to {len(listed)} listed)</summary>"
                         f"{table}</details>")
    return "\n".join(parts)


def downstream(report: dict[str, Any], figures: dict[str, str]) -> str:
    d = report["downstream"]
    head = "<h2 id=\"downstream\">Downstream: does it help a student?</h2>"
    if "skipped" in d:
        return head + f"<p><b>Not measured:</b> {escape(d['skipped'])}.</p>"
    rows = []
    for name, s in d["settings"].items():
        if "skipped" in s:
            rows.append([name, s["skipped"], None, None, None, None])
            continue
        rows.append([name, s["train_rows"], s["accuracy"],
                     f"{s['accuracy_ci'][0]:.3f}–{s['accuracy_ci'][1]:.3f}", s["macro_f1"],
                     f"{s['macro_f1_ci'][0]:.3f}–{s['macro_f1_ci'][1]:.3f}"])
    diffs = [[name, m.replace("_", "-"), v["delta"], f"{v['ci'][0]:+.3f} to {v['ci'][1]:+.3f}"]
             for name, metrics in d["differences"].items() for m, v in metrics.items()]
    return "\n".join([
        head,
        f"<p>Student: {escape(d['student'])}, trained three ways and scored on the real test "
        f"set ({d['test_rows']} rows, {d['test_labels']} labels). Intervals: 95% bootstrap "
        f"over the test rows ({d['resamples']} resamples); differences are paired.</p>",
        _table(["trained on", "rows", "accuracy", "95% CI", "macro-F1", "95% CI"], rows),
        _img(figures, "downstream", "downstream scores with confidence intervals"),
        "<h3>Differences</h3>",
        _table(["comparison", "metric", "difference", "95% CI"], diffs, numeric_from=2),
        "<p class=\"muted\">An interval that excludes 0 is a difference the test set "
        "resolves; one that straddles 0 is not.</p>",
    ])


def spot_check(report: dict[str, Any]) -> str:
    s = report["spot_check"]
    rows = [[r["row"], r["label"], r["text"], r["nearest_real_similarity"]] for r in s["rows"]]
    return ("<h2 id=\"spot-check\">Spot check</h2>"
            f"<p>{s['sampled']} of {s['of']} synthetic rows, drawn at random (seed {s['seed']}). "
            "The same rows are in <code>spot_check.csv</code> with an empty "
            "<code>verdict</code> column: read each one and mark it ok or bad.</p>"
            "<details open><summary>The rows</summary>"
            + _table(["row", "label", "text", "nearest real similarity"], rows, numeric_from=3)
            + "</details>")


def about(report: dict[str, Any]) -> str:
    i = report["inputs"]
    overlap = i.get("test_rows_also_in_reference")
    warn = (f"<p><b>Warning:</b> {overlap} test rows also appear in the reference data, which "
            "inflates the real-only score.</p>" if overlap else "")
    command = f"<pre>{escape(i['command'])}</pre>" if i.get("command") else ""
    return ("<h2 id=\"about\">About this report</h2>" + warn
            + f"<p class=\"muted\">Text column <code>{escape(str(i['text_field']))}</code>, label "
              f"column <code>{escape(str(i['label_field']))}</code>; made {escape(i['created_at'])}"
              f" with seed {i['seed']}.</p>" + command)
