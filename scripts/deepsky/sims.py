"""GalSim simulation recipes.

A *recipe* is one entry of ``config['sims']`` (a plain dict, already validated and filled with
defaults by the workflow's JSON schema).  ``simulate_shard(recipe, seed, dataset, shard)`` turns it
into one shard: float32 images (N, bands, H, W) and a catalogue with one row per stamp.

Conventions (units matter):

* sizes and PSF widths are in **arcsec**; offsets are in **pixels**;
* ``r_e_arcsec`` is the *circularised* half-light radius sqrt(a*b) of the intrinsic (PSF-free)
  profile: GalSim's ``shear`` preserves area, so a profile built with ``half_light_radius=r_e`` and
  then sheared to axis ratio q has its half light inside the ellipse a = r_e/sqrt(q),
  b = r_e*sqrt(q).  ``r_e_major_arcsec`` = a is given too;
* fluxes and images are in electrons (gain 1), sky-subtracted, with the Poisson noise of source and
  sky.

Every stamp is a pure function of (seed, dataset, shard, index): its parameters are drawn from
``numpy.random.SeedSequence([seed, crc32(dataset), shard, index, 1])`` and its photons and noise
from its own ``galsim.BaseDeviate`` seeded from (seed, dataset, shard, index).  Stamps
are *drawn* in order of Sersic index (GalSim keeps a small cache of Sersic profiles per n) but
stored in index order, so the result does not depend on processing order or process count.
"""

from __future__ import annotations

import math
import zlib
from typing import Callable

import galsim
import numpy as np
import pandas as pd
from scipy import special

# An FFT bigger than maximum_fft_size would otherwise only warn and then allocate many GB.
galsim.errors.raise_fft_size_error = True


# --------------------------------------------------------------------------- seeds
def dataset_key(dataset: str) -> int:
    """Stable 32-bit integer for a dataset name (CRC-32 of its UTF-8 bytes)."""
    return zlib.crc32(dataset.encode("utf-8"))


def stamp_seed(seed: int, dataset: str, shard: int, index: int) -> int:
    """Positive 31-bit seed for one stamp's GalSim deviate (0 would mean 'seed from the clock')."""
    state = np.random.SeedSequence([seed, dataset_key(dataset), shard, index]).generate_state(1)
    return int(state[0] % (2**31 - 1)) + 1


# --------------------------------------------------------------------------- distributions
def log_uniform(rng: np.random.Generator, lo: float, hi: float, size: int) -> np.ndarray:
    """Draws uniform in ln(x) between lo and hi (both > 0)."""
    return np.exp(rng.uniform(np.log(lo), np.log(hi), size))


def sersic_b(n) -> np.ndarray:
    """b_n such that half the light of a Sersic profile of index n lies inside R_e."""
    return special.gammaincinv(2.0 * np.asarray(n, dtype=float), 0.5)


def sersic_enclosed_fraction(r, r_e, n) -> np.ndarray:
    """Fraction of a circular Sersic profile's total light inside radius r (same units as r_e)."""
    n = np.asarray(n, dtype=float)
    x = sersic_b(n) * (np.asarray(r, dtype=float) / np.asarray(r_e, dtype=float)) ** (1.0 / n)
    return special.gammainc(2.0 * n, x)


# --------------------------------------------------------------------------- PSF
def make_psf(psf_cfg: dict) -> galsim.GSObject:
    """Build the PSF from its config (FWHM and diameters in arcsec / metres, wavelength in nm)."""
    kind = psf_cfg["profile"]
    if kind == "moffat":
        return galsim.Moffat(beta=psf_cfg["beta"], fwhm=psf_cfg["fwhm"])
    if kind == "gaussian":
        return galsim.Gaussian(fwhm=psf_cfg["fwhm"])
    if kind == "kolmogorov":
        return galsim.Kolmogorov(fwhm=psf_cfg["fwhm"])
    if kind == "airy":
        # Diffraction-limited space telescope: lam/D in arcsec, central obscuration, struts.
        lam_over_diam = psf_cfg["lam_nm"] * 1e-9 / psf_cfg["diam_m"] * 206264.80624709636
        return galsim.OpticalPSF(
            lam_over_diam=lam_over_diam,
            obscuration=psf_cfg.get("obscuration", 0.0),
            nstruts=psf_cfg.get("nstruts", 0),
            strut_thick=psf_cfg.get("strut_thick", 0.05),
            strut_angle=psf_cfg.get("strut_angle_deg", 0.0) * galsim.degrees,
            defocus=psf_cfg.get("defocus", 0.0),
        )
    raise ValueError(f"unknown PSF profile {kind!r} (expected moffat, gaussian, kolmogorov or airy)")


