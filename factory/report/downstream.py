"""The downstream test: does a student trained with the synthetic rows do better on real data?

The student is a logistic regression on all-MiniLM-L6-v2 sentence embeddings, trained three ways
(real only, synthetic only, real plus synthetic) and scored on the real test set by accuracy and
macro-F1 (the mean F1 over the test set's labels). Confidence intervals come from a bootstrap of
the test rows; the differences use the same resamples for both settings (a paired bootstrap), so
the noise of the test set largely cancels.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

RESAMPLES = 1000
# Inverse regularisation strength: unit-length 384-d embeddings need weak regularisation.
C = 10.0


def fit_predict(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray) -> np.ndarray:
    """Labels (as ints) predicted for `x_test`; a training set of one label predicts it."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    classes = np.unique(y_train)
    if len(classes) == 1:
        return np.full(len(x_test), classes[0])
    model = LogisticRegression(C=C, max_iter=2000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        # one row per label is a valid (if small) training set, not a regression problem
        warnings.filterwarnings("ignore", message="The number of unique classes")
        model.fit(x_train, y_train)
    return model.predict(x_test)


def macro_f1(truth: np.ndarray, pred: np.ndarray, k: int) -> float:
    """Mean F1 over the labels present in `truth` (labels are ints below k)."""
    tp = np.bincount(truth[truth == pred], minlength=k)
    support = np.bincount(truth, minlength=k)
    predicted = np.bincount(pred, minlength=k)
    present = support > 0
    f1 = 2 * tp[present] / (support[present] + predicted[present])
    return float(f1.mean()) if f1.size else float("nan")


def _ci(values: np.ndarray) -> list[float]:
    return [float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))]


def evaluate(train: dict[str, tuple[np.ndarray, Sequence[str]]], x_test: np.ndarray,
             y_test: Sequence[str], resamples: int = RESAMPLES, seed: int = 0) -> dict[str, Any]:
    """Accuracy and macro-F1 with 95% bootstrap intervals for each training set in `train`
    (name -> embeddings, labels), and paired differences against the `real` setting."""
    names = sorted({*y_test, *(label for _, y in train.values() for label in y)})
    code = {name: i for i, name in enumerate(names)}
    truth = np.array([code[v] for v in y_test])
    k, n = len(names), len(truth)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n, size=(resamples, n))
    settings: dict[str, Any] = {}
    samples: dict[str, dict[str, np.ndarray]] = {}
    for name, (x, y) in train.items():
        if len(y) == 0:
            settings[name] = {"skipped": "no training rows"}
            continue
        pred = fit_predict(x, np.array([code[v] for v in y]), x_test)
        acc = (pred == truth).astype(float)
        boot_acc = acc[draws].mean(axis=1)
        boot_f1 = np.array([macro_f1(truth[d], pred[d], k) for d in draws])
        samples[name] = {"accuracy": boot_acc, "macro_f1": boot_f1}
        settings[name] = {
            "train_rows": len(y), "train_labels": len(set(y)),
            "accuracy": float(acc.mean()), "accuracy_ci": _ci(boot_acc),
            "macro_f1": macro_f1(truth, pred, k), "macro_f1_ci": _ci(boot_f1),
            "unseen_test_labels": len(set(y_test) - set(y)),
        }
    differences = {}
    for name in samples:
        if name != "real" and "real" in samples:
            differences[f"{name} - real"] = {
                metric: {"delta": settings[name][metric] - settings["real"][metric],
                         "ci": _ci(samples[name][metric] - samples["real"][metric])}
                for metric in ("accuracy", "macro_f1")}
    return {"student": f"logistic regression (C={C}) on all-MiniLM-L6-v2 embeddings",
            "test_rows": n, "test_labels": len(set(y_test)), "resamples": resamples,
            "settings": settings, "differences": differences}
