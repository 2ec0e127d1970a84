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
    """Left: empirical vs nominal interval coverage. Right: 68%/95% coverage per S/N bin, +-tol bands.

    Dashed/open: the network's Gaussian intervals; solid/filled: after the validation-split
    recalibration (``calib['recalibrated']``), when present."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(9.5, 4.0))
    recal = calib.get("recalibrated")
    a.fill_between([0, 1], [-tol, 1 - tol], [tol, 1 + tol], color="0.85", label=f"+-{tol:g}")
    a.plot([0, 1], [0, 1], "k:", lw=1)
    a.plot(calib["curve"]["level"], calib["curve"]["coverage"], "C0--", lw=1.5, label="network (Gaussian)")
    if recal:
        a.plot(recal["curve"]["level"], recal["curve"]["coverage"], "C0-", lw=2, label="recalibrated on val")
    a.set(xlim=(0, 1), ylim=(0, 1), xlabel="nominal central interval", ylabel="fraction of test galaxies inside",
          title="coverage, all S/N")
    a.legend(loc="upper left", fontsize=8)
    bins = calib["by_snr"]
    x = np.arange(len(bins))
    for level, col in ((0.68, "C0"), (0.95, "C3")):
        key, pct = f"cov{round(level * 100)}", round(level * 100)
        b.axhspan(level - tol, level + tol, color=col, alpha=0.15)
        b.axhline(level, color=col, lw=0.8, ls=":")
        b.plot(x, [r[key] for r in bins], "o--", mfc="none", color=col, label=f"{pct}%: network")
        if recal:
            b.plot(x, [r[key] for r in recal["by_snr"]], "o-", color=col, label=f"{pct}%: recalibrated")
    b.set_xticks(x, [f"{r['lo']:.0f}-{r['hi']:.0f}\n(n={r['count']})" for r in bins])
    b.set(ylim=(0.4, 1.02), xlabel="aperture S/N", ylabel="fraction of test galaxies inside", title="coverage by S/N")
    b.legend(loc="lower right", fontsize=7, ncol=2)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save(fig, path)


def baseline(fits: pd.DataFrame, cnn_pred: pd.DataFrame, comp: dict, path, title: str) -> None:
    """Left, middle: relative R_e error of the Sersic fit and the ``compare`` CNN on the same galaxies,
    against true R_e and S/N.  Right: accuracy against CPU seconds per galaxy for the fit and every
    compared model (same thread budget), with the speed-up of each."""
    sub = cnn_pred.set_index("id").loc[fits["id"]]
    cnn_err = ((sub["pred"] - sub["true"]) / sub["true"]).to_numpy()
    ok = fits["success"].to_numpy(bool)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2), gridspec_kw={"width_ratios": [1, 1, 1.1]})
    for ax, col, label in zip(axes[:2], ("r_e_arcsec", "snr"), ("true R_e [arcsec]", "aperture S/N")):
        x = fits[col].to_numpy()
        ax.scatter(x[ok], fits["rel_err"][ok], s=10, color="C1", label="Sersic fit")
        ax.scatter(x[~ok], fits["rel_err"][~ok], s=18, marker="x", color="C3", label="Sersic fit (failed)")
        ax.scatter(x, cnn_err, s=10, color="C0", label=f"CNN {comp['compare']['variant']}")
        ax.axhline(0, color="k", lw=0.8)
        ax.set(xscale="log", xlabel=label, ylim=(-1, 1))
    axes[0].set_ylabel("(R_e,est - R_e) / R_e")
    axes[1].tick_params(labelleft=False)
    axes[0].legend(fontsize=7)
    ax, f = axes[2], comp["fit"]
    ax.scatter([f["seconds_per_galaxy"]], [f["median_abs_rel_all"]], s=60, marker="s", color="C1", zorder=3)
    ax.annotate("Sersic fit", (f["seconds_per_galaxy"], f["median_abs_rel_all"]), fontsize=8,
                xytext=(-4, 6), textcoords="offset points", ha="right")
    ax.axhline(min(f["median_abs_rel"], f["median_abs_rel_all"]), color="C1", lw=0.8, ls="--")
    markers = "oDv^<>ph*P"
    for i, r in enumerate(sorted(comp["models"], key=lambda r: r["median_abs_rel_all"])):
        good = r["at_least_as_accurate"]
        ax.scatter([r["seconds_per_galaxy"]], [r["median_abs_rel_all"]], s=36, marker=markers[i % len(markers)],
                   color=f"C{(i + 2) % 10}" if good else "0.6", edgecolor="k", lw=0.4, zorder=3,
                   label=f"{r['variant']}: {r['speedup']:,.0f}x" + ("" if good else " (less accurate)"))
    ax.set(xscale="log", xlabel=f"CPU seconds per galaxy ({comp['compare']['threads']} thread)",
           ylabel="median |dR_e| / R_e (same galaxies)", title="accuracy vs cost (speed-up over the fit)")
    ax.legend(fontsize=6.5, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save(fig, path)
