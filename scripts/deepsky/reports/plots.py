"""Figures (matplotlib, Agg backend): written as PNG, atomically, at a fixed DPI."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from .. import io  # noqa: E402

plt.rcParams.update({"figure.dpi": 110, "axes.grid": True, "grid.alpha": 0.3, "font.size": 9,
                     "svg.hashsalt": "deepsky", "image.cmap": "viridis"})


def save(fig, path: str | os.PathLike) -> None:
    """Save a figure to PNG atomically (fixed metadata, so the bytes depend only on the content)."""
    with io.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", metadata={"Software": None})
    plt.close(fig)


def _running(x, y, bins):
    centres, med, lo, hi = [], [], [], []
    for a, b in zip(bins[:-1], bins[1:]):
        sel = (x >= a) & (x < b)
        if sel.sum() < 5:
            continue
        centres.append(0.5 * (a + b))
        q = np.quantile(y[sel], [0.16, 0.5, 0.84])
        lo.append(q[0]), med.append(q[1]), hi.append(q[2])
    return np.array(centres), np.array(med), np.array(lo), np.array(hi)


def pred_vs_true(true, pred, colour, colour_label: str, path, title: str, unit: str = "arcsec") -> None:
    """Log-log predicted vs true, coloured by a third quantity (e.g. S/N), with the 1:1 line."""
    fig, ax = plt.subplots(figsize=(5, 4.4))
    sc = ax.scatter(true, pred, c=colour, s=4, alpha=0.6, norm=matplotlib.colors.LogNorm(), rasterized=True)
    lo, hi = float(np.min(true)) * 0.8, float(np.max(true)) * 1.25
    ax.plot([lo, hi], [lo, hi], "k--", lw=1, label="1:1")
    ax.set(xscale="log", yscale="log", xlim=(lo, hi), ylim=(lo, hi), xlabel=f"true R_e [{unit}]",
           ylabel=f"predicted R_e [{unit}]", title=title)
    fig.colorbar(sc, ax=ax, label=colour_label)
    ax.legend(loc="upper left")
    save(fig, path)


def residuals(df: pd.DataFrame, columns: dict, path, title: str) -> None:
    """Relative residual (pred - true)/true against each column: points, running median, 16-84%."""
    fig, axes = plt.subplots(1, len(columns), figsize=(4.2 * len(columns), 3.6), sharey=True)
    d = (df["pred"] - df["true"]) / df["true"]
    for ax, (col, (label, log)) in zip(np.atleast_1d(axes), columns.items()):
        x = df[col].to_numpy(float)
        ax.scatter(x, d, s=2, alpha=0.25, color="0.4", rasterized=True)
        bins = np.geomspace(x.min(), x.max(), 12) if log else np.linspace(x.min(), x.max(), 12)
        c, m, lo, hi = _running(x, d.to_numpy(), bins)
        ax.plot(c, m, "C3-", lw=2, label="median")
        ax.fill_between(c, lo, hi, color="C3", alpha=0.2, label="16-84%")
        ax.axhline(0, color="k", lw=0.8)
        ax.set(xlabel=label, xscale="log" if log else "linear", ylim=(-0.6, 0.6))
    np.atleast_1d(axes)[0].set_ylabel("(pred - true) / true")
    np.atleast_1d(axes)[0].legend(loc="upper right")
    fig.suptitle(title)
    fig.tight_layout()
    save(fig, path)


def learning_curves(history: pd.DataFrame, path, title: str) -> None:
    """Training and validation loss per epoch (log scale)."""
    fig, ax = plt.subplots(figsize=(5, 3.6))
    for col, style in (("loss", "C0-"), ("val_loss", "C1-")):
        if col in history:
            ax.plot(history["epoch"], history[col], style, marker="o", ms=3, label=col.replace("_", " "))
    if "val_loss" in history and len(history):
        best = history["val_loss"].idxmin()
        ax.axvline(history.loc[best, "epoch"], color="k", ls=":", lw=1, label="best (restored)")
    ax.set(xlabel="epoch", ylabel="loss", yscale="log", title=title)
    ax.legend()
    save(fig, path)


def gallery(images: np.ndarray, captions: list[str], path, title: str, ncols: int = 6) -> None:
    """Stamps (N, H, W) with an asinh stretch and a caption each."""
    n = len(images)
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(1.7 * ncols, 1.9 * nrows))
    for ax in np.atleast_1d(axes).ravel():
        ax.axis("off")
    for ax, im, cap in zip(np.atleast_1d(axes).ravel(), images, captions):
        scale = max(float(np.percentile(np.abs(im), 99.5)), 1e-12)
        ax.imshow(np.arcsinh(im / (0.05 * scale)), origin="lower", cmap="gray_r", interpolation="nearest")
        ax.set_title(cap, fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    save(fig, path)


def transfer_budget(table: pd.DataFrame, path, title: str) -> None:
    """Median |dR|/R and bias against the number of target labels, one line per strategy.

    ``table`` has columns strategy, budget, median_abs_rel, bias; budget-0 rows (zero-shot) are
    drawn as horizontal lines.
    """
    fig, axes = plt.subplots(1, 2, figsize=(9.5, 3.8))
    for i, (strategy, rows) in enumerate(table.groupby("strategy", sort=False)):
        rows = rows.sort_values("budget")
        for ax, col in zip(axes, ("median_abs_rel", "bias")):
            if (rows["budget"] == 0).all():
                ax.axhline(float(rows[col].iloc[0]), color="k", ls="--", lw=1.2, label=strategy)
            else:
                ax.plot(rows["budget"], rows[col], f"C{i}-o", ms=4, label=strategy)
    axes[0].set(xscale="log", yscale="log", xlabel="target labels (train + validation)",
                ylabel="median |dR_e| / R_e")
    axes[1].axhline(0, color="0.5", lw=0.8)
    axes[1].set(xscale="log", xlabel="target labels (train + validation)", ylabel="bias: median dR_e / R_e")
    axes[0].legend()
    fig.suptitle(title)
    fig.tight_layout()
    save(fig, path)


# --------------------------------------------------------------------------- classification
def _num(v) -> float:
    """None (an undefined metric in a JSON report) -> NaN, which matplotlib leaves as a gap."""
    return float("nan") if v is None else float(v)


def roc(curves: dict, path, title: str, zoom: float = 0.1) -> None:
    """ROC curves {label: (fpr, tpr, auc)}: full range and a zoom on the low false-positive corner."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 4))
    for k, (label, (fpr, tpr, auc)) in enumerate(curves.items()):
        for ax in axes:
            ax.plot(fpr, tpr, f"C{k}-", lw=1.5, label=f"{label} (AUC {auc:.4f})")
    axes[0].plot([0, 1], [0, 1], "k:", lw=0.8)
    axes[0].set(xlabel="false positive rate (galaxies called stars)", ylabel="true positive rate (stars)",
                xlim=(0, 1), ylim=(0, 1.01), title="ROC")
    axes[1].set(xlabel="false positive rate", ylabel="true positive rate", xlim=(0, zoom),
                ylim=(1 - 3 * zoom, 1.005), title="zoom")
    axes[0].legend(loc="lower right")
    fig.suptitle(title)
    fig.tight_layout()
    save(fig, path)


