"""The report's figures as PNG data URIs (matplotlib, Agg backend), so the HTML embeds them."""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from typing import Any

import numpy as np

SYNTH, REAL, TARGET = "#d95f02", "#1b9e77", "#7570b3"


def _figure(width: float = 7.0, height: float = 3.4) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(width, height), dpi=96)
    ax.spines[["top", "right"]].set_visible(False)
    return fig, ax


def _uri(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def lengths(synthetic: Sequence[int], real: Sequence[int]) -> str:
    fig, ax = _figure()
    top = max(max(synthetic, default=1), max(real, default=1))
    bins = np.arange(0, top + 2) if top <= 60 else np.linspace(0, top + 1, 50)
    ax.hist(real, bins=bins, density=True, alpha=0.55, color=REAL, label="real (reference)")
    ax.hist(synthetic, bins=bins, density=True, alpha=0.55, color=SYNTH, label="synthetic")
    ax.set_xlabel("words per text")
    ax.set_ylabel("share of rows")
    ax.legend(frameon=False)
    return _uri(fig)


def labels(table: dict[str, dict[str, float]]) -> str:
    """Bars per label for a few labels; for many, each label as a point (reference share vs
    synthetic share) around the diagonal of equal shares, the farthest labels named."""
    if len(table) > 24 and all("reference" in v and "synthetic" in v for v in table.values()):
        return _label_scatter(table)
    names = list(table)
    sides = [s for s in ("target", "reference", "synthetic") if any(s in v for v in table.values())]
    fig, ax = _figure(7.0, max(2.5, 0.16 * len(names) + 1.0))
    y = np.arange(len(names))
    height = 0.8 / max(len(sides), 1)
    colours = {"target": TARGET, "reference": REAL, "synthetic": SYNTH}
    for i, side in enumerate(sides):
        ax.barh(y + i * height, [table[n].get(side, 0.0) for n in names], height=height,
                color=colours[side], label=side)
    ax.set_yticks(y + height * (len(sides) - 1) / 2)
    ax.set_yticklabels(names, fontsize=6 if len(names) > 30 else 8)
    ax.invert_yaxis()
    ax.set_xlabel("share of rows")
    ax.legend(frameon=False, loc="lower right")
    return _uri(fig)


def _label_scatter(table: dict[str, dict[str, float]]) -> str:
    fig, ax = _figure(5.0, 3.8)
    names = list(table)
    real = np.array([table[n]["reference"] for n in names])
    synth = np.array([table[n]["synthetic"] for n in names])
    top = max(real.max(), synth.max()) * 1.1 or 1.0
    ax.plot([0, top], [0, top], color="#999", linewidth=1, label="same share")
    ax.scatter(real, synth, s=14, color=SYNTH, label="one label")
    gap = np.abs(synth - real)
    for i in [i for i in np.argsort(-gap)[:6] if gap[i] > 0.25 * real.mean()]:
        ax.annotate(names[i], (real[i], synth[i]), fontsize=7, xytext=(3, 3),
                    textcoords="offset points")
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    ax.set_xlabel("share of reference rows")
    ax.set_ylabel("share of synthetic rows")
    ax.legend(frameon=False, loc="upper left")
    return _uri(fig)


def embedding_map(points: dict[str, Any]) -> str:
    fig, ax = _figure(6.0, 4.6)
    real, synth = np.array(points["reference"]), np.array(points["synthetic"])
    if len(real):
        ax.scatter(real[:, 0], real[:, 1], s=7, alpha=0.5, color=REAL, label="real (reference)")
    if len(synth):
        ax.scatter(synth[:, 0], synth[:, 1], s=9, alpha=0.7, color=SYNTH, label="synthetic")
    explained = points.get("explained", [0, 0])
    ax.set_xlabel(f"PC 1 ({explained[0]:.0%} of variance)")
    ax.set_ylabel(f"PC 2 ({explained[1]:.0%} of variance)")
    ax.legend(frameon=False)
    return _uri(fig)


def nearest(similarities: dict[str, Sequence[float]], threshold: float) -> str:
    fig, ax = _figure()
    colours = [REAL, TARGET]
    for (name, sims), colour in zip(similarities.items(), colours):
        ax.hist(sims, bins=np.linspace(-0.1, 1.0, 45), alpha=0.55, color=colour,
                label=f"nearest {name} row")
    ax.axvline(threshold, color="#c00", linestyle="--", label=f"near-copy ≥ {threshold}")
    ax.set_xlabel("cosine similarity of each synthetic row to its nearest real row")
    ax.set_ylabel("synthetic rows")
    ax.legend(frameon=False)
    return _uri(fig)


def downstream(settings: dict[str, dict[str, Any]]) -> str:
    fig, ax = _figure(7.0, 3.0)
    shown = [(n, s) for n, s in settings.items() if "macro_f1" in s]
    colours = {"real": REAL, "synthetic": SYNTH, "real+synthetic": TARGET}
    for row, (name, s) in enumerate(shown):
        for offset, metric, marker in ((-0.12, "accuracy", "s"), (0.12, "macro_f1", "o")):
            low, high = s[f"{metric}_ci"]
            ax.errorbar(s[metric], row + offset, xerr=[[s[metric] - low], [high - s[metric]]],
                        fmt=marker, color=colours.get(name, "#555"), capsize=3,
                        label=metric.replace("_", "-") if row == 0 else None)
    ax.set_yticks(range(len(shown)))
    ax.set_yticklabels([f"trained on {n}" for n, _ in shown])
    ax.invert_yaxis()
    ax.set_xlabel("score on the real test set (95% bootstrap interval); ■ accuracy, ● macro-F1")
    return _uri(fig)
