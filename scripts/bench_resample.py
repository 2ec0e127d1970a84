#!/usr/bin/env python3
"""Resampling candidates compared on flux, noise, size and speed, printed (never asserted): run from the repo root.

    python scripts/bench_resample.py [--stamps 20]

For scale ratios 2, 3 and 1.7, shrinking (0.03"/px -> 0.03*ratio) and enlarging (0.03*ratio -> 0.03), each
candidate resamples centred square stamps (as ``deepsky predict --stamps`` does) and the table shows:

* ``flux pt`` / ``flux ser``: relative error of the total flux of an unresolved Gaussian (FWHM 0.8 input
  pixels, off-centre) and of a Sersic (n 1.5, hlr 5 coarse pixels, truncated at 4 hlr: all light on both
  stamps);
* ``noise``: measured white-noise sigma per output pixel / the area-weighted expectation
  sigma * sqrt(mean over pixels of sum_q w_q**2), w_q the fraction of input pixel q an output pixel covers
  (k for an integer shrink by k, 1/k**2 for an integer enlargement);
* ``hlr``: relative change of the Sersic's half-light radius (curve of growth, photutils exact apertures)
  against the same Sersic drawn by GalSim directly on the output grid;
* ``stamps/s``: 64 x 64 output stamps per second on one core (``--stamps`` of them, after one warm-up).

Candidates: the former deepsky path (cubic spline point-sampled, times the pixel-area ratio), reproject's
``reproject_exact`` and ``reproject_adaptive(conserve_flux=True)`` (Gaussian and Hann kernels), GalSim's
``InterpolatedImage`` (quintic) drawn on the new grid (integrated over its pixels), and deepsky's
``cutouts.resample_stamps``.  A last table times ``cutouts.cut`` from an image: a band aligned with the
stamp grid (separable path) and a band rotated by 30 deg (``reproject_exact`` path), and one line times
``resample_stamps`` on a whole cube (the overlap matrices are built once per cube).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import galsim  # noqa: E402
import numpy as np  # noqa: E402
from astropy.wcs import WCS  # noqa: E402

from deepsky import cutouts  # noqa: E402

FINE, COARSE_PX = 0.03, 64
CASES = [(r, d) for r in (2.0, 3.0, 1.7) for d in ("shrink", "enlarge")]


def one_core() -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})


def tan(scale: float, n: int, rot_deg: float = 0.0) -> WCS:
    w = WCS(naxis=2)
    w.wcs.ctype, w.wcs.crval = ["RA---TAN", "DEC--TAN"], [150.1, 2.2]
    w.wcs.crpix = [(n + 1) / 2.0] * 2
    t = np.deg2rad(rot_deg)
    w.wcs.cd = np.array([[-scale, 0], [0, scale]]) @ np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]]) / 3600
    return w


# ----------------------------------------------------------------------------- candidates
def spline(x, s_in, s_out, n):
    """The former deepsky resampling: cubic spline at the output pixel centres, times (s_out/s_in)**2."""
    from scipy import ndimage

    step, c = s_out / s_in, (x.shape[-1] - 1) / 2
    off = (np.arange(n) - (n - 1) / 2) * step + c
    yy, xx = np.meshgrid(off, off, indexing="ij")
    return ndimage.map_coordinates(x, [yy.ravel(), xx.ravel()], order=3, mode="constant").reshape(n, n) * step ** 2


def exact(x, s_in, s_out, n):
    from reproject import reproject_exact

    mean, cov = reproject_exact((x, tan(s_in, x.shape[-1])), tan(s_out, n), shape_out=(n, n))
    return np.nan_to_num(mean * cov) * (s_out / s_in) ** 2


def adaptive(kernel):
    def run(x, s_in, s_out, n):
        from reproject import reproject_adaptive

        out, _ = reproject_adaptive((x, tan(s_in, x.shape[-1])), tan(s_out, n), shape_out=(n, n), conserve_flux=True,
                                    kernel=kernel, boundary_mode="constant", boundary_fill_value=0.0)
        return np.nan_to_num(out)  # conserve_flux: already flux per output pixel
    return run


def interpolated_image(x, s_in, s_out, n):
    ii = galsim.InterpolatedImage(galsim.Image(np.ascontiguousarray(x), scale=s_in), x_interpolant="quintic",
                                  normalization="flux")
    return ii.drawImage(nx=n, ny=n, scale=s_out).array  # method 'auto': integrated over the output pixels


def deepsky(x, s_in, s_out, n):
    return cutouts.resample_stamps(x[None, None], s_in, s_out, n)[0, 0]


CANDIDATES = {"former spline": spline, "reproject_exact": exact, "adaptive gaussian": adaptive("gaussian"),
              "adaptive hann": adaptive("hann"), "galsim quintic": interpolated_image, "deepsky": deepsky}


# ----------------------------------------------------------------------------- measurements
def geometry(ratio, direction):
    coarse = FINE * ratio
    fine_px = int(np.floor(COARSE_PX * ratio))
    return (FINE, fine_px + 4, coarse, COARSE_PX) if direction == "shrink" else (coarse, COARSE_PX + 2, FINE, fine_px)


def draw(obj, scale, n, offset=(0.0, 0.0)):
    gsp = galsim.GSParams(folding_threshold=1e-4, maxk_threshold=1e-4, kvalue_accuracy=1e-6)
    return obj.withGSParams(gsp).drawImage(nx=n, ny=n, scale=scale, offset=offset).array.astype(np.float64)


def sum_w2(n_out, step, centre, n_in):
    j = np.arange(n_out) - (n_out - 1) / 2.0
    lo, hi = centre + (j - 0.5) * step, centre + (j + 0.5) * step
    q = np.arange(n_in) - 0.5
    frac = np.clip(hi[:, None] - q, 0, 1) - np.clip(lo[:, None] - q, 0, 1)
    return (frac ** 2).sum(axis=1)


def hlr(img, scale):
    from photutils.centroids import centroid_com
    from photutils.profiles import CurveOfGrowth

    cog = CurveOfGrowth(img, centroid_com(img), np.arange(0.5, img.shape[0] / 2 - 1.5, 0.1))
    cog.normalize()
    return float(cog.calc_radius_at_ee(0.5)) * scale


def quality(f, ratio, direction, rng):
    s_in, n_in, s_out, n_out = geometry(ratio, direction)
    gal = galsim.Sersic(n=1.5, half_light_radius=5 * FINE * ratio, trunc=20 * FINE * ratio,
                        flux=1000.0).shear(q=0.8, beta=30 * galsim.degrees)
    pt = draw(galsim.Gaussian(fwhm=0.8 * s_in, flux=500.0), s_in, n_in, offset=(1.37, -2.21))
    ser = draw(gal, s_in, n_in)
    out_ser = f(ser, s_in, s_out, n_out)
    noise = np.std([f(rng.normal(size=(n_in, n_in)), s_in, s_out, n_out) for _ in range(4)])
    c = (n_in - 1) / 2
    want = np.sqrt(sum_w2(n_out, s_out / s_in, c, n_in).mean() ** 2)
    return (f(pt, s_in, s_out, n_out).sum() / pt.sum() - 1, out_ser.sum() / ser.sum() - 1, noise / want,
            hlr(out_ser, s_out) / hlr(draw(gal, s_out, n_out), s_out) - 1)


def speed(f, ratio, direction, stamps, rng):
    s_in, s_out = (FINE, FINE * ratio) if direction == "shrink" else (FINE * ratio, FINE)
    n_in = int(np.ceil(64 * s_out / s_in)) + 4
    xs = [rng.normal(size=(n_in, n_in)) for _ in range(stamps + 1)]
    f(xs[0], s_in, s_out, 64)
    t0 = time.perf_counter()
    for x in xs[1:]:
        f(x, s_in, s_out, 64)
    return stamps / (time.perf_counter() - t0)


def cut_speed(stamps, rot_deg):
    """cutouts.cut stamps/s, 64 px at 0.06"/px from a 0.03"/px image (and a second band rotated by rot_deg)."""
    rng = np.random.default_rng(2)
    n = 2000
    ref = cutouts.Band(rng.normal(size=(n, n)), tan(0.03, n))
    bands = [ref] if rot_deg is None else [ref, cutouts.Band(rng.normal(size=(n, n)), tan(0.03, n, rot_deg))]
    xy = rng.uniform(200, n - 200, size=(stamps, 2))
    ra, dec = ref.wcs.all_pix2world(xy[:, 0], xy[:, 1], 0)
    cutouts.cut(bands, ra[:2], dec[:2], 64, 0.06)
    t0 = time.perf_counter()
    cutouts.cut(bands, ra, dec, 64, 0.06)
    return stamps / (time.perf_counter() - t0)


def cube_speed(stamps: int) -> float:
    """resample_stamps stamps/s on one NPZ-like cube (stamps, 1, 132, 132) at 0.03"/px -> 64 px at 0.06"/px."""
    x = np.random.default_rng(3).normal(size=(stamps, 1, 132, 132)).astype(np.float32)
    cutouts.resample_stamps(x[:2], 0.03, 0.06, 64)
    t0 = time.perf_counter()
    cutouts.resample_stamps(x, 0.03, 0.06, 64)
    return stamps / (time.perf_counter() - t0)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--stamps", type=int, default=20, help="stamps timed per candidate and case")
    args = p.parse_args(argv)
    one_core()
    warnings.simplefilter("ignore")
    print("| candidate | ratio | direction | flux pt | flux ser | noise/expected | hlr | stamps/s |")
    print("|---|---|---|---|---|---|---|---|")
    for name, f in CANDIDATES.items():
        for ratio, direction in CASES:
            rng = np.random.default_rng(7)
            fp, fs, nz, h = quality(f, ratio, direction, rng)
            n = args.stamps * (20 if name == "deepsky" else 1)
            v = speed(f, ratio, direction, n, rng)
            print(f"| {name} | {ratio} | {direction} | {fp:+.4f} | {fs:+.4f} | {nz:.3f} | {h:+.4f} | {v:,.0f} |")
    print()
    print(f"cutouts.resample_stamps, one cube of {args.stamps * 50} stamps, 0.03\"/px -> 64 px at 0.06\"/px: "
          f"{cube_speed(args.stamps * 50):,.0f} stamps/s")
    print("cutouts.cut, 64 px at 0.06\"/px from 0.03\"/px images:")
    for label, rot in [("one band (separable path)", None),
                       ("two bands, the second rotated by 30 deg (reproject_exact path)", 30.0)]:
        print(f"  {label}: {cut_speed(args.stamps * (20 if rot is None else 1), rot):,.0f} stamps/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
