"""HST-like bulge+disk galaxies: the offline target domain for transfer learning.

Recipe kind ``hst_bulge_disk`` (see ``registry.RECIPES``).  Same stamp format, stamp size
and pixel scale as the single-Sersic pre-training recipe, but a deliberately different domain:

* **galaxies**: a bulge (Sersic n_b ~ 2.5-5) plus a disk (n_d ~ 1), each with its own half-light
  radius, axis ratio and position angle, mixed with a bulge-to-total flux ratio B/T;
* **label**: the combined, circularised half-light radius ``r_e_arcsec`` (arcsec), *computed* by
  ``circularised_hlr`` (below): sqrt(A/pi) where A is the area of the isophote (the brightest
  region) that holds half the total light of the PSF-free profile.  For a single sheared Sersic
  this is exactly sqrt(a*b) = r_e, the definition of the pre-training labels, so the label means
  the same thing in both domains and the shift is in the images only;
* **PSF**: a diffraction-limited optical PSF (``galsim.OpticalPSF``: 2.4 m mirror, central
  obscuration, spider struts) convolved with the native detector pixel (WFC3/IR: 0.13"), as in a
  drizzled F160W mosaic, instead of the pre-training Moffat;
* **neighbours**: with some probability, one or more single-Sersic neighbours inside the stamp;
* **noise**: source Poisson noise (photon shooting) plus *correlated* Gaussian background noise
  (white noise convolved with a Gaussian kernel of ``noise_corr_px`` pixels, rescaled to the
  per-pixel variance ``sky``), the way drizzling correlates neighbouring pixels of a mosaic.

Units: sizes in arcsec, offsets and separations in pixels, fluxes in electrons.  As in the ``sersic`` recipe,
every stamp is a pure function of (seed, dataset, shard, index).
"""

from __future__ import annotations

from collections.abc import Callable

import galsim
import numpy as np
import pandas as pd
from scipy import ndimage, special

from .photometry import flux_for_snr, sersic_b
from .psf import make_psf, psf_half_light_radius
from .seeds import dataset_key, log_uniform, stamp_identity, stamp_seed


def shard_rng(seed: int, dataset: str, shard: int) -> np.random.Generator:
    """numpy Generator for the parameter table of one shard (seeded by seed, dataset, shard).

    Unlike the ``sersic`` recipe (per-stamp uniforms), the table is drawn per shard: changing
    ``per_shard`` redraws every stamp of the shard rather than appending stamps.
    """
    return np.random.default_rng(np.random.SeedSequence([seed, dataset_key(dataset), shard]))


# --------------------------------------------------------------------------- labels
def _log_sb_along_rays(log_r, log_i0, b, n, r_e, g):
    """ln surface brightness of a sum of Sersic components at radius exp(log_r) along rays.

    Shapes: ``log_r`` (N, T); component arrays (N, K, 1) (``g``: (N, K, T)).  Returns (N, T).
    """
    m = np.exp(log_r)[:, None, :] * g / r_e  # elliptical radius over r_e, per component
    return special.logsumexp(log_i0 - b * m ** (1.0 / n), axis=1)


