"""Task-specific evaluation outputs: the metrics report and the figures of each task.

``scripts/evaluate.py`` predicts on the test split (the same for every task) and then dispatches
on the model's task through ``REPORTS``: ``report(pred, cat, params) -> dict`` gives the metrics
(the rule adds the common keys and writes the JSON), ``figures(...)`` writes the plots named in the
rule's outputs, and ``summary(report)`` is the log line.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from . import metrics, plots, task_reports


@dataclass(frozen=True)
class TaskReport:
    report: Callable[..., dict]
    figures: Callable[..., None]
    summary: Callable[[dict], str]


# --------------------------------------------------------------------------- size
def size_report(pred: pd.DataFrame, cat: pd.DataFrame, params) -> dict:
    return task_reports.size_report(pred, cat)


def size_figures(table: pd.DataFrame, images: np.ndarray, report: dict, history: pd.DataFrame, out, name: str,
                 seed: int, params=None) -> None:
    """pred_vs_true, residuals, learning_curves, gallery (the spine's size figures)."""
    o = report["overall"]
    plots.pred_vs_true(table["true"], table["pred"], table["snr"], "S/N", out.pred_vs_true,
                       f"{name}: median |dR|/R = {o['median_abs_rel']:.3f}, R2(log) = {o['r2_log']:.3f}")
    plots.residuals(table, {"snr": ("S/N", True), "sersic_n": ("Sersic n", False),
                            "r_e_arcsec": ("true R_e [arcsec]", True)}, out.residuals, name)
    plots.learning_curves(history, out.learning_curves, name)
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(len(table), size=min(24, len(table)), replace=False))
    captions = [f"true {t:.2f}\" pred {p:.2f}\"\nS/N {s:.0f} n {n:.1f}" for t, p, s, n in
                zip(table["true"][pick], table["pred"][pick], table["snr"][pick], table["sersic_n"][pick])]
    plots.gallery(images[pick, 0], captions, out.gallery, f"{name}: random test stamps")


def size_summary(report: dict) -> str:
    o = report["overall"]
    return (f"R2(log)={o['r2_log']:.3f} median|dR|/R={o['median_abs_rel']:.3f} "
            f"(S/N>20: {report['snr_gt_20']['median_abs_rel']:.3f})")


# --------------------------------------------------------------------------- star/galaxy
def stargal_report(pred: pd.DataFrame, cat: pd.DataFrame, params) -> dict:
    return task_reports.stargal_report(pred, cat, params.faint_mag, params.mag_edges, params.n_prob_bins)


def stargal_figures(table: pd.DataFrame, images: np.ndarray, report: dict, history: pd.DataFrame, out,
                    name: str, seed: int, params=None) -> None:
    """roc, purity_completeness, reliability, misclassified, learning_curves."""
    y = table["is_star"].to_numpy()
    curves = {}
    for method, (score, _, _) in task_reports.stargal_scores(table, table).items():
        fpr, tpr, _ = metrics.roc_curve(y, score)
        label = "CNN" if method == "cnn" else "psfMag - cModelMag (r)"
        curves[label] = (fpr, tpr, plots._num(report["overall"][method]["auc"]))
    plots.roc(curves, out.roc, f"{name}: stars vs galaxies, {len(table)} test objects")
    plots.purity_completeness(report["by_mag"], out.purity_completeness,
                              f"{name} vs psfMag - cModelMag > {task_reports.SDSS_CONCENTRATION_CUT}",
                              mag_label=f"{report['magnitude']} [mag]")
    o = report["overall"]["cnn"]
    plots.reliability(report["reliability"], out.reliability,
                      f"{name}: Brier {plots._num(o['brier']):.4f}, ECE {plots._num(o['ece']):.4f}")
    plots.learning_curves(history, out.learning_curves, name)
    # misclassified by the CNN, the most confident mistakes first (deterministic order)
    p = table["pred"].to_numpy(float)
    wrong = np.flatnonzero((p >= 0.5) != y.astype(bool))
    wrong = wrong[np.lexsort((wrong, -np.abs(p[wrong] - 0.5)))][:24]
    mag = table[report["magnitude"]].to_numpy(float)
    conc = task_reports.concentration(table)
    captions = [f"{table['class'].iloc[i]} P(star)={p[i]:.2f}\nr={mag[i]:.1f} psf-cM={conc[i]:.2f}"
                for i in wrong]
    plots.colour_gallery(images[wrong], captions, out.misclassified,
                         f"{name}: {len(np.flatnonzero((p >= 0.5) != y.astype(bool)))} misclassified test "
                         f"objects (gri), most confident first")


def stargal_summary(report: dict) -> str:
    c, b = report["overall"]["cnn"], report["overall"]["baseline"]
    fc, fb = report["faint"]["cnn"], report["faint"]["baseline"]
    n = plots._num
    return (f"AUC {n(c['auc']):.4f} (baseline {n(b['auc']):.4f}); faint r>{report['faint_mag']}: "
            f"AUC {n(fc['auc']):.4f} (baseline {n(fb['auc']):.4f}); Brier {n(c['brier']):.4f}, "
            f"ECE {n(c['ece']):.4f}")


REPORTS: dict[str, TaskReport] = {
    "size": TaskReport(size_report, size_figures, size_summary),
    "stargal": TaskReport(stargal_report, stargal_figures, stargal_summary),
}


def get_report(task: str) -> TaskReport:
    try:
        return REPORTS[task]
    except KeyError:
        raise ValueError(f"no evaluation report for task {task!r}; known: {sorted(REPORTS)}") from None
