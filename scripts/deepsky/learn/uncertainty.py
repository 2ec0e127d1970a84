"""Per-galaxy uncertainties from a Gaussian (mean, log-variance) head, and their calibration.

A ``head: gaussian`` size model predicts, for each stamp, a mean ``mu`` and a raw second output
whose ``gaussian_logvar`` is the log-variance ``s`` of the *standardised* ln R_e (see
``data.fit_log_target``).  In physical terms that is a log-normal
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
LOGVAR_FLOOR, LOGVAR_CEIL = -8.0, 8.0  # the same as models.LOGVAR_FLOOR / LOGVAR_CEIL


def gaussian_logvar(raw) -> np.ndarray:
    """Log-variance from a Gaussian head's raw output (numpy twin of ``models.gaussian_logvar``)."""
    return np.minimum(LOGVAR_FLOOR + np.logaddexp(0.0, np.asarray(raw, float) - LOGVAR_FLOOR), LOGVAR_CEIL)


def gaussian_nll(y, mu, logvar) -> np.ndarray:
    """Per-sample Gaussian NLL 0.5 * (ln 2 pi + logvar + (y - mu)^2 / exp(logvar)) for a given
    log-variance (``models.gaussian_nll`` is this of ``gaussian_logvar`` of the raw output)."""
    y, mu, s = np.asarray(y, float), np.asarray(mu, float), np.asarray(logvar, float)
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
    sigma_ln = np.exp(0.5 * gaussian_logvar(outputs[:, 1])) * target["std"]
    cols = {"sigma_ln": sigma_ln}
    for level in LEVELS:
        z, tag = z_for(level), f"{round(level * 100)}"
        cols[f"lo{tag}"] = np.exp(mu_ln - z * sigma_ln)
        cols[f"hi{tag}"] = np.exp(mu_ln + z * sigma_ln)
    return pd.DataFrame(cols)


def coverage(y, mu, sigma, level: float, mult=None) -> float:
    """Fraction of ``y`` inside the central ``level`` interval mu +- m * sigma (NaN if empty).

    ``m`` is the Gaussian z(level) unless ``mult`` (a number or one per sample) replaces it, as a
    recalibration does."""
    y, mu, sigma = (np.asarray(a, float) for a in (y, mu, sigma))
    if y.size == 0:
        return float("nan")
    m = z_for(level) if mult is None else np.asarray(mult, float)
    return float(np.mean(np.abs(y - mu) <= m * sigma))


def snr_bins(snr, snr_edges) -> np.ndarray:
    """Bin index of each S/N: left-closed bins, the last one closed; values outside the edges go to
    the first or last bin."""
    e = np.asarray(snr_edges, float)
    if e.size < 2 or np.any(np.diff(e) <= 0):
        raise ValueError(f"S/N bin edges must be at least two increasing numbers, got {e.tolist()}")
    return np.clip(np.searchsorted(e, np.asarray(snr, float), side="right") - 1, 0, e.size - 2)


def conformal_multiplier(z_abs, level: float) -> float:
    """Split-conformal half-width (in sigmas) from validation scores |y - mu| / sigma: the
    ceil((n + 1) * level)-th smallest score, so a new exchangeable galaxy falls inside with
    probability >= level (the largest score when n is too small to promise it)."""
    z = np.sort(np.asarray(z_abs, float))
    if z.size == 0:
        raise ValueError("no validation galaxies to recalibrate on")
    k = min(int(np.ceil((z.size + 1) * level)), z.size)
    return float(z[k - 1])


MIN_BIN = 20  # fewer validation galaxies than this in an S/N bin: use the multiplier of all of them