def purity_completeness(by_mag: dict, path, title: str, mag_label: str = "r [mag]") -> None:
    """Star and galaxy purity and completeness against magnitude, one line per method.

    ``by_mag``: {method: [ {lo, hi, star_purity, star_completeness, galaxy_purity,
    galaxy_completeness, count}, ...]}.
    """
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.8), sharey=True)
    styles = {"purity": "-", "completeness": "--"}
    for ax, cls in zip(axes, ("star", "galaxy")):
        for k, (method, rows) in enumerate(by_mag.items()):
            rows = [r for r in rows if r["count"] > 0]
            x = [0.5 * (r["lo"] + r["hi"]) for r in rows]
            for what, ls in styles.items():
                ax.plot(x, [_num(r[f"{cls}_{what}"]) for r in rows], f"C{k}{ls}", marker="o", ms=3,
                        label=f"{method} {what}")
        ax.set(xlabel=mag_label, title={"star": "stars", "galaxy": "galaxies"}[cls], ylim=(None, 1.005))
        ax.legend(loc="lower left", fontsize=7)
    axes[0].set_ylabel("purity / completeness")
    fig.suptitle(title)
    fig.tight_layout()
    save(fig, path)


def reliability(table: list[dict], path, title: str) -> None:
    """Reliability diagram: observed star fraction against mean predicted probability per bin,
    with the bin counts below."""
    fig, (ax, axn) = plt.subplots(2, 1, figsize=(4.6, 5.2), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    rows = [r for r in table if r["count"] > 0]
    ax.plot([0, 1], [0, 1], "k:", lw=0.8, label="perfect calibration")
    ax.plot([_num(r["mean_prob"]) for r in rows], [_num(r["frac_pos"]) for r in rows], "C0-o", ms=4, label="model")
    ax.set(ylabel="observed star fraction", xlim=(0, 1), ylim=(0, 1), title=title)
    ax.legend(loc="upper left")
    axn.bar([0.5 * (r["lo"] + r["hi"]) for r in table], [max(r["count"], 0.5) for r in table],
            width=[0.9 * (r["hi"] - r["lo"]) for r in table], color="0.5", log=True)
    axn.set(xlabel="predicted P(star)", ylabel="count")
    fig.tight_layout()
    save(fig, path)


def gri_composite(stamp: np.ndarray, bands: tuple[int, int, int] = (3, 2, 1), q: float = 8.0) -> np.ndarray:
    """(H, W, 3) RGB in [0, 1] from a (bands, H, W) stamp (ugriz order: i, r, g -> R, G, B), with a
    Lupton et al. (2004) asinh stretch whose scale is set by the stamp's own brightest pixels."""
    rgb = np.stack([stamp[b] for b in bands], axis=-1).astype(float)
    total = rgb.mean(axis=-1)
    scale = max(float(np.percentile(total, 99.5)), 1e-12)
    f = np.arcsinh(q * np.clip(total, 0, None) / scale) / (q * np.maximum(total, 1e-30))
    out = rgb * f[..., None]
    out = np.clip(out, 0, None)
    peak = np.maximum(out.max(axis=-1, keepdims=True), 1.0)  # keep colours where a pixel saturates
    return np.clip(out / peak, 0, 1)


def colour_gallery(images: np.ndarray, captions: list[str], path, title: str, ncols: int = 6) -> None:
    """gri colour composites of (N, 5, H, W) ugriz stamps with a caption each."""
    n = max(len(images), 1)
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(1.7 * ncols, 1.95 * nrows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, im, cap in zip(axes.ravel(), images, captions):
        ax.imshow(gri_composite(im), origin="lower", interpolation="nearest")
        ax.set_title(cap, fontsize=6.5)
    if len(images) == 0:
        axes.ravel()[0].text(0.5, 0.5, "no misclassified test stamps", ha="center", va="center")
    fig.suptitle(title)
    fig.tight_layout()
    save(fig, path)
