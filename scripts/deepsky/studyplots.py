"""Figures of the model study: accuracy vs training-set size, uncertainty calibration, baseline."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .plots import plt, save


def accuracy_vs_size(table: pd.DataFrame, path, title: str) -> None:
    """Test median |dR_e|/R_e against the number of training stamps, one line per variant."""
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for i, (name, g) in enumerate(table.groupby("variant", sort=False)):
        g = g.sort_values("n_train")
        ax.plot(g["n_train"], g["median_abs_rel"], marker="o", ms=4, color=f"C{i % 10}",
                ls="-" if len(g) > 1 else "none", label=name)
    ax.set(xscale="log", yscale="log", xlabel="training stamps", ylabel="test median |dR_e| / R_e", title=title)
    ax.legend(fontsize=7, ncol=2)
    save(fig, path)


def calibration(calib: dict, path, title: str, tol: float = 0.03) -> None:
    """Left: empirical vs nominal interval coverage. Right: 68%/95% coverage per S/N bin, +-tol bands."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.8))
    lv, cv = np.array(calib["curve"]["level"]), np.array(calib["curve"]["coverage"])
    a.fill_between([0, 1], [-tol, 1 - tol], [tol, 1 + tol], color="0.85", label=f"+-{tol:g}")
    a.plot([0, 1], [0, 1], "k--", lw=1)
    a.plot(lv, cv, "C0-", lw=2, label="test split")
    a.set(xlim=(0, 1), ylim=(0, 1), xlabel="nominal central interval", ylabel="fraction of galaxies inside",
          title="coverage, all S/N")
    a.legend(loc="upper left")
    bins = calib["by_snr"]
    x = np.arange(len(bins))
    for level, col in ((0.68, "C0"), (0.95, "C3")):
        key = f"cov{round(level * 100)}"
        b.axhspan(level - tol, level + tol, color=col, alpha=0.15)
        b.axhline(level, color=col, lw=0.8, ls="--")
        b.plot(x, [r[key] for r in bins], "o-", color=col, label=f"{round(level * 100)}% interval")
    b.set_xticks(x, [f"{r['lo']:.0f}-{r['hi']:.0f}\n(n={r['count']})" for r in bins])
    b.set(ylim=(0.4, 1.02), xlabel="aperture S/N", ylabel="fraction inside", title="coverage by S/N")
    b.legend(loc="lower right")
    fig.suptitle(title)
    fig.tight_layout()
    save(fig, path)


def baseline(fits: pd.DataFrame, cnn_pred: pd.DataFrame, path, title: str) -> None:
    """Relative R_e error of the Sersic fit and the CNN on the same galaxies, against true R_e and S/N."""
    sub = cnn_pred.set_index("id").loc[fits["id"]]
    cnn_err = ((sub["pred"] - sub["true"]) / sub["true"]).to_numpy()
    ok = fits["success"].to_numpy(bool)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.8), sharey=True)
    for ax, col, label in zip(axes, ("r_e_arcsec", "snr"), ("true R_e [arcsec]", "aperture S/N")):
        x = fits[col].to_numpy()
        ax.scatter(x[ok], fits["rel_err"][ok], s=10, color="C1", label="Sersic fit")
        ax.scatter(x[~ok], fits["rel_err"][~ok], s=18, marker="x", color="C3", label="Sersic fit (failed)")
        ax.scatter(x, cnn_err, s=10, color="C0", label="CNN")
        ax.axhline(0, color="k", lw=0.8)
        ax.set(xscale="log", xlabel=label, ylim=(-1, 1))
    axes[0].set_ylabel("(R_e,est - R_e) / R_e")
    axes[0].legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    save(fig, path)
