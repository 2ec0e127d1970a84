"""PSF stamps for PSF-aware models, on the grid the model sees (DESIGN-size "Grid: pixels").

A PSF-aware model (``preprocess.psf_input == "image"``) takes beside each galaxy stamp the PSF
drawn on the same grid: S x S pixels at the image's native scale, block-summed by the binning b
like the galaxy, unit sum, centred at the stamp's true centre ((S - 1) / 2), pixel response
included (as GalSim's ``drawImage`` gives it in training).  Three ways to give it:

* ``--psf FILE``: a FITS image (one PSF for every object) or a 3-D cube (one plane per entry,
  chosen per object by the catalogue column ``--psf-index-col``).  Its pixel scale comes from the
  header (celestial WCS, ``PIXSCALE``/``PIXELSCL``/``SECPIX`` in arcsec, or ``CDELT1`` with
  ``CUNIT1``), else it is assumed to be the image's.  Drawn as ``galsim.InterpolatedImage`` with
  method ``no_pixel`` (an empirical PSF already includes the pixel) on a (S b) x (S b) grid at the
  native scale, block-summed b x b: oversampled PSFs are thus sampled correctly.
* ``--psf-fwhm ARCSEC``: one FWHM for every object; a Moffat of beta = 3 is assumed (and said).
* ``--psf-fwhm-col COL``: a FWHM per object (arcsec), also Moffat beta = 3; drawings are cached
  per FWHM rounded to ``FWHM_QUANTUM_PX`` native pixels, so a million objects cost a few hundred.

Objects with no usable PSF (NaN or non-positive FWHM, index outside the cube) are flagged
``no_psf`` and get NaN predictions.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import pandas as pd

from ..errors import UserError
from . import inputs
from .stamps import NO_PSF, block_sum

#: shape assumed when only a FWHM is given
MOFFAT_BETA = 3.0
#: per-object FWHMs are drawn once per this many native pixels (cache key)
FWHM_QUANTUM_PX = 0.01
#: header keywords holding a pixel scale in arcsec
SCALE_KEYS = ("PIXSCALE", "PIXSCAL1", "PIXELSCL", "SECPIX")


def normalise(stamp: np.ndarray) -> np.ndarray:
    """Unit-sum float32 copy; UserError if the PSF holds no positive flux or non-finite values."""
    stamp = np.asarray(stamp, dtype=np.float64)
    total = stamp.sum()
    if not (np.isfinite(stamp).all() and total > 0):
        raise UserError("PSF image holds NaN/inf values or no positive flux")
    return (stamp / total).astype(np.float32)


def draw_image_psf(image: np.ndarray, psf_scale: float, native_scale: float, size: int, binning: int = 1
                   ) -> np.ndarray:
    """(size, size) unit-sum PSF stamp from a PSF image of ``psf_scale`` "/px, drawn on a
    (size b)^2 grid of ``native_scale`` "/px with ``InterpolatedImage`` (``no_pixel``), block-summed."""
    import galsim

    img = galsim.Image(np.ascontiguousarray(image, dtype=np.float64), scale=psf_scale)
    ii = galsim.InterpolatedImage(img, normalization="flux", flux=1.0)
    n = size * binning
    drawn = ii.drawImage(nx=n, ny=n, scale=native_scale, method="no_pixel").array
    return normalise(block_sum(drawn, binning))


def draw_moffat_psf(fwhm_arcsec: float, native_scale: float, size: int, binning: int = 1,
                    beta: float = MOFFAT_BETA) -> np.ndarray:
    """(size, size) unit-sum Moffat PSF stamp (pixel response included), block-summed by ``binning``."""
    import galsim

    n = size * binning
    drawn = galsim.Moffat(beta=beta, fwhm=fwhm_arcsec).drawImage(nx=n, ny=n, scale=native_scale).array
    return normalise(block_sum(drawn, binning))


def centroid_offset(stamp: np.ndarray) -> tuple[float, float]:
    """(dx, dy) of a stamp's flux centroid from its true centre ((S - 1) / 2), pixels."""
    s = np.asarray(stamp, dtype=np.float64)
    yy, xx = np.indices(s.shape)
    tot = s.sum()
    return (float((s * xx).sum() / tot - (s.shape[1] - 1) / 2.0), float((s * yy).sum() / tot - (s.shape[0] - 1) / 2.0))