def psf_half_light_radius(psf: galsim.GSObject) -> float:
    """Half-light radius of a PSF in arcsec (analytic where GalSim has it, else measured)."""
    try:
        return float(psf.half_light_radius)
    except AttributeError:
        return float(psf.calculateHLR(scale=0.005, size=512))


# --------------------------------------------------------------------------- S/N
def flux_for_snr(snr, r_e, psf_hlr, pixel_scale, sky):
    """Total flux (electrons) that gives aperture signal-to-noise ``snr``.

    S/N is defined in the aperture of radius R_h = sqrt(r_e**2 + psf_hlr**2) (arcsec), an estimate
    of the observed half-light radius, which holds half the flux F:
    ``snr = (F/2) / sqrt(F/2 + A * sky)`` with A = pi R_h**2 in pixels and ``sky`` the sky level
    in electrons per pixel.  Solved exactly for F.
    """
    snr = np.asarray(snr, dtype=float)
    area = np.pi * (np.hypot(r_e, psf_hlr) / pixel_scale) ** 2
    s2 = snr**2
    half = 0.5 * (s2 + np.sqrt(s2**2 + 4.0 * s2 * area * sky))
    return 2.0 * half


# --------------------------------------------------------------------------- Sersic recipe
def stamp_identity(dataset: str, shard: int, n: int) -> dict:
    """The provenance columns every shard catalogue starts with: id, dataset, shard, index."""
    return {
        "id": [f"{dataset}-{shard:04d}-{i:06d}" for i in range(n)],
        "dataset": dataset,
        "shard": np.full(n, shard, dtype=np.int32),
        "index": np.arange(n, dtype=np.int32),
    }


def stamp_uniforms(seed: int, dataset: str, shard: int, index: int, k: int) -> np.ndarray:
    """k uniform [0, 1) draws that belong to one stamp alone (independent of the shard's length)."""
    return np.random.default_rng(np.random.SeedSequence([seed, dataset_key(dataset), shard, index, 1])).random(k)


