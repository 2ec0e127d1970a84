"""Stamps on the model's grid, chunk by chunk, with per-row flags.

Two sources, one interface (``chunk(lo, hi, binning)`` -> stamps, flags for rows ``lo:hi``):

* :class:`ImageSource`: FITS images (one per band) + a catalogue of RA/Dec.  For the models of
  today, stamps are cut through the WCS and resampled onto the model's grid by exact area
  weighting (``cutouts.cut``); for PSF-aware models (``preprocess.psf_input == "image"``), which
  work in pixels, they are cut at the image's native pixel scale around the nearest pixel (no
  sub-pixel resampling: those models are trained with +-1 px offsets) and block-summed b x b for
  a binning b.
* :class:`CubeSource`: an NPZ/NPY cube of stamps, read by rows (``inputs.StampCube``), resampled
  with ``cutouts.resample_stamps`` when ``--stamps-pixel-scale`` differs from the model's.

Flags (bits, combined with |): ``cutouts.FLAG_NAMES`` plus ``no_signal`` for an otherwise good stamp
holding one value throughout a band (all zero or constant): such a stamp has nothing to measure, so
it gets NaN predictions instead of a number; ``no_psf`` for an object a PSF-aware model has no PSF for.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from .. import cutouts
from ..errors import UserError
from . import inputs

#: a pixel-scale ratio within this relative tolerance counts as equal (no resampling)
SCALE_RTOL = 1e-3
#: flag of a stamp with a band that holds a single value (nothing to measure)
NO_SIGNAL = 8
#: flag of an object without a usable PSF (PSF-aware models; ``psf`` module)
NO_PSF = 16
FLAG_NAMES = {**cutouts.FLAG_NAMES, NO_SIGNAL: "no_signal", NO_PSF: "no_psf"}


def flag_names(flags: np.ndarray) -> list[str]:
    """Comma-separated names of the bits of each flag value."""
    return [",".join(nm for b, nm in FLAG_NAMES.items() if f & b) for f in np.asarray(flags)]


def describe_flags(flags: np.ndarray) -> dict[str, int]:
    """Counts of each flag raised among stamps (for the closing log line)."""
    flags = np.asarray(flags)
    counts = {name: int((flags & bit).astype(bool).sum()) for bit, name in FLAG_NAMES.items()}
    return {k: v for k, v in counts.items() if v}


def psf_aware(meta: dict) -> bool:
    """True for models that take the PSF image as an input (DESIGN: pixel grid, native scale)."""
    return (meta.get("preprocess") or {}).get("psf_input") == "image"


def model_spec(meta: dict) -> dict:
    """The model's preprocessing spec, checked for what predict needs (UserError if incomplete)."""
    spec = meta.get("preprocess") or {}
    need = ("bands", "stamp") if psf_aware(meta) else ("bands", "stamp", "pixel_scale")
    for key in need:
        if key not in spec:
            raise UserError(f"model metadata lacks preprocess.{key}: cannot tell what the model expects")
    return spec


def check_pixel_scale(native: float, wanted: float, resample: bool, max_ratio: float, what: str,
                      log: Callable[[str], None]) -> bool:
    """True if stamps must be resampled from ``native`` to ``wanted`` arcsec/px; UserError if refused."""
    ratio = native / wanted
    if abs(ratio - 1.0) <= SCALE_RTOL:
        return False
    if not resample:
        raise UserError(f"{what}: pixel scale {native:.4g}\"/px differs from the model's {wanted:.4g}\"/px "
                        f"and --no-resample was given")
    if ratio > max_ratio or ratio < 1.0 / max_ratio:
        raise UserError(f"{what}: pixel scale {native:.4g}\"/px is {ratio:.3g}x the model's {wanted:.4g}\"/px, "
                        f"beyond the allowed factor {max_ratio:g}: resampling that far would invent or "
                        f"destroy the structure the model measures")
    log(f"{what}: resampling from {native:.4g}\"/px to the model's {wanted:.4g}\"/px (ratio {ratio:.3f})")
    return True


def no_signal(stamps: np.ndarray) -> np.ndarray:
    """(N,) bool: some band of the stamp holds one value throughout (e.g. all zero)."""
    if stamps.shape[0] == 0:
        return np.zeros(0, bool)
    flat = stamps.reshape(stamps.shape[0], stamps.shape[1], -1)
    return (flat.max(axis=2) == flat.min(axis=2)).any(axis=1)