def circularised_hlr(flux, n, r_e, q, pa_deg, n_theta: int = 32, iters: int = 40,
                     inner_iters: int = 24) -> np.ndarray:
    """Circularised half-light radius (arcsec) of sums of sheared Sersic components.

    Inputs are arrays of shape (N, K): N galaxies of K concentric components, each a GalSim-style
    Sersic of total ``flux``, index ``n`` and *circularised* half-light radius ``r_e`` (arcsec),
    sheared (area preserving) to axis ratio ``q`` with its major axis at ``pa_deg`` degrees.  A
    component of zero flux is ignored.

    Returns R = sqrt(A / pi), with A the area of the region of highest surface brightness holding
    half the total flux (the half-light isophote).  Computed semi-analytically: along a ray at
    angle theta a component's elliptical radius is m = r * g(theta) with
    g^2 = q cos^2(theta - pa) + sin^2(theta - pa) / q, so the flux of a wedge out to radius r is
    F / (2 pi g^2) * P(2n, b_n (r g / r_e)^(1/n)) (P: regularised lower incomplete gamma).  For a
    threshold t the isophote radius r_t(theta) is found by bisection on every ray (the summed
    profile decreases along each ray), the enclosed flux and area are integrated over theta with
    the (spectrally accurate) periodic midpoint rule, and t is bisected until the flux is half the
    total.  For one component R equals r_e exactly (tested).
    """
    flux, n, r_e, q, pa = (np.atleast_2d(np.asarray(a, dtype=float)) for a in (flux, n, r_e, q, pa_deg))
    flux, n, r_e, q, pa = np.broadcast_arrays(flux, n, r_e, q, pa)
    if np.any(flux < 0) or np.any(r_e <= 0) or np.any((q <= 0) | (q > 1)) or np.any(n <= 0):
        raise ValueError("circularised_hlr needs flux >= 0, r_e > 0, 0 < q <= 1 and n > 0")
    total = flux.sum(axis=1)
    if np.any(total <= 0):
        raise ValueError("circularised_hlr: every galaxy needs a positive total flux")
    # The profile is point symmetric: rays over [0, pi) cover it (each counts twice).
    theta = (np.arange(n_theta) + 0.5) * (np.pi / n_theta)
    dtheta = np.pi / n_theta

    def col(a):
        return a[:, :, None]

    n3, re3, f3 = col(n), col(r_e), col(flux)
    b3 = col(sersic_b(n))
    phi = theta[None, None, :] - np.deg2rad(col(pa))
    g = np.sqrt(col(q) * np.cos(phi) ** 2 + np.sin(phi) ** 2 / col(q))  # (N, K, T)
    with np.errstate(divide="ignore"):
        log_i0 = (np.log(f3) + 2 * n3 * np.log(b3) - np.log(2 * np.pi * n3) - 2 * np.log(re3)
                  - special.gammaln(2 * n3))
    wedge = f3 / (2 * np.pi * g**2)  # flux per radian of a whole component along each ray

    live = flux > 0
    re_min = np.where(live, r_e, np.inf).min(axis=1)
    re_max = np.where(live, r_e, 0.0).max(axis=1)
    lr_lo = np.log(re_min * 1e-6)[:, None] * np.ones((1, n_theta))  # (N, T) ray search bounds
    lr_hi = np.log(re_max * 1e3)[:, None] * np.ones((1, n_theta))

    def radius_at(log_t, lo, hi, steps):  # isophote radius ln r_t(theta), (N, T), within [lo, hi]
        for _ in range(steps):
            mid = 0.5 * (lo + hi)
            above = _log_sb_along_rays(mid, log_i0, b3, n3, re3, g) > log_t[:, None]
            lo, hi = np.where(above, mid, lo), np.where(above, hi, mid)
        return 0.5 * (lo + hi)

    def enclosed(log_r):  # flux inside the isophote, (N,)
        m = np.exp(log_r)[:, None, :] * g / re3
        frac = special.gammainc(2 * n3, b3 * m ** (1.0 / n3))
        return 2.0 * dtheta * (wedge * frac).sum(axis=(1, 2))

    # threshold bounds: brightness at the inner and outer ends of every ray
    lr_out = np.log(re_max * 100.0)[:, None] * np.ones((1, n_theta))
    lt_hi = _log_sb_along_rays(lr_lo, log_i0, b3, n3, re3, g).max(axis=1)
    lt_lo = _log_sb_along_rays(lr_out, log_i0, b3, n3, re3, g).min(axis=1)
    # Bisect the threshold; the isophote radii for thresholds inside [lt_lo, lt_hi] stay inside the
    # ray brackets [r_lo, r_hi] (r_t decreases with t), which shrink with the threshold bracket.
    r_lo, r_hi = lr_lo, lr_hi
    for _ in range(iters):
        mid = 0.5 * (lt_lo + lt_hi)
        log_r = radius_at(mid, r_lo, r_hi, inner_iters)
        too_bright = (enclosed(log_r) < 0.5 * total)  # isophote holds < half: lower the threshold
        lt_hi, lt_lo = np.where(too_bright, mid, lt_hi), np.where(too_bright, lt_lo, mid)
        r_lo = np.where(too_bright[:, None], log_r, r_lo)
        r_hi = np.where(too_bright[:, None], r_hi, log_r)
    log_r = radius_at(0.5 * (lt_lo + lt_hi), r_lo, r_hi, inner_iters)
    area = dtheta * np.exp(2 * log_r).sum(axis=1)  # 2 * sum(r^2/2 dtheta)
    return np.sqrt(area / np.pi)