def header_scale(header) -> float | None:
    """Pixel scale (arcsec/px) recorded in a FITS header, or None."""
    from astropy.wcs import WCS
    from astropy.wcs.utils import proj_plane_pixel_scales

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            wcs = WCS(header, naxis=2)
            if wcs.has_celestial:
                return float(np.mean(proj_plane_pixel_scales(wcs.celestial)) * 3600.0)
        except Exception:  # a header astropy's WCS cannot parse: try the keywords below
            pass
    for key in SCALE_KEYS:
        if key in header and float(header[key]) > 0:
            return float(header[key])
    if "CDELT1" in header:
        unit = str(header.get("CUNIT1", "")).strip().lower()
        factor = {"deg": 3600.0, "arcsec": 1.0, "mas": 1e-3}.get(unit)
        if factor:
            return abs(float(header["CDELT1"])) * factor
    return None


def read_psf_file(path, hdu: int | None = None) -> tuple[np.ndarray, float | None]:
    """PSF planes (K, h, w) float64 and their pixel scale (arcsec/px, None if the header has none)."""
    from astropy.io import fits

    path = inputs.existing_file(path, "PSF")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with fits.open(path, memmap=False) as hdul:
                if hdu is not None and not -len(hdul) <= hdu < len(hdul):
                    raise UserError(f"PSF {path}: --psf-hdu {hdu} is out of range; the file has {len(hdul)} HDU(s)")
                cands = [hdul[hdu]] if hdu is not None else list(hdul)
                for h in cands:
                    if h.data is not None and getattr(h.data, "ndim", 0) in (2, 3):
                        data, header = np.asarray(h.data, dtype=np.float64), h.header
                        break
                else:
                    raise UserError(f"PSF {path}: no 2-D image or 3-D cube in {f'HDU {hdu}' if hdu else 'the file'}")
    except UserError:
        raise
    except Exception as exc:
        raise UserError(f"PSF {path} is not a readable FITS file: {inputs._first_line(exc)}") from exc
    planes = data[None] if data.ndim == 2 else data
    for k, p in enumerate(planes):
        if not (np.isfinite(p).all() and p.sum() > 0):
            raise UserError(f"PSF {path}: plane {k} holds NaN/inf values or no positive flux")
    return planes, header_scale(header)


class PsfProvider:
    """PSF stamps and FWHMs per object (module notes); drawings cached per (PSF, binning)."""

    def __init__(self, kind: str, log: Callable[[str], None], planes: np.ndarray | None = None,
                 psf_scale: float | None = None, index: np.ndarray | None = None, fwhm: np.ndarray | None = None,
                 what: str = ""):
        self.kind, self.log, self.planes, self.psf_scale, self.what = kind, log, planes, psf_scale, what
        self.index, self.fwhm = index, fwhm
        self._cache: dict = {}
        self._checked_centre = False

    @property
    def needs_scale(self) -> bool:
        """Whether drawing needs the native pixel scale (FWHMs in arcsec, or a PSF with its own scale)."""
        return self.kind != "image" or self.psf_scale is not None

    def keys(self, rows: pd.DataFrame, native_scale: float | None) -> np.ndarray:
        """Per row (``rows.index``: positions in the catalogue): the cache key of its PSF, -1 if none."""
        native_scale = 1.0 if native_scale is None else native_scale
        pos = rows.index.to_numpy()
        if self.kind == "image":
            if self.index is None:
                return np.zeros(len(rows), dtype=np.int64)
            idx = self.index[pos]
            ok = np.isfinite(idx) & (idx == np.round(idx)) & (idx >= 0) & (idx < len(self.planes))
            return np.where(ok, np.nan_to_num(idx), -1).astype(np.int64)
        f = self.fwhm if self.fwhm.size == 1 else self.fwhm[pos]
        f = np.broadcast_to(f, (len(rows),)).astype(float)
        ok = np.isfinite(f) & (f > 0)
        q = np.where(ok, np.round(np.where(ok, f, 1.0) / native_scale / FWHM_QUANTUM_PX), -1)
        return np.where(q > 0, q, -1).astype(np.int64)

    def flags(self, rows: pd.DataFrame, native_scale: float | None) -> np.ndarray:
        """NO_PSF for the rows without a usable PSF, else 0."""
        return np.where(self.keys(rows, native_scale) < 0, NO_PSF, 0).astype(np.int32)

    def binned_fwhm(self, key: int, native_scale: float | None, b: int) -> float:
        """FWHM of PSF ``key`` including the pixel, in pixels binned by ``b``: of the profile (the
        Moffat, or the empirical PSF's interpolated image) convolved with a b x b native pixel, as
        the training PSFs' ``psf_fwhm_px`` is defined.  An empirical PSF holds the native pixel
        already, so it comes out slightly wider (by < 5% for b >= 2 and a PSF of >= 2 native px)."""
        import galsim

        native = 1.0 if native_scale is None else native_scale
        ck = ("fwhm", key, native, b)
        if ck not in self._cache:
            if self.kind == "image":
                scale = self.psf_scale if self.psf_scale is not None else native
                img = galsim.Image(np.ascontiguousarray(self.planes[key], dtype=np.float64), scale=scale)
                prof = galsim.InterpolatedImage(img, normalization="flux", flux=1.0)
            else:
                prof = galsim.Moffat(beta=MOFFAT_BETA, fwhm=key * FWHM_QUANTUM_PX * native)
            conv = galsim.Convolve(prof, galsim.Pixel(b * native))
            self._cache[ck] = conv.calculateFWHM() / (b * native)
        return self._cache[ck]

    def _draw(self, key: int, native_scale: float | None, size: int, b: int) -> np.ndarray:
        ck = (key, size, b)
        if ck not in self._cache:
            if self.kind == "image":
                scale = self.psf_scale if self.psf_scale is not None else native_scale
                native = native_scale if native_scale is not None else 1.0
                stamp = draw_image_psf(self.planes[key], scale if scale is not None else 1.0, native, size, b)
                if not self._checked_centre and b == 1:
                    self._checked_centre = True
                    dx, dy = centroid_offset(stamp)
                    if max(abs(dx), abs(dy)) > 0.5:
                        self.log(f"PSF {self.what}: its light is centred ({dx:+.2f}, {dy:+.2f}) px off the image's "
                                 "centre; the model expects it centred (odd-sized PSF on the middle pixel)")
            else:
                stamp = draw_moffat_psf(key * FWHM_QUANTUM_PX * native_scale, native_scale, size, b)
            self._cache[ck] = stamp
        return self._cache[ck]

    def stamps(self, rows: pd.DataFrame, native_scale: float | None, size: int, b: int) -> np.ndarray:
        """(n, size, size) float32 unit-sum PSF stamps (zeros where an object has none: it is flagged)."""
        keys = self.keys(rows, native_scale)
        out = np.zeros((len(rows), size, size), dtype=np.float32)
        for key in np.unique(keys[keys >= 0]):
            out[keys == key] = self._draw(int(key), native_scale, size, b)
        return out

    def fwhm_px(self, rows: pd.DataFrame, native_scale: float | None, b: int) -> np.ndarray:
        """(n,) FWHM of each object's PSF, pixel included, in pixels binned by ``b`` (NaN if none)."""
        keys = self.keys(rows, native_scale)
        out = np.full(len(rows), np.nan)
        for key in np.unique(keys[keys >= 0]):
            out[keys == key] = self.binned_fwhm(int(key), native_scale, b)
        return out