def recalibration(true, pred, sigma_ln, snr, snr_edges, levels) -> dict:
    """Interval multipliers fitted on a *validation* split, per S/N bin and level (split conformal,
    one calibration set per S/N bin).

    Returns ``{"snr_edges", "levels", "count" (per bin), "multiplier": [[k per level] per bin],
    "gaussian": [z(level)]}``.  Apply with ``calibration(..., recal=...)``: the interval at level L
    of a galaxy in S/N bin b becomes ln(pred) +- multiplier[b][L] * sigma_ln.
    """
    z = np.abs(np.log(np.asarray(true, float)) - np.log(np.asarray(pred, float))) / np.asarray(sigma_ln, float)
    b = snr_bins(snr, snr_edges)
    levels = [float(v) for v in levels]
    mult, counts = [], []
    for i in range(len(snr_edges) - 1):
        zi = z[b == i] if (b == i).sum() >= MIN_BIN else z
        mult.append([conformal_multiplier(zi, lv) for lv in levels])
        counts.append(int((b == i).sum()))
    return {"snr_edges": [float(e) for e in snr_edges], "levels": levels, "count": counts,
            "multiplier": mult, "gaussian": [z_for(lv) for lv in levels]}


CURVE = np.round(np.linspace(0.05, 0.99, 48), 4)


def curve_levels(levels=LEVELS) -> list[float]:
    """The levels a recalibration must cover to draw the reliability curve and the summary levels."""
    return sorted({*map(float, CURVE), *map(float, levels)})


def calibration(true, pred, sigma_ln, snr, snr_edges, levels=LEVELS, recal: dict | None = None) -> dict:
    """Interval coverage of ln(true) around ln(pred) with ln-space sigma, overall and by S/N.

    ``true``/``pred`` are positive sizes (same unit), ``sigma_ln`` the predicted sigma of ln R_e,
    ``snr`` the aperture S/N and ``snr_edges`` the S/N bin edges (left-closed, last bin closed).
    With ``recal`` (from ``recalibration`` on a validation split) the intervals use its per-bin
    multipliers instead of the Gaussian z; ``median_sigma_ln`` is then the effective sigma
    (multiplier(68%) / z(68%) * sigma_ln).
    Returns ``{"overall": {"count", "cov68", "cov95", "median_sigma_ln", "nll"}, "by_snr": [...],
    "curve": {"level": [...], "coverage": [...]}}`` with coverages as fractions.
    """
    y, mu = np.log(np.asarray(true, float)), np.log(np.asarray(pred, float))
    sig, snr = np.asarray(sigma_ln, float), np.asarray(snr, float)
    b = snr_bins(snr, snr_edges)

    def mult(level, sel):
        if recal is None:
            return None
        try:
            j = [round(v, 6) for v in recal["levels"]].index(round(float(level), 6))
        except ValueError:
            raise ValueError(f"the recalibration has no level {level} (it has {recal['levels']})") from None
        return np.asarray(recal["multiplier"], float)[b[sel], j]

    def block(sel):
        out = {"count": int(sel.sum())}
        for lv in levels:
            out[f"cov{round(lv * 100)}"] = coverage(y[sel], mu[sel], sig[sel], lv, mult(lv, sel))
        eff = sig[sel] if recal is None else sig[sel] * mult(0.68, sel) / z_for(0.68)
        out["median_sigma_ln"] = float(np.median(eff)) if sel.any() else float("nan")
        out["nll"] = float(np.mean(gaussian_nll(y[sel], mu[sel], 2 * np.log(eff)))) if sel.any() else float("nan")
        return out

    edges = np.asarray(snr_edges, float).copy()
    edges[0], edges[-1] = min(edges[0], snr.min()), max(edges[-1], snr.max())
    by = [{"lo": float(lo), "hi": float(hi), **block(b == i)} for i, (lo, hi) in enumerate(zip(edges[:-1], edges[1:]))]
    every = np.ones_like(y, bool)
    return {"overall": block(every), "by_snr": by,
            "curve": {"level": CURVE.tolist(), "coverage": [coverage(y, mu, sig, lv, mult(lv, every)) for lv in CURVE]}}