# --------------------------------------------------------------------------- PSF / noise
#: the PSF is drawn once per shard at pixel_scale / PSF_OVERSAMPLE over the stamp's footprint
PSF_OVERSAMPLE = 3


def make_hst_psf(recipe: dict) -> galsim.GSObject:
    """HST-like PSF: the recipe's optical PSF convolved with the native detector pixel
    (``native_pixel_arcsec``, 0 for none), drawn once, 3x oversampled over the stamp footprint,
    and interpolated (``galsim.InterpolatedImage``, unit flux inside the footprint).

    Drawing an ``OpticalPSF`` directly into every stamp costs ~0.2 s per stamp (its k-space image
    is large); the pre-drawn PSF costs ~15 ms and differs only in the far wings beyond the stamp.
    """
    psf = make_psf(recipe["psf"])
    native = float(recipe.get("native_pixel_arcsec", 0.0))
    if native > 0:
        psf = galsim.Convolve(psf, galsim.Pixel(native))
    fine = float(recipe["pixel_scale"]) / PSF_OVERSAMPLE
    size = int(recipe["stamp"]) * PSF_OVERSAMPLE
    image = psf.drawImage(nx=size, ny=size, scale=fine, method="no_pixel")
    return galsim.InterpolatedImage(image, flux=1.0)


def noise_kernel_gain(stamp: int, corr_px: float) -> float:
    """Standard deviation of unit white noise after ``scipy.ndimage.gaussian_filter`` (wrap mode)."""
    delta = np.zeros((stamp, stamp))
    delta[0, 0] = 1.0
    return float(np.sqrt((ndimage.gaussian_filter(delta, corr_px, mode="wrap") ** 2).sum()))


def correlated_noise(rng: np.random.Generator, stamp: int, sky: float, corr_px: float, gain: float) -> np.ndarray:
    """Background noise (electrons) of per-pixel variance ``sky``, correlated by a Gaussian kernel of
    ``corr_px`` pixels (0: white), the way drizzling spreads each input pixel over its neighbours.
    ``gain`` is ``noise_kernel_gain(stamp, corr_px)``: it rescales the smoothed noise to unit variance."""
    white = rng.standard_normal((stamp, stamp))
    if corr_px > 0:
        white = ndimage.gaussian_filter(white, corr_px, mode="wrap") / gain
    return np.sqrt(sky) * white


# --------------------------------------------------------------------------- parameters
def _snapped(rng, cfg, size):
    v = rng.uniform(cfg["min"], cfg["max"], size)
    step = cfg["step"]
    return np.clip(np.round(v / step) * step, cfg["min"], cfg["max"]).round(6)