def provider_from_options(cat: pd.DataFrame, psf, psf_hdu, index_col, fwhm, fwhm_col, native_scale,
                          log: Callable[[str], None]) -> PsfProvider:
    """The PSF provider the options describe; UserError naming the options when none is given."""
    if psf:
        planes, scale = read_psf_file(psf, psf_hdu)
        index = None
        if len(planes) > 1:
            if not index_col:
                raise UserError(f"PSF {psf} is a cube of {len(planes)} planes: name the catalogue column choosing "
                                "each object's plane with --psf-index-col")
            if index_col not in cat.columns:
                raise UserError(f"catalogue has no column {index_col!r} (--psf-index-col); "
                                f"columns: {list(cat.columns)}")
            index = pd.to_numeric(cat[index_col], errors="coerce").to_numpy(float)
        elif index_col:
            raise UserError(f"PSF {psf} is a single image; --psf-index-col applies to 3-D cubes")
        if scale is None:
            log(f"PSF {psf}: no pixel scale in its header; assumed to be the image's")
        return PsfProvider("image", log, planes=planes, psf_scale=scale, index=index, what=str(psf))
    if fwhm is not None:
        log(f"PSF: a Moffat profile (beta {MOFFAT_BETA:g}) of FWHM {fwhm:g}\" is assumed for every object "
            "(give --psf FILE for the real PSF)")
        return PsfProvider("moffat", log, fwhm=np.array([float(fwhm)]), what=f"FWHM {fwhm}\"")
    if fwhm_col:
        if fwhm_col not in cat.columns:
            raise UserError(f"catalogue has no column {fwhm_col!r} (--psf-fwhm-col); columns: {list(cat.columns)}")
        log(f"PSF: Moffat profiles (beta {MOFFAT_BETA:g}) of the FWHM in column {fwhm_col!r} are assumed")
        return PsfProvider("moffat", log, fwhm=pd.to_numeric(cat[fwhm_col], errors="coerce").to_numpy(float),
                           what=fwhm_col)
    raise UserError("this model takes the PSF as an input (preprocess.psf_input: image) and none was given: use "
                    "--psf FILE (a PSF image, or a cube with --psf-index-col), --psf-fwhm ARCSEC or --psf-fwhm-col COL")
