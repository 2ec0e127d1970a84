"""``deepsky predict``: a trained model applied to your own images, exactly as it was trained.

Inputs: a ``.keras`` model with its metadata JSON beside it (task, bands, pixel scale, stamp size,
preprocessing, target transform) and either

* FITS image(s) with a celestial WCS (one per band, in the model's band order) + a catalogue of
  positions (RA/Dec in degrees; any table astropy reads), or
* a cube of stamps (.npz or .npy) (N, bands, H, W) or (N, H, W), optionally with its pixel scale.

Models on an arcsec grid (today's): stamps are cut through the WCS (``cutouts.cut``, the code the
training cutouts use) on the model's grid, resampled by exact area weighting when the image's
pixel scale differs (flux and noise conserved; refused with ``--no-resample`` or beyond
``--max-scale-ratio``).  PSF-aware models (``preprocess.psf_input: image``) work in pixels: stamps
are cut at the native scale and given with the PSF drawn on the same grid (``psf``), with
adaptive binning for large objects (``pipeline.predict_binned``).

Rows whose stamp leaves the image, holds NaN/blank pixels, holds no signal, or has no PSF get a
``flag`` (bits, ``stamps.FLAG_NAMES``) and NaN predictions: never a silent wrong number.  Output:
the input rows, ``flag``/``flag_names`` and the task's predictions in physical units, as one
Parquet/FITS/ECSV file or a partitioned Parquet dataset, with provenance (``outputs``).

Modules: ``inputs`` (checked readers), ``stamps`` (stamp sources, flags), ``psf`` (PSF stamps),
``pipeline`` (the run: chunked loop, progress, binning), ``outputs`` (formats, provenance, datasets),
``tiles`` (sky tiles for the workflow's scatter), ``cli`` (options and examples).
"""

from __future__ import annotations

from ..errors import UserError
from .cli import add_parser
from .inputs import DEC_NAMES, RA_NAMES, find_column, open_fits_image, open_stamp_cube, read_catalogue, read_fits_band
from .outputs import FORMATS, read_manifest
from .pipeline import DEFAULT_CHUNK, Progress, run
from .stamps import FLAG_NAMES, NO_PSF, NO_SIGNAL, SCALE_RTOL, CubeSource, ImageSource, check_pixel_scale, model_spec


def stamps_from_images(bands, cat, meta: dict, ra_col=None, dec_col=None, resample: bool = True,
                       max_ratio: float = 3.0, blank: float | None = None, log=print):
    """All stamps on the model's grid at a catalogue's positions, and per-row flags (in memory:
    for a few objects; ``run`` streams them in chunks)."""
    src = ImageSource(bands, cat.reset_index(drop=True), meta, ra_col, dec_col, resample, max_ratio, blank, log)
    return src.chunk(0, src.n)


__all__ = ["DEC_NAMES", "DEFAULT_CHUNK", "FLAG_NAMES", "FORMATS", "NO_PSF", "NO_SIGNAL", "RA_NAMES", "SCALE_RTOL",
           "CubeSource", "ImageSource", "Progress", "UserError", "add_parser", "check_pixel_scale", "find_column",
           "model_spec", "open_fits_image", "open_stamp_cube", "read_catalogue", "read_fits_band", "read_manifest",
           "run", "stamps_from_images"]
