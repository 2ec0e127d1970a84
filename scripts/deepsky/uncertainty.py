"""Per-galaxy uncertainties from a Gaussian (mean, log-variance) head, and their calibration.

A ``head: gaussian`` size model predicts, for each stamp, a mean ``mu`` and a log-variance ``s`` of
the *standardised* ln R_e (see ``data.fit_log_target``).  In physical terms that is a log-normal
distribution of R_e with median exp(mu * std + mean) and ln-space sigma ``exp(s/2) * std``.

Calibration is checked on the held-out test split: the fraction of test galaxies whose true
ln R_e lies inside the central 68% (95%) interval should be 68% (95%), overall and in bins of S/N.
Pure numpy/scipy: usable on any backend's predictions.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

LEVELS = (0.68, 0.95)
LOGVAR_CLIP = (-12.0, 8.0)  # the same clip as models.gaussian_nll


def gaussian_nll(y, mu, logvar) -> np.ndarray:
    """Per-sample Gaussian NLL 0.5 * (ln 2 pi + logvar + (y - mu)^2 / exp(logvar)) (numpy twin of
    ``models.gaussian_nll``, with the same log-variance clip)."""
    y, mu = np.asarray(y, float), np.asarray(mu, float)
    s = np.clip(np.asarray(logvar, float), *LOGVAR_CLIP)
    return 0.5 * (np.log(2 * np.pi) + s + (y - mu) ** 2 * np.exp(-s))


def z_for(level: float) -> float:
    """Half-width in sigmas of the central interval holding ``level`` of a Gaussian (0.68 -> 0.994)."""
    if not 0 < level < 1:
        raise ValueError(f"interval level {level} must be in (0, 1)")
    return float(stats.norm.ppf(0.5 + level / 2))


def gaussian_columns(outputs: np.ndarray, target: dict) -> pd.DataFrame:
    """Network outputs (N, 2) of a Gaussian head -> ln-space sigma and 68/95% intervals in physical units.

    Columns: ``sigma_ln`` (sigma of ln R_e), ``lo68``/``hi68``/``lo95``/``hi95`` (R_e bounds, in the
    target's unit, e.g. arcsec).  The point prediction (the median, exp of the mean) is made by the
    task's ``decode`` from column 0.
    """
    outputs = np.asarray(outputs, float)
    if outputs.ndim != 2 or outputs.shape[1] != 2:
        raise ValueError(f"a Gaussian head gives (N, 2) outputs, got shape {outputs.shape}")
    mu_ln = outputs[:, 0] * target["std"] + target["mean"]
    sigma_ln = np.exp(0.5 * np.clip(outputs[:, 1], *LOGVAR_CLIP)) * target["std"]
    cols = {"sigma_ln": sigma_ln}
    for level in LEVELS:
        z, tag = z_for(level), f"{round(level * 100)}"
        cols[f"lo{tag}"] = np.exp(mu_ln - z * sigma_ln)
        cols[f"hi{tag}"] = np.exp(mu_ln + z * sigma_ln)
    return pd.DataFrame(cols)


def coverage(y, mu, sigma, level: float) -> float:
    """Fraction of ``y`` inside the central ``level`` interval mu +- z(level) * sigma (NaN if empty)."""
    y, mu, sigma = (np.asarray(a, float) for a in (y, mu, sigma))
    if y.size == 0:
        return float("nan")
    return float(np.mean(np.abs(y - mu) <= z_for(level) * sigma))


def calibration(true, pred, sigma_ln, snr, snr_edges, levels=LEVELS) -> dict:
    """Interval coverage of ln(true) around ln(pred) with ln-space sigma, overall and by S/N.

    ``true``/``pred`` are positive sizes (same unit), ``sigma_ln`` the predicted sigma of ln R_e,
    ``snr`` the aperture S/N and ``snr_edges`` the S/N bin edges (left-closed, last bin closed).
    Returns ``{"overall": {"count", "cov68", "cov95", "median_sigma_ln", "nll"}, "by_snr": [...],
    "curve": {"level": [...], "coverage": [...]}}`` with coverages as fractions.
    """
    y, mu = np.log(np.asarray(true, float)), np.log(np.asarray(pred, float))
    sig, snr = np.asarray(sigma_ln, float), np.asarray(snr, float)

    def block(sel):
        out = {"count": int(sel.sum())}
        for lv in levels:
            out[f"cov{round(lv * 100)}"] = coverage(y[sel], mu[sel], sig[sel], lv)
        out["median_sigma_ln"] = float(np.median(sig[sel])) if sel.any() else float("nan")
        out["nll"] = float(np.mean(gaussian_nll(y[sel], mu[sel], 2 * np.log(sig[sel])))) if sel.any() else float("nan")
        return out

    edges = np.asarray(snr_edges, float).copy()
    edges[0], edges[-1] = min(edges[0], snr.min()), max(edges[-1], snr.max())
    by = []
    for i, (lo, hi) in enumerate(zip(edges[:-1], edges[1:])):
        sel = (snr >= lo) & ((snr < hi) if i < len(edges) - 2 else (snr <= hi))
        by.append({"lo": float(lo), "hi": float(hi), **block(sel)})
    grid = np.round(np.linspace(0.05, 0.99, 48), 4)
    return {"overall": block(np.ones_like(y, bool)), "by_snr": by,
            "curve": {"level": grid.tolist(), "coverage": [coverage(y, mu, sig, lv) for lv in grid]}}
