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
