"""Stamps cut from images through their WCS, resampled so that flux and noise are conserved.

Convention (same as GalSim's ``drawImage``): the requested sky position lands on the *true centre*
of the stamp, i.e. 0-based pixel coordinate ((size - 1) / 2, (size - 1) / 2); for an even size that
is the corner shared by the four central pixels.  The stamp's pixel axes are those of the first band
at that position, its pixels ``pixel_scale`` arcsec wide; every band is resampled onto that one grid
through its own WCS, so bands of different frames (other pixel scales, rotations, offsets, SIP
distortion) line up on the sky over the whole stamp, not only at its centre.

Resampling is exact area weighting ("drizzle" with pixfrac 1, the algorithm of
``reproject.reproject_exact``): each input pixel is a uniform square of flux, and an output pixel
receives from it the fraction of that square it covers.  Pixel values are fluxes per pixel (e.g.
nanomaggies or electrons), before and after, so

* the total flux in a footprint is conserved exactly (up to the light outside the image, which is
  flagged ``edge``);
* white noise of sigma per input pixel becomes sigma * sqrt(sum_q w_q**2) per output pixel, with
  w_q the covered fractions: shrinking by an integer k (k x k block sum) gives k * sigma, enlarging
  by k gives sigma / k**2 (each input pixel's flux shared equally by k x k output pixels);
* the image is the input's light, convolved with one input pixel (it already was) and then with one
  output pixel: the half-light radius of a well-sampled galaxy (>= 5 pixels of the coarser grid)
  changes by well under 1%.  At equal pixel scales a stamp centred between pixel centres is a
  bilinear (area-overlap) shift of the image: noise per pixel drops by 2/3 on average and is
  correlated, and the light is smoothed by up to one pixel.

When a band's pixel grid is, over the stamp, an axis-aligned scaling of the stamp's grid (the first
band always; unrotated bands; any NPZ cube), the overlap factorises into one sparse overlap matrix
per axis and the stamp is ``W_y @ image @ W_x.T`` (``apply_overlaps``): ``reproject_exact``'s numbers
(a test checks it to 1e-5), 100-400 times faster (``scripts/bench_resample.py``).  Any other band
(rotated, or distorted across the stamp by more than ``ALIGN_TOL_PX``) goes through
``reproject.reproject_exact`` itself, onto a TAN grid tangent at the object that matches the first
band's pixel axes there.  Each stamp reads only the window of pixels
its footprint overlaps, so memory-mapped mosaics of 10^9 pixels cost a few stamps of memory.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from astropy.wcs import WCS
from astropy.wcs.utils import proj_plane_pixel_scales
from scipy import sparse

#: per-stamp flags (bit values), combined with |
OK, EDGE, BAD_PIXELS, OFF_IMAGE = 0, 1, 2, 4
FLAG_NAMES = {EDGE: "edge", BAD_PIXELS: "bad_pixels", OFF_IMAGE: "off_image"}
#: a band whose pixel positions depart from an axis-aligned scaling of the stamp grid by less than
#: this (its own pixels, anywhere on the stamp) is resampled by the separable path
ALIGN_TOL_PX = 0.01
#: footprint edges closer than this (pixels) to a pixel boundary are on it: WCS round-off, not overlap
OVERLAP_EPS = 1e-6
#: 5 x 5 lattice of points on the stamp, from corner to corner, where each band's mapping is checked
_LATTICE = np.linspace(-0.5, 0.5, 5)


def pixel_scale_arcsec(wcs: WCS) -> float:
    """Mean pixel scale of a celestial WCS in arcsec/pixel."""
    if not wcs.has_celestial:
        raise ValueError("image has no celestial WCS (need CTYPE RA---/DEC--- and CRVAL/CD or CDELT)")
    return float(np.mean(proj_plane_pixel_scales(wcs.celestial)) * 3600.0)


@dataclass
class Band:
    """One image and its WCS (pixel values in flux units per pixel)."""

    image: np.ndarray
    wcs: WCS
    name: str = ""

    def __post_init__(self):
        if self.image.ndim != 2:
            raise ValueError(f"band {self.name or '?'}: image must be 2-D, got shape {self.image.shape}")
        if not self.wcs.has_celestial:
            raise ValueError(f"band {self.name or '?'}: image has no celestial WCS")
        self.wcs = self.wcs.celestial


def overlap_matrix(n_out: int, step: float, centre: float, n_in: int) -> sparse.csr_array:
    """(n_out, n_in) fraction of each input pixel that falls in each output pixel, along one axis.

    Input pixel q spans [q - 1/2, q + 1/2] (0-based pixel coordinates); output pixel j spans
    ``centre + (j - (n_out - 1) / 2 -+ 1/2) * step`` in those coordinates, i.e. the output row is
    centred on ``centre`` and its pixels are ``step`` input pixels wide (negative: axis flipped).
    Applied on both axes (``apply_overlaps``) it is exact area weighting of flux per pixel.  Sparse:
    an output pixel overlaps at most ceil(|step|) + 1 input pixels.
    """
    if not np.isfinite(step) or step == 0:
        raise ValueError(f"resampling step must be a finite non-zero number of input pixels, got {step}")
    edges = centre + (np.arange(n_out + 1) - (n_out - 1) / 2.0 - 0.5) * step
    # an edge within OVERLAP_EPS of a pixel boundary is on it (WCS round trips leave ~1e-10 px)
    boundary = np.round(edges - 0.5) + 0.5
    edges = np.where(np.abs(edges - boundary) < OVERLAP_EPS, boundary, edges)
    lo, hi = np.minimum(edges[:-1], edges[1:]), np.maximum(edges[:-1], edges[1:])
    k = int(np.ceil(abs(step))) + 2  # candidate input pixels per output pixel
    q = np.floor(lo + 0.5)[:, None] + np.arange(k)  # (n_out, k) from the pixel holding lo
    w = np.clip(np.minimum(hi[:, None], q + 0.5) - np.maximum(lo[:, None], q - 0.5), 0.0, None)
    inside = (q >= 0) & (q < n_in)
    w, q = np.where(inside, w, 0.0), np.clip(q, 0, n_in - 1).astype(np.int64)
    return sparse.csr_array((w.ravel(), q.ravel(), np.arange(0, n_out * k + 1, k)), shape=(n_out, n_in))


def apply_overlaps(w_y: sparse.csr_array, w_x: sparse.csr_array, images: np.ndarray) -> np.ndarray:
    """``w_y @ image @ w_x.T`` for every image of ``images`` (..., ny, nx) -> (..., len(w_y), len(w_x)).

    Sparse products: ~0.1 ms per 64 x 64 stamp on one thread (dense BLAS products cost O(n**3) and
    spawn threads that stall on a busy machine).
    """
    lead, (ny, nx) = images.shape[:-2], images.shape[-2:]
    oy, ox = w_y.shape[0], w_x.shape[0]
    t = w_y @ np.moveaxis(images, -2, 0).reshape(ny, -1)  # (oy, lead * nx)
    t = np.moveaxis(t.reshape((oy, *lead, nx)), -1, 0).reshape(nx, -1)  # (nx, oy * lead)
    t = (w_x @ t).reshape((ox, oy, *lead))
    return np.moveaxis(t, (0, 1), (-1, -2))


def _pixel_span(lo: float, hi: float) -> tuple[int, int]:
    """First and last pixel index overlapping [lo, hi] by more than ``OVERLAP_EPS``."""
    return int(np.floor(lo + 0.5 + OVERLAP_EPS)), int(np.ceil(hi - 0.5 - OVERLAP_EPS))


def stamp_wcs(band: Band, ra: float, dec: float, size: int, pixel_scale: float) -> WCS:
    """The celestial WCS of a stamp: TAN, tangent at (ra, dec) (deg) on the stamp's true centre, with
    ``band``'s pixel axes there and ``pixel_scale`` (arcsec/px) pixels (see the module notes)."""
    wcs = band.wcs
    x0, y0 = wcs.all_world2pix([ra], [dec], 0)
    step = pixel_scale / pixel_scale_arcsec(wcs)
    plane = WCS(naxis=2)  # its 0-based pixel coordinates are intermediate world coordinates (deg)
    plane.wcs.ctype = [t[:5].ljust(5, "-") + "TAN" for t in wcs.wcs.ctype]
    plane.wcs.crval, plane.wcs.crpix, plane.wcs.cd = [ra, dec], [1.0, 1.0], np.eye(2)
    if wcs.wcs.radesys:
        plane.wcs.radesys, plane.wcs.equinox = wcs.wcs.radesys, wcs.wcs.equinox
    d = 0.5
    px = np.array([x0[0] + d, x0[0] - d, x0[0], x0[0]])
    py = np.array([y0[0], y0[0], y0[0] + d, y0[0] - d])
    u, v = plane.all_world2pix(*wcs.all_pix2world(px, py, 0), 0)
    jac = np.array([[u[0] - u[1], u[2] - u[3]], [v[0] - v[1], v[2] - v[3]]]) / (2 * d)
    out = WCS(naxis=2)
    out.wcs.ctype = list(plane.wcs.ctype)
    out.wcs.crval, out.wcs.crpix, out.wcs.cd = [ra, dec], [(size + 1) / 2.0] * 2, jac * step
    if wcs.wcs.radesys:
        out.wcs.radesys, out.wcs.equinox = wcs.wcs.radesys, wcs.wcs.equinox
    out.pixel_shape = (size, size)
    return out


