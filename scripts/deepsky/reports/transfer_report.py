"""The transfer comparison's reports: size metrics on the target, the summary table and its checks."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..learn.transfer import STRATEGIES
from . import metrics, task_reports

SUMMARY_COLUMNS = ["strategy", "budget", "n_train", "n_val", "n_test", "median_abs_rel", "bias", "nmad",
                   "outlier_frac", "r2_log", "epochs_run", "best_epoch"]


def summary_table(reports: list[dict]) -> pd.DataFrame:
    """One row per (strategy, budget) from the metrics JSONs, sorted by strategy order then budget."""
    rows = []
    for r in reports:
        o = r["overall"]
        rows.append({"strategy": r["strategy"], "budget": int(r["budget"]), "n_train": int(r["n_train"]),
                     "n_val": int(r["n_val"]), "n_test": int(r["n_test"]),
                     **{k: float(o[k]) for k in ("median_abs_rel", "bias", "nmad", "outlier_frac", "r2_log")},
                     "epochs_run": int(r.get("epochs_run", 0)), "best_epoch": int(r.get("best_epoch", 0))})
    table = pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
    order = {s: i for i, s in enumerate(STRATEGIES)}
    table = table.sort_values(["strategy", "budget"], key=lambda c: c.map(order) if c.name == "strategy" else c)
    return table.reset_index(drop=True)


def claims(table: pd.DataFrame, max_budget: int = 500) -> list[dict]:
    """The issue's checks at every trained budget <= ``max_budget``: full fine-tuning at least halves
    the zero-shot median |dR_e|/R_e, and beats scratch.  One dict per budget (NaN-free booleans)."""
    zs = table.loc[table["strategy"] == "zeroshot", "median_abs_rel"]
    full = table[table["strategy"] == "full"].set_index("budget")["median_abs_rel"]
    scratch = table[table["strategy"] == "scratch"].set_index("budget")["median_abs_rel"]
    out = []
    for b in sorted(full.index):
        if b > max_budget:
            continue
        row = {"budget": int(b), "full": float(full[b])}
        if len(zs):
            row |= {"zeroshot": float(zs.iloc[0]), "halves_zeroshot": bool(full[b] <= 0.5 * zs.iloc[0])}
        if b in scratch.index:
            row |= {"scratch": float(scratch[b]), "beats_scratch": bool(full[b] < scratch[b])}
        out.append(row)
    return out


def markdown_table(table: pd.DataFrame, floatfmt: str = ".4f") -> str:
    """GitHub-flavoured Markdown table (no extra dependency)."""
    cols = list(table.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---:" if table[c].dtype.kind in "if" else "---"
                                                          for c in cols) + "|"]
    for _, row in table.iterrows():
        cells = [format(v, floatfmt) if isinstance(v, float) else str(v) for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def size_report(pred: pd.DataFrame, cat: pd.DataFrame) -> dict:
    """``task_reports.size_report`` plus metrics split by bulge fraction and by neighbours (where present)."""
    if "snr" not in cat:  # e.g. a live catalogue without S/N: the S/N > 20 cut is then empty
        cat = cat.assign(snr=np.nan)
    out = task_reports.size_report(pred, cat)
    true, p = cat["r_e_arcsec"].to_numpy(), pred["pred"].to_numpy()
    if "bulge_fraction" in cat:
        out["binned"]["bulge_fraction"] = metrics.binned(metrics.size_metrics, true, p,
                                                         cat["bulge_fraction"].to_numpy(float),
                                                         np.array([0.0, 0.2, 0.4, 0.6, 1.0]))
    if "n_neighbours" in cat:
        has = cat["n_neighbours"].to_numpy() > 0
        out["with_neighbours"] = metrics.size_metrics(true[has], p[has])
        out["isolated"] = metrics.size_metrics(true[~has], p[~has])
    return out
