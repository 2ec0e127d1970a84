"""Stamps cut from images through their WCS, aligned on the sky to a fraction of a pixel.

Convention (same as GalSim's ``drawImage``): the requested sky position lands on the *true centre*
of the stamp, i.e. 0-based pixel coordinate ((size - 1) / 2, (size - 1) / 2); for an even size that
is the corner shared by the four central pixels.  Each band is resampled with a cubic spline at the
pixel positions its own WCS gives, so bands of different frames line up to well under 0.1 pixel.

When the image's pixel scale differs from the requested one, the stamp is resampled onto the
requested grid and multiplied by (requested/native)**2 so that pixel values stay fluxes per pixel
(e.g. nanomaggies or electrons), not surface brightness.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from astropy.wcs import WCS
from astropy.wcs.utils import proj_plane_pixel_scales
from scipy import ndimage

#: per-stamp flags (bit values), combined with |
OK, EDGE, BAD_PIXELS = 0, 1, 2
FLAG_NAMES = {EDGE: "edge", BAD_PIXELS: "bad_pixels"}


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


def stamp_grid(size: int, step: float) -> tuple[np.ndarray, np.ndarray]:
    """Offsets (dy, dx) in native pixels of each stamp pixel centre from the stamp's true centre."""
    c = (size - 1) / 2.0
    off = (np.arange(size) - c) * step
    return np.meshgrid(off, off, indexing="ij")


def cut(bands: list[Band], ra, dec, size: int, pixel_scale: float | None = None,
        order: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Stamps (N, bands, size, size) float32 at sky positions (deg) and per-stamp flags.

    ``pixel_scale`` (arcsec/px) is the output grid; None keeps the first band's native scale.
    A stamp whose footprint leaves any band's image gets the EDGE flag (its pixels outside are 0);
    one whose footprint holds NaN/inf pixels gets BAD_PIXELS (they are set to 0).
    """
    ra, dec = np.atleast_1d(np.asarray(ra, float)), np.atleast_1d(np.asarray(dec, float))
    if ra.shape != dec.shape:
        raise ValueError(f"ra and dec differ in length: {ra.size} vs {dec.size}")
    if not bands:
        raise ValueError("no bands given")
    out_scale = pixel_scale or pixel_scale_arcsec(bands[0].wcs)
    stamps = np.zeros((ra.size, len(bands), size, size), dtype=np.float32)
    flags = np.zeros(ra.size, dtype=np.int32)
    for b, band in enumerate(bands):
        native = pixel_scale_arcsec(band.wcs)
        step = out_scale / native
        dy, dx = stamp_grid(size, step)
        x, y = band.wcs.all_world2pix(ra, dec, 0)
        ny, nx = band.image.shape
        finite = np.isfinite(band.image)
        img = np.where(finite, band.image, 0.0)
        for i in range(ra.size):
            yy, xx = y[i] + dy, x[i] + dx
            if (not np.isfinite(x[i]) or xx.min() < -0.5 or yy.min() < -0.5 or
                    xx.max() > nx - 0.5 or yy.max() > ny - 0.5):
                flags[i] |= EDGE
            y0, y1 = int(np.floor(yy.min())) - 2, int(np.ceil(yy.max())) + 3
            x0, x1 = int(np.floor(xx.min())) - 2, int(np.ceil(xx.max())) + 3
            if not finite[max(y0, 0):max(y1, 0), max(x0, 0):max(x1, 0)].all():
                flags[i] |= BAD_PIXELS
            if flags[i] & EDGE and (x1 < 0 or y1 < 0 or x0 >= nx or y0 >= ny):
                continue  # entirely off the image
            vals = ndimage.map_coordinates(img, [yy.ravel(), xx.ravel()], order=order, mode="constant", cval=0.0)
            stamps[i, b] = vals.reshape(size, size) * step**2
    return stamps, flags


def describe_flags(flags: np.ndarray) -> dict[str, int]:
    """Counts of each flag among stamps (for progress logs and reports)."""
    flags = np.asarray(flags)
    return {name: int((flags & bit).astype(bool).sum()) for bit, name in FLAG_NAMES.items()}