def cut(bands: list[Band], ra, dec, size: int, pixel_scale: float | None = None,
        window: int | None = None, blank: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Stamps (N, bands, size, size) float32 at sky positions (deg) and per-stamp flags.

    ``pixel_scale`` (arcsec/px) is the output grid; None keeps the first band's native scale.  Pixel
    values stay fluxes per pixel, resampled by exact area weighting (module notes).  A stamp whose
    footprint leaves any band's image gets the EDGE flag (the light outside is missing), and
    OFF_IMAGE too when its centre lies outside the image; one whose footprint overlaps NaN/inf pixels
    (or pixels equal to ``blank``, e.g. the 0 a drizzled mosaic holds where it has no data) gets
    BAD_PIXELS (they count as 0).  Every stamp reads only the pixels its footprint overlaps, so
    ``window`` (the margin the former spline interpolation needed) is no longer used.
    """
    del window  # accepted for existing callers: the area-weighted path never reads beyond the footprint
    ra, dec, out_scale, stamps, flags = _prepare(bands, ra, dec, size, pixel_scale)
    ref = bands[0]
    step0 = out_scale / pixel_scale_arcsec(ref.wcs)
    x0, y0 = ref.wcs.all_world2pix(ra, dec, 0)
    lu, lv = np.meshgrid(_LATTICE * size, _LATTICE * size)  # offsets (x, y) from the centre, output px
    lu, lv = lu.ravel(), lv.ravel()
    for b, band in enumerate(bands):
        if b == 0:  # the stamp's grid is this band's, scaled: separable by construction
            h, one = step0 * size / 2.0, np.ones(ra.size)
            maps = np.column_stack([x0, step0 * one, y0, step0 * one, 0 * one, x0 - h, x0 + h, y0 - h, y0 + h,
                                    step0**2 * one])
        else:
            maps = _band_maps(ref, band, x0, y0, step0, lu, lv)
        for i in range(ra.size):
            flags[i] |= _resample_one(band, maps[i], size, blank, stamps[i, b], ra[i], dec[i], ref, out_scale)
    return stamps, flags


def _band_maps(ref: Band, band: Band, x0, y0, step0: float, lu, lv) -> np.ndarray:
    """Per stamp: the best axis-aligned map from stamp pixels to ``band`` pixels and how far off it is.

    Columns: x centre, x step, y centre, y step (``band`` pixels per stamp pixel), the largest
    departure (``band`` pixels) of the true positions from that map over the lattice, the lattice's
    extent xmin, xmax, ymin, ymax, and the area of a stamp pixel in ``band`` pixels (|det| of the
    fitted affine map).  NaN centres where the mapping is not finite.
    """
    n = x0.size
    xr = (x0[:, None] + lu[None] * step0).ravel()
    yr = (y0[:, None] + lv[None] * step0).ravel()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # points far off a frame may not converge: checked below
        xb, yb = band.wcs.all_world2pix(*ref.wcs.all_pix2world(xr, yr, 0), 0)
    xb, yb = xb.reshape(n, -1), yb.reshape(n, -1)
    finite = np.isfinite(xb).all(axis=1) & np.isfinite(yb).all(axis=1)
    xb, yb = np.where(finite[:, None], xb, 0.0), np.where(finite[:, None], yb, 0.0)
    design = np.column_stack([np.ones_like(lu), lu, lv])
    cx = np.linalg.lstsq(design, xb.T, rcond=None)[0].T  # (n, 3): centre, d/du, d/dv
    cy = np.linalg.lstsq(design, yb.T, rcond=None)[0].T
    off = np.maximum(np.abs(xb - (cx[:, :1] + cx[:, 1:2] * lu)).max(axis=1),
                     np.abs(yb - (cy[:, :1] + cy[:, 2:3] * lv)).max(axis=1))
    xc, yc = np.where(finite, cx[:, 0], np.nan), np.where(finite, cy[:, 0], np.nan)
    area = np.abs(cx[:, 1] * cy[:, 2] - cx[:, 2] * cy[:, 1])
    return np.column_stack([xc, cx[:, 1], yc, cy[:, 2], off,
                            xb.min(axis=1), xb.max(axis=1), yb.min(axis=1), yb.max(axis=1), area])


def _resample_one(band: Band, m: np.ndarray, size: int, blank, out: np.ndarray, ra: float, dec: float,
                  ref: Band, out_scale: float) -> int:
    """Resample one stamp of one band into ``out`` (size, size); returns its flags."""
    xc, sx, yc, sy, off, xmin, xmax, ymin, ymax, area = m
    ny, nx = band.image.shape
    if not (np.isfinite(xc) and np.isfinite(yc)):
        return EDGE | OFF_IMAGE
    flag = OK if (-0.5 <= xc <= nx - 0.5 and -0.5 <= yc <= ny - 0.5) else OFF_IMAGE
    separable = off < ALIGN_TOL_PX
    if separable:  # the footprint's exact edges
        xmin, xmax = xc - abs(sx) * size / 2.0, xc + abs(sx) * size / 2.0
        ymin, ymax = yc - abs(sy) * size / 2.0, yc + abs(sy) * size / 2.0
    c0, c1 = _pixel_span(xmin, xmax)
    r0, r1 = _pixel_span(ymin, ymax)
    if c0 < 0 or r0 < 0 or c1 > nx - 1 or r1 > ny - 1:
        flag |= EDGE
    a0, a1, b0, b1 = max(r0, 0), min(r1, ny - 1), max(c0, 0), min(c1, nx - 1)
    if a1 < a0 or b1 < b0:
        return flag  # entirely off the image
    win = np.asarray(band.image[a0:a1 + 1, b0:b1 + 1], dtype=np.float64)
    good = np.isfinite(win)
    if blank is not None:
        good &= win != blank
    if separable:
        if not good.all():  # the window is exactly the pixels the footprint overlaps
            flag |= BAD_PIXELS
            win = np.where(good, win, 0.0)
        wy = overlap_matrix(size, sy, yc - a0, win.shape[0])
        wx = overlap_matrix(size, sx, xc - b0, win.shape[1])
        out[:] = apply_overlaps(wy, wx, win)
        return flag
    # a rotated/distorted band: its bounding box holds pixels the footprint misses, so bad pixels
    # count only where their reprojection (same call, same overlaps) reaches the stamp
    cube = np.stack([np.where(good, win, 0.0), (~good).astype(float)]) if not good.all() else win
    res = _reproject_exact(band, cube, a0, b0, stamp_wcs(ref, ra, dec, size, out_scale), size, area)
    if res.ndim == 3:
        if (res[1] > OVERLAP_EPS).any():
            flag |= BAD_PIXELS
        res = res[0]
    out[:] = res
    return flag


def _reproject_exact(band: Band, win: np.ndarray, r0: int, c0: int, out_wcs: WCS, size: int,
                     area: float) -> np.ndarray:
    """``reproject_exact`` of a window (rows r0.., columns c0.. of ``band``; optionally a stack of
    images on it) onto a stamp, in flux per output pixel (``area``: output pixel in input pixels)."""
    from reproject import reproject_exact

    win_wcs = band.wcs[r0:r0 + win.shape[-2], c0:c0 + win.shape[-1]]
    mean, covered = reproject_exact((win, win_wcs), out_wcs, shape_out=win.shape[:-2] + (size, size))
    # reproject returns the area-weighted mean value over the covered part of each output pixel:
    # times the covered fraction (light outside the window is 0) and the output/input pixel area
    return np.nan_to_num(mean * covered) * area


def _prepare(bands, ra, dec, size: int, pixel_scale):
    """Checked positions, the output pixel scale and empty stamp/flag arrays for ``cut``."""
    ra, dec = np.atleast_1d(np.asarray(ra, float)), np.atleast_1d(np.asarray(dec, float))
    if ra.shape != dec.shape:
        raise ValueError(f"ra and dec differ in length: {ra.size} vs {dec.size}")
    if not bands:
        raise ValueError("no bands given")
    if int(size) < 1:
        raise ValueError(f"stamp size must be a positive number of pixels, got {size}")
    if pixel_scale is not None and not (np.isfinite(pixel_scale) and pixel_scale > 0):
        raise ValueError(f"pixel_scale must be a positive number of arcsec/px, got {pixel_scale}")
    out_scale = pixel_scale or pixel_scale_arcsec(bands[0].wcs)
    stamps = np.zeros((ra.size, len(bands), size, size), dtype=np.float32)
    flags = np.zeros(ra.size, dtype=np.int32)
    return ra, dec, out_scale, stamps, flags


def resample_stamps(stamps: np.ndarray, native_scale: float, pixel_scale: float, size: int) -> np.ndarray:
    """Stamps (N, bands, S, S) at ``native_scale`` -> (N, bands, size, size) at ``pixel_scale`` (arcsec/px).

    Same centre convention, flux-per-pixel units and exact area weighting as ``cut``: the total flux
    is conserved (where the output footprint lies within the input stamp; pixels beyond it are 0)
    and white noise becomes sigma * sqrt(sum w**2) per pixel (module notes).
    """
    stamps = np.asarray(stamps)
    if stamps.ndim != 4:
        raise ValueError(f"stamps must be (N, bands, S, S), got shape {stamps.shape}")
    n, nb, s, s2 = stamps.shape
    if s != s2:
        raise ValueError(f"stamps must be square, got {s}x{s2}")
    for name, v in (("native_scale", native_scale), ("pixel_scale", pixel_scale)):
        if not (np.isfinite(v) and v > 0):
            raise ValueError(f"{name} must be a positive number of arcsec/px, got {v}")
    w = overlap_matrix(int(size), pixel_scale / native_scale, (s - 1) / 2.0, s)
    out = np.empty((n, nb, int(size), int(size)), dtype=np.float32)
    for i in range(n):  # stamp by stamp: as fast as one batched product, without its copies of the cube
        out[i] = apply_overlaps(w, w, stamps[i].astype(np.float64))
    return out


def describe_flags(flags: np.ndarray) -> dict[str, int]:
    """Counts of each flag among stamps (for progress logs and reports)."""
    flags = np.asarray(flags)
    return {name: int((flags & bit).astype(bool).sum()) for bit, name in FLAG_NAMES.items()}
