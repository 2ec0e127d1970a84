"""Metrics reports of each task on a test table: sizes (overall, binned) and star/galaxy (CNN vs
the SDSS psfMag - cModelMag cut), as written to the metrics JSONs."""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import metrics

SIZE_BINS = {"snr": [10, 20, 40, 80, 200], "sersic_n": [0.5, 1.5, 2.5, 4.0, 6.0],
             "r_e_arcsec": [0.1, 0.2, 0.35, 0.6, 1.0]}


def size_report(pred: pd.DataFrame, cat: pd.DataFrame) -> dict:
    """Overall and binned size metrics on a test table with 'true' and 'pred' columns."""
    true, p = cat["r_e_arcsec"].to_numpy(), pred["pred"].to_numpy()
    out = {"overall": metrics.size_metrics(true, p)}
    hi = cat["snr"].to_numpy() > 20
    out["snr_gt_20"] = metrics.size_metrics(true[hi], p[hi])
    out["binned"] = {}
    for col, edges in SIZE_BINS.items():
        if col in cat:
            v = cat[col].to_numpy(float)
            e = np.array(edges, float)
            e[0], e[-1] = min(e[0], v.min()), max(e[-1], v.max())
            out["binned"][col] = metrics.binned(metrics.size_metrics, true, p, v, e)
    return out


# --------------------------------------------------------------------------- star/galaxy
#: SDSS photo's star/galaxy separation: psfMag - cModelMag > 0.145 mag (r band) -> extended (galaxy)
SDSS_CONCENTRATION_CUT = 0.145


def concentration(cat: pd.DataFrame, band: str = "r") -> np.ndarray:
    """Catalogue baseline score psfMag - cModelMag (mag) in ``band``: ~0 for point sources,
    growing with extent.  Raises a ValueError naming the missing column."""
    cols = [f"psfMag_{band}", f"cModelMag_{band}"]
    missing = [c for c in cols if c not in cat]
    if missing:
        raise ValueError(f"catalogue lacks {missing} needed by the psfMag - cModelMag baseline")
    return (cat[cols[0]] - cat[cols[1]]).to_numpy(float)


def _star_galaxy_names(m: dict) -> dict:
    """Rename class-1/class-0 keys of metrics.classification_metrics to star/galaxy."""
    names = {"pos_purity": "star_purity", "pos_completeness": "star_completeness",
             "neg_purity": "galaxy_purity", "neg_completeness": "galaxy_completeness",
             "positives": "stars"}
    return {names.get(k, k): v for k, v in m.items()}


def stargal_scores(pred: pd.DataFrame, cat: pd.DataFrame, cut: float = SDSS_CONCENTRATION_CUT) -> dict:
    """Per-method (score, threshold, probability or None) for P(star): the CNN's probability and
    the catalogue baseline's -(psfMag_r - cModelMag_r) with the SDSS cut."""
    return {"cnn": (pred["pred"].to_numpy(float), 0.5, pred["pred"].to_numpy(float)),
            "baseline": (-concentration(cat), -cut, None)}


def stargal_report(pred: pd.DataFrame, cat: pd.DataFrame, faint_mag: float, mag_edges, n_bins: int = 10,
                   cut: float = SDSS_CONCENTRATION_CUT, mag_col: str = "cModelMag_r") -> dict:
    """CNN vs the psfMag - cModelMag baseline on a test table (label ``is_star``).

    * ``overall`` / ``faint`` (``mag_col`` > ``faint_mag``): AUC, star and galaxy purity and
      completeness, accuracy, counts, and (CNN) Brier score and ECE;
    * ``by_mag``: the same in bins of ``mag_col`` (measured r magnitude, edges in mag);
    * ``reliability``: the CNN's reliability table (``n_bins`` probability bins).
    """
    y = metrics._binary(cat["is_star"].to_numpy())
    mag = cat[mag_col].to_numpy(float)
    faint = mag > faint_mag
    scores = stargal_scores(pred, cat, cut)
    out = {"positive_class": "STAR", "baseline": f"psfMag_r - cModelMag_r > {cut} -> galaxy",
           "magnitude": mag_col, "faint_mag": float(faint_mag), "overall": {}, "faint": {},
           "by_mag": {}}
    for name, (s, thr, p) in scores.items():
        out["overall"][name] = _star_galaxy_names(metrics.classification_metrics(y, s, thr, p, n_bins))
        out["faint"][name] = _star_galaxy_names(metrics.classification_metrics(
            y[faint], s[faint], thr, None if p is None else p[faint], n_bins))
        rows = []
        edges = np.asarray(mag_edges, float)
        for i, (lo, hi) in enumerate(zip(edges[:-1], edges[1:])):
            sel = (mag >= lo) & ((mag < hi) if i < len(edges) - 2 else (mag <= hi))
            m = metrics.classification_metrics(y[sel], s[sel], thr, None if p is None else p[sel], n_bins)
            rows.append({"lo": float(lo), "hi": float(hi), **_star_galaxy_names(m)})
        out["by_mag"][name] = rows
    out["reliability"] = metrics.reliability_table(y, scores["cnn"][2], n_bins)
    return nan_to_none(out)


def nan_to_none(obj):
    """Replace NaN floats (empty bins, one-class subsets) by None, so the JSON is standard JSON."""
    if isinstance(obj, dict):
        return {k: nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [nan_to_none(v) for v in obj]
    if isinstance(obj, float) and obj != obj:
        return None
    return obj
