"""Classic baseline: a PSF-convolved single-Sersic least-squares fit per galaxy (GALFIT-like).

The model is a numpy Sersic profile, integrated over each pixel by sub-sampling (``oversample``
points per pixel side everywhere and ``core_oversample`` in the few pixels round the centre, where
high-n profiles are cuspy), convolved with the *same* PSF as the simulation (drawn once by GalSim,
sampled at pixel centres, unit sum) by FFT.  ``scipy.optimize.least_squares`` minimises the
noise-weighted residuals with the Poisson sigma image sqrt(sky + max(image, 0)) (electrons, gain 1),
from a start made from image moments, within bounds.

Parameters (the vector ``p``): ln flux [electrons], centre x0, y0 [pixels from the stamp centre],
ln r_e [arcsec, circularised sqrt(ab) as in ``deepsky.sims``], Sersic n, ellipticity (g1, g2) with axis
ratio q = (1 - |g|)/(1 + |g|) and position angle atan2(g2, g1)/2.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
from scipy import optimize, signal, special

N_RANGE = (0.3, 6.2)  # GalSim's Sersic range
G_MAX = 0.9


def psf_kernel(psf_cfg: dict, stamp: int, pixel_scale: float) -> np.ndarray:
    """PSF sampled at pixel centres (no pixel response) on an odd (2*stamp-1)^2 grid, unit sum."""
    from ..sims import psf

    side = 2 * int(stamp) - 1
    img = psf.make_psf(psf_cfg).drawImage(nx=side, ny=side, scale=pixel_scale, method="no_pixel").array
    return (img / img.sum()).astype(np.float64)


def _sersic_on(x, y, p, scale):
    """Surface brightness (electrons / pixel area) at pixel coordinates x, y (relative to the centre)."""
    lnf, x0, y0, lnre, n, g1, g2 = p
    g = np.hypot(g1, g2)
    if g > G_MAX:
        g1, g2, g = g1 * G_MAX / g, g2 * G_MAX / g, G_MAX
    q = (1 - g) / (1 + g)
    beta = 0.5 * np.arctan2(g2, g1)
    dx, dy = x - x0, y - y0
    xp = np.cos(beta) * dx + np.sin(beta) * dy
    yp = -np.sin(beta) * dx + np.cos(beta) * dy
    r = np.sqrt(q * xp**2 + yp**2 / q) * scale  # circularised radius, arcsec
    re = np.exp(lnre)
    b = special.gammaincinv(2 * n, 0.5)
    ln_i0 = lnf + 2 * n * np.log(b) - np.log(2 * np.pi * n) - 2 * lnre - special.gammaln(2 * n)
    return np.exp(ln_i0 - b * (r / re) ** (1 / n)) * scale**2


def _subgrid(k: int) -> np.ndarray:
    return (np.arange(k) + 0.5) / k - 0.5


def sersic_image(p, stamp: int, scale: float, kernel: np.ndarray | None = None,
                 oversample: int = 4, core: int = 2, core_oversample: int = 16) -> np.ndarray:
    """Pixel-integrated Sersic image (stamp x stamp, electrons), PSF-convolved if ``kernel`` is given.

    Pixel (i, j) of the returned array covers x in [j - 0.5, j + 0.5] relative to the stamp centre
    (stamp - 1)/2, as GalSim's ``drawImage`` centres a profile (plus the fitted offset x0, y0).
    """
    c = (stamp - 1) / 2
    pix = np.arange(stamp) - c
    s = _subgrid(oversample)
    xs = (pix[:, None] + s[None, :]).ravel()
    img = _sersic_on(xs[None, :], xs[:, None], p, scale).reshape(stamp, oversample, stamp, oversample).mean(axis=(1, 3))
    # the cusp: re-integrate the pixels round the centre on a finer grid
    ix, iy = int(round(p[1] + c)), int(round(p[2] + c))
    j0, j1 = max(ix - core, 0), min(ix + core + 1, stamp)
    i0, i1 = max(iy - core, 0), min(iy + core + 1, stamp)
    if j1 > j0 and i1 > i0:
        sf = _subgrid(core_oversample)
        xf = ((np.arange(j0, j1) - c)[:, None] + sf[None, :]).ravel()
        yf = ((np.arange(i0, i1) - c)[:, None] + sf[None, :]).ravel()
        fine = _sersic_on(xf[None, :], yf[:, None], p, scale)
        img[i0:i1, j0:j1] = fine.reshape(i1 - i0, core_oversample, j1 - j0, core_oversample).mean(axis=(1, 3))
    if kernel is not None:
        img = signal.fftconvolve(img, kernel, mode="same")
    return img


def moments_start(image: np.ndarray, sky: float, scale: float, psf_hlr_arcsec: float) -> np.ndarray:
    """Starting point from the image: flux sum, centroid and second moments of pixels above 2 sigma.

    The observed half-light radius is taken as 1.1774 sigma (Gaussian), the PSF removed in
    quadrature; n starts at 2 (between disc and bulge).
    """
    stamp = image.shape[0]
    c = (stamp - 1) / 2
    y, x = np.mgrid[:stamp, :stamp] - c
    noise = np.sqrt(max(sky, 1e-12) + np.clip(image, 0, None))
    w = np.where(image > 2 * noise, image, 0.0)
    if w.sum() <= 0:
        w = np.clip(image, 0, None) + 1e-12
    tot = w.sum()
    x0, y0 = (w * x).sum() / tot, (w * y).sum() / tot
    ixx, iyy, ixy = ((w * (x - x0) ** 2).sum() / tot, (w * (y - y0) ** 2).sum() / tot,
                     (w * (x - x0) * (y - y0)).sum() / tot)
    tr = max(ixx + iyy, 1e-6)
    e1, e2 = (ixx - iyy) / tr, 2 * ixy / tr
    e = np.hypot(e1, e2)
    # distortion e -> shear g = e / (1 + sqrt(1 - e^2))
    g = e / (1 + np.sqrt(max(1 - e**2, 1e-9))) if e > 0 else 0.0
    g1, g2 = (e1 / e * g, e2 / e * g) if e > 0 else (0.0, 0.0)
    hlr_obs = 1.1774 * np.sqrt(tr / 2) * scale
    re = np.sqrt(max(hlr_obs**2 - psf_hlr_arcsec**2, (0.5 * scale) ** 2))
    flux = max(float(image.sum()), float(tot))
    lim = 0.8 * G_MAX / np.sqrt(2)
    return np.array([np.log(flux), np.clip(x0, -3, 3), np.clip(y0, -3, 3), np.log(re), 2.0,
                     np.clip(g1, -lim, lim), np.clip(g2, -lim, lim)])


def fit_sersic(image: np.ndarray, sky: float, scale: float, kernel: np.ndarray, psf_hlr_arcsec: float,
               max_nfev: int = 300) -> dict:
    """Fit one stamp (electrons, sky-subtracted); returns the fitted parameters and diagnostics.

    ``success`` is False when the optimiser stopped without converging (status <= 0, e.g. the
    evaluation budget ran out), a parameter ended on a bound of r_e or n, or the result is not finite.
    """
    image = np.asarray(image, float)
    stamp = image.shape[0]
    sigma = np.sqrt(max(sky, 1e-12) + np.clip(image, 0, None))
    p0 = moments_start(image, sky, scale, psf_hlr_arcsec)
    lo = np.array([p0[0] - 3, -4, -4, np.log(0.2 * scale), N_RANGE[0], -G_MAX, -G_MAX])
    hi = np.array([p0[0] + 3, 4, 4, np.log(0.5 * stamp * scale), N_RANGE[1], G_MAX, G_MAX])
    p0 = np.clip(p0, lo + 1e-6, hi - 1e-6)

    def resid(p):
        return ((sersic_image(p, stamp, scale, kernel) - image) / sigma).ravel()

    t0 = time.perf_counter()
    res = optimize.least_squares(resid, p0, bounds=(lo, hi), x_scale="jac", max_nfev=max_nfev,
                                 xtol=1e-6, ftol=1e-6)
    seconds = time.perf_counter() - t0
    p = res.x
    g = min(np.hypot(p[5], p[6]), G_MAX)
    span = hi - lo
    pinned = bool(np.any(np.abs(p[3:5] - lo[3:5]) < 1e-3 * span[3:5]) or
                  np.any(np.abs(p[3:5] - hi[3:5]) < 1e-3 * span[3:5]))
    ok = bool(res.status > 0 and np.all(np.isfinite(p)) and not pinned)
    return {"r_e_fit": float(np.exp(p[3])), "n_fit": float(p[4]), "q_fit": float((1 - g) / (1 + g)),
            "flux_fit": float(np.exp(p[0])), "x0_fit": float(p[1]), "y0_fit": float(p[2]),
            "chi2_dof": float(2 * res.cost / max(image.size - p.size, 1)), "nfev": int(res.nfev),
            "status": int(res.status), "pinned": pinned, "success": ok, "seconds": seconds,
            "r_e_start": float(np.exp(p0[3]))}


def fit_catalogue(images: np.ndarray, cat: pd.DataFrame, recipe: dict, max_nfev: int = 300,
                  progress=None) -> pd.DataFrame:
    """Fit every stamp (N, 1, S, S) of a catalogue made by ``recipe``; one row per stamp.

    Columns: id, true r_e/n/S/N, the fit's ``r_e_fit`` (arcsec) etc., ``rel_err`` =
    (r_e_fit - r_e)/r_e, ``success`` and ``seconds`` (wall-clock per galaxy).
    """
    from ..sims import psf

    scale, stamp = float(recipe["pixel_scale"]), int(recipe["stamp"])
    kernel = psf_kernel(recipe["psf"], stamp, scale)
    psf_hlr = psf.psf_half_light_radius(psf.make_psf(recipe["psf"]))
    rows = []
    for i in range(len(cat)):
        fit = fit_sersic(images[i, 0], float(cat["sky"].iloc[i]), scale, kernel, psf_hlr, max_nfev)
        rows.append(fit)
        if progress is not None:
            progress(i + 1, len(cat))
    out = pd.concat([cat[["id", "r_e_arcsec", "sersic_n", "q", "snr"]].reset_index(drop=True),
                     pd.DataFrame(rows)], axis=1)
    out["rel_err"] = (out["r_e_fit"] - out["r_e_arcsec"]) / out["r_e_arcsec"]
    return out


def summary(fits: pd.DataFrame) -> dict:
    """Median |dR_e|/R_e over successful fits and over all fits, failure count, seconds per galaxy."""
    ok = fits["success"].to_numpy(bool)
    a = fits["rel_err"].abs()
    return {"count": int(len(fits)), "failures": int((~ok).sum()),
            "median_abs_rel": float(a[ok].median()) if ok.any() else float("nan"),
            "median_abs_rel_all": float(a.median()) if len(a) else float("nan"),
            "bias": float(fits["rel_err"][ok].median()) if ok.any() else float("nan"),
            "seconds_per_galaxy": float(fits["seconds"].mean()) if len(fits) else float("nan"),
            "median_nfev": float(fits["nfev"].median()) if len(fits) else float("nan")}