def draw_bulge_disk_params(recipe: dict, seed: int, dataset: str, shard: int) -> pd.DataFrame:
    """Parameter table of one shard of bulge+disk galaxies (distributions documented in config/README.md).

    * disk: n snapped to ``disk.n.step``, R_e log-uniform, q uniform, PA uniform on [0, 180);
    * bulge: n snapped, R_e = disk R_e * ratio (ratio log-uniform), q uniform, PA = disk PA +
      Gaussian misalignment of ``bulge.misalign_deg``;
    * B/T uniform; the label ``r_e_arcsec`` is the combined circularised half-light radius;
    * aperture S/N log-uniform, turned into a flux with ``photometry.flux_for_snr`` using the combined
      R_e and the PSF half-light radius (``sky`` is the per-pixel noise variance);
    * neighbours: Binomial(``max``, ``prob``) per stamp, each a single Sersic at a separation
      uniform in [sep_px.min, sep_px.max] pixels and a random angle, with a flux ratio to the
      central galaxy log-uniform in [flux_ratio.min, flux_ratio.max].
    """
    size = int(recipe["per_shard"])
    rng = shard_rng(seed, dataset, shard)
    scale = float(recipe["pixel_scale"])
    disk, bulge, nb = recipe["disk"], recipe["bulge"], recipe["neighbours"]

    d_n = _snapped(rng, disk["n"], size)
    d_re = log_uniform(rng, disk["r_e"]["min"], disk["r_e"]["max"], size)
    d_q = rng.uniform(disk["q"]["min"], disk["q"]["max"], size)
    d_pa = rng.uniform(0.0, 180.0, size)
    b_n = _snapped(rng, bulge["n"], size)
    b_re = d_re * log_uniform(rng, bulge["re_ratio"]["min"], bulge["re_ratio"]["max"], size)
    b_q = rng.uniform(bulge["q"]["min"], bulge["q"]["max"], size)
    b_pa = (d_pa + rng.normal(0.0, bulge["misalign_deg"], size)) % 180.0
    bt = rng.uniform(recipe["bulge_fraction"]["min"], recipe["bulge_fraction"]["max"], size)
    snr = log_uniform(rng, recipe["snr"]["min"], recipe["snr"]["max"], size)
    off = float(recipe["offset_px"])
    dx, dy = rng.uniform(-off, off, size), rng.uniform(-off, off, size)

    r_e = circularised_hlr(np.stack([bt, 1 - bt], 1), np.stack([b_n, d_n], 1), np.stack([b_re, d_re], 1),
                           np.stack([b_q, d_q], 1), np.stack([b_pa, d_pa], 1))
    psf = make_hst_psf(recipe)
    sky = float(recipe["sky"])
    flux = flux_for_snr(snr, r_e, psf_hlr=psf_half_light_radius(psf), pixel_scale=scale, sky=sky)

    k_max = int(nb["max"])
    n_nb = rng.binomial(k_max, nb["prob"], size) if k_max > 0 else np.zeros(size, int)
    nb_cols = {}
    for k in range(k_max):
        sep = rng.uniform(nb["sep_px"]["min"], nb["sep_px"]["max"], size)
        ang = rng.uniform(0.0, 2 * np.pi, size)
        present = n_nb > k
        nb_cols |= {
            f"nb{k}_dx_px": np.where(present, sep * np.cos(ang), np.nan),
            f"nb{k}_dy_px": np.where(present, sep * np.sin(ang), np.nan),
            f"nb{k}_flux": np.where(
                present, flux * log_uniform(rng, nb["flux_ratio"]["min"], nb["flux_ratio"]["max"], size), 0.0),
            f"nb{k}_n": _snapped(rng, nb["n"], size),
            f"nb{k}_r_e_arcsec": log_uniform(rng, nb["r_e"]["min"], nb["r_e"]["max"], size),
            f"nb{k}_q": rng.uniform(0.3, 1.0, size),
            f"nb{k}_pa_deg": rng.uniform(0.0, 180.0, size),
        }
    seps = np.array([np.hypot(nb_cols[f"nb{k}_dx_px"], nb_cols[f"nb{k}_dy_px"]) for k in range(k_max)])
    nearest = np.nanmin(np.where(np.isnan(seps), np.inf, seps), axis=0) if k_max else np.full(size, np.inf)
    return pd.DataFrame({
        **stamp_identity(dataset, shard, size),
        "r_e_arcsec": r_e,
        "bulge_fraction": bt,
        "bulge_n": b_n, "bulge_r_e_arcsec": b_re, "bulge_q": b_q, "bulge_pa_deg": b_pa,
        "disk_n": d_n, "disk_r_e_arcsec": d_re, "disk_q": d_q, "disk_pa_deg": d_pa,
        "snr": snr, "flux": flux, "sky": np.full(size, sky),
        "dx_px": dx, "dy_px": dy,
        "n_neighbours": n_nb.astype(np.int32),
        "nearest_neighbour_px": nearest,
        **nb_cols,
        "psf_fwhm_arcsec": np.full(size, float(psf.calculateFWHM())),
        "noise_corr_px": np.full(size, float(recipe["noise_corr_px"])),
        "pixel_scale": np.full(size, scale),
        "seed": np.full(size, seed, dtype=np.int64),
    })