def finish(stamps: np.ndarray, flags: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Non-finite pixels -> 0 with BAD_PIXELS; constant bands -> NO_SIGNAL; float32 stamps."""
    finite = np.isfinite(stamps)
    bad = ~finite.all(axis=(1, 2, 3))
    if bad.any():
        stamps = np.where(finite, stamps, 0.0)
    flags = flags | np.where(bad, cutouts.BAD_PIXELS, 0).astype(np.int32)
    # only where nothing else explains it (a stamp off the image is all zero too)
    flags |= np.where((flags == cutouts.OK) & no_signal(stamps), NO_SIGNAL, 0).astype(np.int32)
    return np.ascontiguousarray(stamps, dtype=np.float32), flags.astype(np.int32)


def block_sum(x: np.ndarray, b: int) -> np.ndarray:
    """Sum b x b blocks of the last two axes (sizes divisible by b): exactly flux-conserving."""
    if b == 1:
        return x
    *lead, h, w = x.shape
    if h % b or w % b:
        raise ValueError(f"cannot block-sum {h}x{w} pixels by {b}")
    return x.reshape(*lead, h // b, b, w // b, b).sum(axis=(-3, -1))


def cut_native(bands: list[cutouts.Band], ra, dec, width: int, blank: float | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
    """(N, bands, width, width) windows of native pixels around the pixel nearest each position.

    The window of band k starts at round(x - (width - 1) / 2) in that band's own pixel coordinates
    (0-based), so each object lies within half a pixel of the stamp's true centre
    ((width - 1) / 2); no resampling.  Flags as ``cutouts.cut``: EDGE where the window leaves the
    image (missing pixels are 0), OFF_IMAGE when the centre does, BAD_PIXELS for NaN/``blank``.
    """
    ra, dec = np.atleast_1d(np.asarray(ra, float)), np.atleast_1d(np.asarray(dec, float))
    n = ra.size
    out = np.zeros((n, len(bands), width, width), dtype=np.float64)
    flags = np.zeros(n, dtype=np.int32)
    for k, band in enumerate(bands):
        ny, nx = band.image.shape
        x, y = band.wcs.all_world2pix(ra, dec, 0)
        for i in range(n):
            if not (np.isfinite(x[i]) and np.isfinite(y[i])):
                flags[i] |= cutouts.EDGE | cutouts.OFF_IMAGE
                continue
            if not (-0.5 <= x[i] <= nx - 0.5 and -0.5 <= y[i] <= ny - 0.5):
                flags[i] |= cutouts.OFF_IMAGE
            c0 = int(np.floor(x[i] - (width - 1) / 2.0 + 0.5))
            r0 = int(np.floor(y[i] - (width - 1) / 2.0 + 0.5))
            a0, a1, b0, b1 = max(r0, 0), min(r0 + width, ny), max(c0, 0), min(c0 + width, nx)
            if (a0, b0, a1, b1) != (r0, c0, r0 + width, c0 + width):
                flags[i] |= cutouts.EDGE
            if a1 <= a0 or b1 <= b0:
                continue
            win = np.asarray(band.image[a0:a1, b0:b1], dtype=np.float64)
            good = np.isfinite(win)
            if blank is not None:
                good &= win != blank
            if not good.all():
                flags[i] |= cutouts.BAD_PIXELS
                win = np.where(good, win, 0.0)
            out[i, k, a0 - r0:a1 - r0, b0 - c0:b1 - c0] = win
    return out, flags


class ImageSource:
    """Stamps cut from FITS images at a catalogue's positions (module notes)."""

    def __init__(self, bands: list[cutouts.Band], cat: pd.DataFrame, meta: dict, ra_col=None, dec_col=None,
                 resample: bool = True, max_ratio: float = 3.0, blank: float | None = None,
                 log: Callable[[str], None] = print):
        spec = model_spec(meta)
        names = spec.get("band_names") or []
        if len(bands) != int(spec["bands"]):
            raise UserError(f"model expects {spec['bands']} band(s){' ' + str(names) if names else ''} in that "
                            f"order, got {len(bands)} image(s)")
        self.bands, self.spec, self.blank = bands, spec, blank
        self.size = int(spec["stamp"])
        self.native = psf_aware(meta)
        scales = [cutouts.pixel_scale_arcsec(b.wcs) for b in bands]
        self.native_scale = scales[0]
        if self.native:
            if any(abs(s / scales[0] - 1) > SCALE_RTOL for s in scales):
                raise UserError(f"a PSF-aware model measures in pixels: every band must share one pixel scale, got "
                                f"{[round(s, 5) for s in scales]}\"/px (reproject the images onto one grid first)")
        else:
            for b, s in zip(bands, scales):
                check_pixel_scale(s, float(spec["pixel_scale"]), resample, max_ratio, b.name or "image", log)
        ra = inputs.find_column(cat, inputs.RA_NAMES, ra_col, "ra")
        dec = inputs.find_column(cat, inputs.DEC_NAMES, dec_col, "dec")
        self.ra = pd.to_numeric(cat[ra], errors="coerce").to_numpy(float)
        self.dec = pd.to_numeric(cat[dec], errors="coerce").to_numpy(float)
        self.n = len(cat)

    def chunk(self, lo: int, hi: int, binning: int = 1, rows: np.ndarray | None = None
              ) -> tuple[np.ndarray, np.ndarray]:
        """Stamps (n, bands, S, S) float32 and flags of rows ``lo:hi`` (or of the indices ``rows``)."""
        idx = np.arange(lo, hi) if rows is None else np.asarray(rows)
        ra, dec = self.ra[idx], self.dec[idx]
        bad_pos = ~(np.isfinite(ra) & np.isfinite(dec))
        ra, dec = np.where(bad_pos, 0.0, ra), np.where(bad_pos, 0.0, dec)
        if self.native:
            x, flags = cut_native(self.bands, ra, dec, self.size * binning, self.blank)
            x = block_sum(x, binning)
        else:
            x, flags = cutouts.cut(self.bands, ra, dec, self.size, float(self.spec["pixel_scale"]), blank=self.blank)
        flags = flags | np.where(bad_pos, cutouts.EDGE | cutouts.OFF_IMAGE, 0).astype(np.int32)
        x = np.where(bad_pos[:, None, None, None], 0.0, x)
        return finish(x, flags)


class CubeSource:
    """Stamps read by rows from an NPZ/NPY cube, checked against the model (module notes)."""

    def __init__(self, cube: inputs.StampCube, meta: dict, pixel_scale: float | None = None, resample: bool = True,
                 max_ratio: float = 3.0, log: Callable[[str], None] = print):
        spec = model_spec(meta)
        path = cube.path
        shape = cube.shape
        nb = int(spec["bands"])
        self.add_axis = len(shape) == 3 and nb == 1
        if self.add_axis:
            shape = (shape[0], 1, *shape[1:])
        if len(shape) != 4:
            raise UserError(f"stamps {path}: must be (N, bands, H, W) (or (N, H, W) for a 1-band model), "
                            f"got {cube.shape}")
        if shape[1] != nb:
            raise UserError(f"stamps {path}: model expects {nb} band(s), the cube has {shape[1]} (axis 1)")
        if shape[2] != shape[3]:
            raise UserError(f"stamps {path}: stamps must be square, got {shape[2]}x{shape[3]}")
        self.cube, self.spec, self.n, self.width = cube, spec, cube.n, int(shape[-1])
        self.size = int(spec["stamp"])
        self.native = psf_aware(meta)
        self.native_scale = pixel_scale
        self.flags0 = cutouts.OK
        self.rescale = False
        if self.native:
            if self.width < self.size:
                raise UserError(f"stamps {path}: model expects {self.size}x{self.size} stamps (or wider, centred), "
                                f"the cube holds {self.width}x{self.width}")
            return
        size, model_scale = self.size, float(spec["pixel_scale"])
        self.model_scale = model_scale
        self.rescale = pixel_scale is not None and check_pixel_scale(float(pixel_scale), model_scale, resample,
                                                                     max_ratio, str(path), log)
        if self.rescale or (pixel_scale is not None and resample and self.width != size):
            if not self.rescale:
                log(f"{path}: {self.width}x{self.width} stamps at the model's pixel scale, centred onto its "
                    f"{size}x{size} grid")
            # the model's footprint reaching beyond the given stamps is an edge, as for an image: compare
            # the footprints in arcsec, with the cube's own width (before resampling)
            if model_scale * size > float(pixel_scale) * self.width * (1 + SCALE_RTOL):
                self.flags0 = cutouts.EDGE
                log(f"{path}: the model's footprint ({size} px x {model_scale:.4g}\"/px) is wider than the stamps' "
                    f"({self.width} px x {float(pixel_scale):.4g}\"/px): every stamp is flagged 'edge'")
            self.rescale = True
        elif self.width != size:
            hint = "--no-resample was given" if pixel_scale is not None else "give --stamps-pixel-scale to resample"
            raise UserError(f"stamps {path}: model expects {size}x{size} stamps, the cube holds "
                            f"{self.width}x{self.width} ({hint})")

    def chunk(self, lo: int, hi: int, binning: int = 1, rows: np.ndarray | None = None
              ) -> tuple[np.ndarray, np.ndarray]:
        """Stamps (n, bands, S, S) float32 and flags of rows ``lo:hi`` (or of the sorted indices ``rows``)."""
        if rows is None:
            x = self.cube.read(lo, hi)
        else:
            rows = np.asarray(rows)
            x = self.cube.read(int(rows.min()), int(rows.max()) + 1)[rows - rows.min()] if rows.size else \
                self.cube.read(0, 0)
        if self.add_axis:
            x = x[:, None]
        x = x.astype(np.float64)
        n = x.shape[0]
        flags = np.full(n, self.flags0, dtype=np.int32)
        if self.native:
            width = self.size * binning
            if width > self.width:
                flags |= cutouts.EDGE  # cannot bin this far: the caller keeps the finer measurement
                return finish(np.zeros((n, x.shape[1], self.size, self.size)), flags)
            o = (self.width - width) // 2
            x = block_sum(x[:, :, o:o + width, o:o + width], binning)
            return finish(x, flags)
        finite = np.isfinite(x)
        bad = ~finite.all(axis=(1, 2, 3))
        if bad.any():
            x = np.where(finite, x, 0.0)
            flags |= np.where(bad, cutouts.BAD_PIXELS, 0).astype(np.int32)
        if self.rescale:
            x = cutouts.resample_stamps(x, float(self.native_scale), self.model_scale, self.size)
        return finish(x, flags)
