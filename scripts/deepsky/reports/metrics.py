"""Metrics on held-out predictions (pure numpy; every function documents its definition)."""

from __future__ import annotations

import numpy as np

NMAD_K = 1.4826  # makes the median absolute deviation a sigma for Gaussian data


def r2(y_true, y_pred) -> float:
    """Coefficient of determination 1 - SS_res/SS_tot."""
    y_true, y_pred = np.asarray(y_true, float), np.asarray(y_pred, float)
    ss_tot = ((y_true - y_true.mean()) ** 2).sum()
    return float(1.0 - ((y_true - y_pred) ** 2).sum() / ss_tot) if ss_tot > 0 else float("nan")


def size_metrics(true, pred, outlier: float = 0.2) -> dict:
    """Accuracy of predicted sizes against true sizes (same units, both > 0).

    * ``r2_log``: R^2 of ln(pred) against ln(true);
    * ``median_abs_rel``: median of |pred - true| / true;
    * ``bias``: median of (pred - true) / true (signed);
    * ``nmad``: 1.4826 * median(|d - median(d)|) with d = (pred - true) / true;
    * ``outlier_frac``: fraction with |pred - true| / true > ``outlier``;
    * ``count``.
    """
    true, pred = np.asarray(true, float), np.asarray(pred, float)
    if true.shape != pred.shape:
        raise ValueError(f"true {true.shape} and pred {pred.shape} differ in shape")
    n = int(true.size)
    if n == 0:
        return {"count": 0, "r2_log": float("nan"), "median_abs_rel": float("nan"), "bias": float("nan"),
                "nmad": float("nan"), "outlier_frac": float("nan")}
    d = (pred - true) / true
    return {
        "count": n,
        "r2_log": r2(np.log(true), np.log(pred)) if n > 1 else float("nan"),
        "median_abs_rel": float(np.median(np.abs(d))),
        "bias": float(np.median(d)),
        "nmad": float(NMAD_K * np.median(np.abs(d - np.median(d)))),
        "outlier_frac": float(np.mean(np.abs(d) > outlier)),
    }


def binned(fn, true, pred, by, edges, **kw) -> list[dict]:
    """``fn(true, pred)`` in bins of ``by`` (left-closed bins [lo, hi), last bin closed)."""
    true, pred, by = np.asarray(true), np.asarray(pred), np.asarray(by)
    out = []
    for i, (lo, hi) in enumerate(zip(edges[:-1], edges[1:])):
        sel = (by >= lo) & ((by < hi) if i < len(edges) - 2 else (by <= hi))
        out.append({"lo": float(lo), "hi": float(hi), **fn(true[sel], pred[sel], **kw)})
    return out


def quantile_edges(values, n_bins: int) -> np.ndarray:
    """Bin edges at equal-count quantiles (unique, sorted)."""
    return np.unique(np.quantile(np.asarray(values, float), np.linspace(0, 1, n_bins + 1)))


# --------------------------------------------------------------------------- classification
# Conventions: ``y`` holds 0/1 labels of the *positive* class (for star/galaxy: 1 = star) and
# ``score`` any real number that grows with the belief in the positive class (a probability, a
# logit, or minus a catalogue concentration such as psfMag - cModelMag).


def _binary(y) -> np.ndarray:
    y = np.asarray(y)
    if y.dtype == bool:
        return y.astype(np.int8)
    if not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0/1 or booleans")
    return y.astype(np.int8)