# --------------------------------------------------------------------------- drawing
def sersic(n, r_e, q, pa_deg, flux) -> galsim.GSObject:
    """Sheared Sersic with circularised half-light radius r_e (arcsec)."""
    return galsim.Sersic(n=float(n), half_light_radius=float(r_e), flux=float(flux)).shear(
        q=float(q), beta=float(pa_deg) * galsim.degrees)


def bulge_disk(row) -> galsim.GSObject:
    """The PSF-free central galaxy of one catalogue row (unit-free mapping of column -> value)."""
    parts = []
    bt, flux = float(row["bulge_fraction"]), float(row["flux"])
    if bt > 0:
        parts.append(sersic(row["bulge_n"], row["bulge_r_e_arcsec"], row["bulge_q"], row["bulge_pa_deg"], bt * flux))
    if bt < 1:
        parts.append(sersic(row["disk_n"], row["disk_r_e_arcsec"], row["disk_q"], row["disk_pa_deg"], (1 - bt) * flux))
    return galsim.Add(parts) if len(parts) > 1 else parts[0]


def scene(row, scale: float) -> galsim.GSObject:
    """Central galaxy plus its neighbours (shifted by their offsets from the central one), PSF-free."""
    parts = [bulge_disk(row)]
    k = 0
    while f"nb{k}_flux" in row:
        if row[f"nb{k}_flux"] > 0:
            parts.append(sersic(row[f"nb{k}_n"], row[f"nb{k}_r_e_arcsec"], row[f"nb{k}_q"], row[f"nb{k}_pa_deg"],
                                row[f"nb{k}_flux"]).shift(row[f"nb{k}_dx_px"] * scale, row[f"nb{k}_dy_px"] * scale))
        k += 1
    return galsim.Add(parts) if len(parts) > 1 else parts[0]


def simulate_shard(recipe: dict, seed: int, dataset: str, shard: int,
                   progress: Callable[[int, int], None] | None = None, method: str | None = None):
    """One shard of HST-like bulge+disk stamps: (images (N, 1, S, S) float32 electrons, catalogue).

    ``method='fft'`` (default) draws the noiseless scene by FFT and adds the source's Poisson noise;
    ``'phot'`` shoots photons (source noise included, slower).  Either way the correlated
    background noise is added last.  Stamp i uses its own seeds (GalSim deviate and numpy
    generator) from ``seeds.stamp_seed``.
    """
    cat = draw_bulge_disk_params(recipe, seed, dataset, shard)
    method = method or recipe["method"]
    if method not in ("fft", "phot"):
        raise ValueError(f"sims.{dataset}.method: unknown drawing method {method!r} (expected 'phot' or 'fft')")
    psf = make_hst_psf(recipe)
    stamp, scale = int(recipe["stamp"]), float(recipe["pixel_scale"])
    sky, corr = float(recipe["sky"]), float(recipe["noise_corr_px"])
    gain = noise_kernel_gain(stamp, corr) if corr > 0 else 1.0
    images = np.zeros((len(cat), 1, stamp, stamp), dtype=np.float32)
    rows = cat.to_dict("records")
    order = np.argsort(cat["bulge_n"].to_numpy(), kind="stable")  # GalSim caches Sersic profiles per n
    for done, i in enumerate(order, 1):
        row = rows[i]
        s = stamp_seed(seed, dataset, shard, int(i))
        nrng = np.random.default_rng(s)
        image = galsim.ImageF(stamp, stamp, scale=scale)
        obj = galsim.Convolve(scene(row, scale), psf)
        offset = (row["dx_px"], row["dy_px"])
        if method == "phot":
            obj.drawImage(image, method="phot", rng=galsim.BaseDeviate(s), offset=offset)
            pix = image.array.astype(np.float64)
        else:
            obj.drawImage(image, offset=offset)
            mean = image.array.astype(np.float64)
            pix = nrng.poisson(np.clip(mean, 0.0, None)) + np.minimum(mean, 0.0)  # keep FFT ringing as is
        images[i, 0] = pix + correlated_noise(nrng, stamp, sky, corr, gain)
        if progress is not None:
            progress(done, len(cat))
    return images, cat

