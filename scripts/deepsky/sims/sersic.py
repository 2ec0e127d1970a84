"""The ``sersic`` recipe: PSF-convolved, noisy single-Sersic galaxies (the size task's data).

A *recipe* is one entry of ``config['sims']`` (a plain dict, already validated and filled with
defaults by the workflow's JSON schema).  ``simulate_shard(recipe, seed, dataset, shard)`` turns a
recipe of kind ``sersic`` into one shard: float32 images (N, 1, H, W) and a catalogue with one row
per stamp (``registry.simulate_shard`` dispatches here).

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

from collections.abc import Callable

import galsim
import numpy as np
import pandas as pd

from .photometry import flux_for_snr, sersic_enclosed_fraction
from .psf import make_psf, psf_half_light_radius
from .seeds import stamp_identity, stamp_seed, stamp_uniforms


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


def simulate_shard(recipe: dict, seed: int, dataset: str, shard: int,
                   progress: Callable[[int, int], None] | None = None, method: str | None = None):
    """One shard of PSF-convolved, noisy single-Sersic galaxies: (images, catalogue)."""
    cat = draw_sersic_params(recipe, seed, dataset, shard)
    method = method or recipe["method"]
    psf = make_psf(recipe["psf"])
    stamp, scale = int(recipe["stamp"]), float(recipe["pixel_scale"])
    images = np.zeros((len(cat), 1, stamp, stamp), dtype=np.float32)
    order = np.argsort(cat["sersic_n"].to_numpy(), kind="stable")
    cols = {c: cat[c].to_numpy() for c in ("sersic_n", "r_e_arcsec", "q", "pa_deg", "flux", "dx_px", "dy_px", "sky")}
    for done, i in enumerate(order, 1):
        gal = sersic_galaxy(cols["sersic_n"][i], cols["r_e_arcsec"][i], cols["q"][i], cols["pa_deg"][i],
                            cols["flux"][i])
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