def draw_sersic_params(recipe: dict, seed: int, dataset: str, shard: int) -> pd.DataFrame:
    """Parameter table of one shard of single-Sersic galaxies (documented distributions).

    * Sersic n: uniform on [n.min, n.max], then snapped to a grid of ``n.step`` (GalSim caches
      profiles per n, so a grid keeps draws fast; the label is the snapped value);
    * r_e (circularised, arcsec): log-uniform on [r_e.min, r_e.max];
    * axis ratio q: uniform on [q.min, q.max]; position angle uniform on [0, 180) deg;
    * aperture S/N (see ``flux_for_snr``): log-uniform on [snr.min, snr.max];
    * centre offset: uniform in +-``offset_px`` pixels on each axis.

    Row i depends only on (seed, dataset, shard, i): growing ``per_shard`` appends stamps and
    leaves the existing ones unchanged.
    """
    n_stamps = int(recipe["per_shard"])
    scale = float(recipe["pixel_scale"])
    n_cfg, re_cfg, q_cfg, snr_cfg = recipe["sersic_n"], recipe["r_e"], recipe["q"], recipe["snr"]
    u = np.array([stamp_uniforms(seed, dataset, shard, i, 7) for i in range(n_stamps)]).reshape(n_stamps, 7)

    def lin(x, lo, hi):
        return lo + (hi - lo) * x

    def loglin(x, lo, hi):
        return np.exp(lin(x, np.log(lo), np.log(hi)))

    step = n_cfg["step"]
    n = np.clip(np.round(lin(u[:, 0], n_cfg["min"], n_cfg["max"]) / step) * step, n_cfg["min"], n_cfg["max"]).round(6)
    r_e = loglin(u[:, 1], re_cfg["min"], re_cfg["max"])
    q = lin(u[:, 2], q_cfg["min"], q_cfg["max"])
    pa = lin(u[:, 3], 0.0, 180.0)
    snr = loglin(u[:, 4], snr_cfg["min"], snr_cfg["max"])
    off = float(recipe["offset_px"])
    dx = lin(u[:, 5], -off, off)
    dy = lin(u[:, 6], -off, off)

    psf = make_psf(recipe["psf"])
    psf_hlr = psf_half_light_radius(psf)
    sky = float(recipe["sky"])
    flux = flux_for_snr(snr, r_e, psf_hlr, scale, sky)
    half_width = 0.5 * recipe["stamp"] * scale
    return pd.DataFrame(
        {
            **stamp_identity(dataset, shard, n_stamps),
            "sersic_n": n,
            "r_e_arcsec": r_e,
            "r_e_major_arcsec": r_e / np.sqrt(q),
            "q": q,
            "pa_deg": pa,
            "snr": snr,
            "flux": flux,
            "sky": np.full(n_stamps, sky),
            "dx_px": dx,
            "dy_px": dy,
            "psf_fwhm_arcsec": np.full(n_stamps, float(psf.calculateFWHM())),
            "pixel_scale": np.full(n_stamps, scale),
            # PSF-free light inside the circle inscribed in the stamp (circularised profile).
            "frac_in_stamp_circle": sersic_enclosed_fraction(half_width, r_e, n),
            "seed": np.full(n_stamps, seed, dtype=np.int64),
        }
    )


def sersic_galaxy(n: float, r_e: float, q: float, pa_deg: float, flux: float = 1.0) -> galsim.GSObject:
    """GalSim Sersic galaxy whose *circularised* half-light radius is r_e (arcsec)."""
    gal = galsim.Sersic(n=float(n), half_light_radius=float(r_e), flux=float(flux))
    return gal.shear(q=float(q), beta=float(pa_deg) * galsim.degrees)


def render(obj: galsim.GSObject, stamp: int, scale: float, dx: float, dy: float,
           sky: float, rng: galsim.BaseDeviate, method: str = "phot") -> np.ndarray:
    """Draw ``obj`` (already PSF-convolved) on a stamp and add sky Poisson noise.

    ``method='phot'`` shoots photons: the source's Poisson noise comes for free and the cost grows
    with the flux; ``'fft'`` draws the noiseless image by FFT and adds Poisson noise of source and
    sky (GalSim's default, slower for cuspy high-n profiles).  The sky is subtracted.
    """
    image = galsim.ImageF(stamp, stamp, scale=scale)
    if method == "phot":
        obj.drawImage(image, method="phot", rng=rng, offset=(dx, dy))
        if sky > 0:
            image.addNoise(galsim.PoissonNoise(rng, sky_level=sky))
    elif method == "fft":
        obj.drawImage(image, offset=(dx, dy))
        image.addNoise(galsim.PoissonNoise(rng, sky_level=sky))
    else:
        raise ValueError(f"unknown drawing method {method!r} (expected 'phot' or 'fft')")
    return image.array