def roc_curve(y, score) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC curve: (false positive rate, true positive rate, thresholds), thresholds decreasing.

    Point i classifies ``score >= thresholds[i]`` as positive; tied scores enter together.  The
    curve starts at (0, 0) with threshold +inf and ends at (1, 1).
    """
    y, s = _binary(y), np.asarray(score, float)
    if y.shape != s.shape:
        raise ValueError(f"labels {y.shape} and scores {s.shape} differ in shape")
    if np.isnan(s).any():
        raise ValueError("scores contain NaN")
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s)), y.size - 1]  # last index of each run of tied scores
    tp = np.cumsum(y)[last]
    fp = (last + 1) - tp
    n_pos, n_neg = int(y.sum()), int(y.size - y.sum())
    tpr = np.r_[0.0, tp / n_pos] if n_pos else np.full(last.size + 1, np.nan)
    fpr = np.r_[0.0, fp / n_neg] if n_neg else np.full(last.size + 1, np.nan)
    return fpr, tpr, np.r_[np.inf, s[last]]


def roc_auc(y, score) -> float:
    """Area under the ROC curve: P(score of a random positive > that of a random negative), ties
    counting one half (Mann-Whitney U / (n_pos n_neg), from mid-ranks).  NaN with one class only."""
    y, s = _binary(y), np.asarray(score, float)
    n_pos, n_neg = int(y.sum()), int(y.size - y.sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(s.size, float)
    sorted_s = s[order]
    # mid-ranks of tied groups (1-based)
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_s)) + 1]
    ends = np.r_[starts[1:], s.size]
    ranks[order] = np.repeat(0.5 * (starts + ends + 1), ends - starts)
    u = ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def purity_completeness(y, pred_label) -> dict:
    """Purity (precision) and completeness (recall) of both classes for hard labels.

    ``pos_*`` refer to class 1, ``neg_*`` to class 0; purity = correct / predicted in the class,
    completeness = correct / true members of the class (NaN when the denominator is 0).
    """
    y, p = _binary(y), _binary(pred_label)
    tp = int(((y == 1) & (p == 1)).sum())
    tn = int(((y == 0) & (p == 0)).sum())
    fp = int(((y == 0) & (p == 1)).sum())
    fn = int(((y == 1) & (p == 0)).sum())

    def ratio(a, b):
        return float(a / b) if b else float("nan")

    return {"pos_purity": ratio(tp, tp + fp), "pos_completeness": ratio(tp, tp + fn),
            "neg_purity": ratio(tn, tn + fn), "neg_completeness": ratio(tn, tn + fp),
            "accuracy": ratio(tp + tn, y.size), "tp": tp, "fp": fp, "tn": tn, "fn": fn}


def brier_score(y, prob) -> float:
    """Mean squared difference between predicted probability of class 1 and the 0/1 label."""
    y, p = _binary(y), np.asarray(prob, float)
    return float(np.mean((p - y) ** 2)) if y.size else float("nan")


def reliability_table(y, prob, n_bins: int = 10) -> list[dict]:
    """Calibration in ``n_bins`` equal-width probability bins [i/n, (i+1)/n) (last bin closed).

    Each row: lo, hi, count, mean predicted probability, observed fraction of class 1 (NaN when
    empty).
    """
    y, p = _binary(y), np.asarray(prob, float)
    if ((p < 0) | (p > 1)).any():
        raise ValueError("probabilities must lie in [0, 1]")
    idx = np.minimum((p * n_bins).astype(int), n_bins - 1)
    rows = []
    for b in range(n_bins):
        sel = idx == b
        n = int(sel.sum())
        rows.append({"lo": b / n_bins, "hi": (b + 1) / n_bins, "count": n,
                     "mean_prob": float(p[sel].mean()) if n else float("nan"),
                     "frac_pos": float(y[sel].mean()) if n else float("nan")})
    return rows


def expected_calibration_error(y, prob, n_bins: int = 10) -> float:
    """ECE: sum over bins of (count / N) |observed fraction - mean predicted probability|."""
    rows = reliability_table(y, prob, n_bins)
    n = sum(r["count"] for r in rows)
    if n == 0:
        return float("nan")
    return float(sum(r["count"] / n * abs(r["frac_pos"] - r["mean_prob"]) for r in rows if r["count"]))


def classification_metrics(y, score, threshold: float, prob=None, n_bins: int = 10) -> dict:
    """AUC, hard-label purity/completeness at ``score >= threshold`` -> class 1, and, when
    probabilities are given, Brier score and ECE.  ``count`` and ``positives`` are included."""
    y, s = _binary(y), np.asarray(score, float)
    out = {"count": int(y.size), "positives": int(y.sum()), "auc": roc_auc(y, s) if y.size else float("nan"),
           **purity_completeness(y, (s >= threshold).astype(np.int8))}
    if prob is not None:
        out["brier"] = brier_score(y, prob)
        out["ece"] = expected_calibration_error(y, prob, n_bins) if y.size else float("nan")
    return out