def simulate_sersic_shard(recipe: dict, seed: int, dataset: str, shard: int,
                          method: str | None = None, progress: Callable[[int, int], None] | None = None):
    """One shard of PSF-convolved, noisy single-Sersic galaxies: (images, catalogue)."""
    cat = draw_sersic_params(recipe, seed, dataset, shard)
    method = method or recipe["method"]
    psf = make_psf(recipe["psf"])
    stamp, scale = int(recipe["stamp"]), float(recipe["pixel_scale"])
    images = np.zeros((len(cat), 1, stamp, stamp), dtype=np.float32)
    order = np.argsort(cat["sersic_n"].to_numpy(), kind="stable")
    cols = {c: cat[c].to_numpy() for c in ("sersic_n", "r_e_arcsec", "q", "pa_deg", "flux", "dx_px", "dy_px", "sky")}
    for done, i in enumerate(order, 1):
        gal = sersic_galaxy(cols["sersic_n"][i], cols["r_e_arcsec"][i], cols["q"][i], cols["pa_deg"][i], cols["flux"][i])
        rng = galsim.BaseDeviate(stamp_seed(seed, dataset, shard, int(i)))
        images[i, 0] = render(galsim.Convolve(gal, psf), stamp, scale, cols["dx_px"][i], cols["dy_px"][i],
                              cols["sky"][i], rng, method)
        if progress is not None:
            progress(done, len(cat))
    return images, cat


def half_light_check(n: float, r_e: float, q: float, pa_deg: float, aperture: float = 1.0,
                     photons: int = 2_000_000, seed: int = 1234) -> float:
    """Fraction of a noiseless, PSF-free rendering inside the label's half-light ellipse.

    The galaxy is built exactly as the simulation builds it (``sersic_galaxy``), drawn by photon
    shooting (the exact light distribution, no pixel response, ``photons`` photons of equal flux)
    on a grid of b/25 pixels, and summed inside the ellipse a = aperture*r_e/sqrt(q),
    b = aperture*r_e*sqrt(q) at position angle pa.  A true label gives 0.5 (statistical error
    ~0.5/sqrt(photons)).
    """
    gal = sersic_galaxy(n, r_e, q, pa_deg, flux=1.0)
    a, b = aperture * r_e / np.sqrt(q), aperture * r_e * np.sqrt(q)
    scale = b / 25.0
    size = int(2 * 1.1 * a / scale) + 2
    image = galsim.ImageD(size, size, scale=scale)
    gal.drawImage(image, method="phot", n_photons=photons, poisson_flux=False, rng=galsim.BaseDeviate(seed))
    y, x = (np.mgrid[:size, :size] - (size - 1) / 2.0) * scale
    t = np.radians(pa_deg)
    u = x * np.cos(t) + y * np.sin(t)
    v = -x * np.sin(t) + y * np.cos(t)
    return float(image.array[(u / a) ** 2 + (v / b) ** 2 <= 1.0].sum())  # total flux is 1


def stamp_containment(n: float, r_e: float, recipe: dict, photons: int = 1_000_000, seed: int = 99) -> float:
    """Fraction of a PSF-convolved galaxy's light that lands inside the recipe's stamp (round galaxy)."""
    obj = galsim.Convolve(sersic_galaxy(n, r_e, 1.0, 0.0, flux=1.0), make_psf(recipe["psf"]))
    image = galsim.ImageD(recipe["stamp"], recipe["stamp"], scale=recipe["pixel_scale"])
    obj.drawImage(image, method="phot", n_photons=photons, poisson_flux=False, rng=galsim.BaseDeviate(seed))
    return float(image.array.sum())


#: Registry of simulation recipes by ``kind``: each returns (images, catalogue) for one shard.
SIMULATORS: dict[str, Callable] = {"sersic": simulate_sersic_shard}


def simulate_shard(recipe: dict, seed: int, dataset: str, shard: int, progress=None):
    """Dispatch on ``recipe['kind']``."""
    kind = recipe["kind"]
    try:
        sim = SIMULATORS[kind]
    except KeyError:
        raise ValueError(f"sims.{dataset}.kind: unknown recipe kind {kind!r}; known: {sorted(SIMULATORS)}") from None
    return sim(recipe, seed, dataset, shard, progress=progress)


# Recipes that live in their own modules add themselves to SIMULATORS on import (they use the
# helpers above, so they are imported last).
from . import sims_hst  # noqa: E402,F401  (kind 'hst_bulge_disk': the offline transfer target)
from . import stargal  # noqa: E402,F401  (kind 'stargal': SDSS-like ugriz stars and galaxies)
