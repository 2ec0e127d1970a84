"""``deepsky predict``: a trained model applied to your own images, exactly as it was trained.

Inputs: a ``.keras`` model with its metadata JSON beside it (task, bands, pixel scale, stamp size,
preprocessing, target transform) and either

* FITS image(s) with a celestial WCS (one per band, in the model's band order) + a catalogue of
  positions (RA/Dec in degrees; CSV, Parquet or FITS table), or
* an NPZ cube of stamps (N, bands, H, W) or (N, H, W), optionally with ``--stamps-pixel-scale``.

Stamps are cut with ``cutouts.cut`` (the code the training cutouts use) on the model's grid.  When
the image's pixel scale differs from the model's, stamps are resampled onto the model's grid by
exact area weighting, which conserves flux and propagates noise as an area average (``cutouts``
module notes), and a message says so, unless ``--no-resample`` is given or the ratio is beyond
``--max-scale-ratio``, in which case the run stops with an error.  NPZ stamps are resampled the
same way (``cutouts.resample_stamps``); a cube narrower on the sky than the model's footprint is
flagged ``edge``.  Rows whose stamp leaves the image or holds NaN/blank pixels get a ``flag`` (bits
as in ``cutouts.FLAG_NAMES``) and NaN predictions: never a silent wrong number.  Output: a Parquet
table with the input rows, ``flag``/``flag_names`` and the task's prediction columns in physical
units (arcsec for sizes), via ``tasks.predict_task``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from . import cutouts, io

RA_NAMES = ["ra", "RA", "RAJ2000", "ra_deg", "RA_ICRS", "RAdeg", "ALPHA_J2000", "alpha"]
DEC_NAMES = ["dec", "DEC", "Dec", "DEJ2000", "dec_deg", "DE_ICRS", "DEdeg", "DELTA_J2000", "delta"]
#: a pixel-scale ratio within this relative tolerance counts as equal (no resampling)
SCALE_RTOL = 1e-3


def _log(msg: str) -> None:
    print(f"deepsky predict: {msg}", file=sys.stderr)


# --------------------------------------------------------------------------- inputs
def read_catalogue(path: str | Path) -> pd.DataFrame:
    """A table of positions from CSV, Parquet or a FITS table (by file extension)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"catalogue {path} does not exist")
    name = path.name.lower()
    if name.endswith(".csv"):
        return pd.read_csv(path)
    if name.endswith((".parquet", ".pq")):
        return pd.read_parquet(path)
    if name.endswith((".fits", ".fit", ".fits.gz", ".fts")):
        from astropy.table import Table

        t = Table.read(path)
        return t[[c for c in t.colnames if len(t[c].shape) <= 1]].to_pandas()
    raise ValueError(f"catalogue {path}: unknown format (use .csv, .parquet or a FITS table)")


def find_column(table: pd.DataFrame, names: list[str], given: str | None, what: str) -> str:
    if given:
        if given not in table.columns:
            raise ValueError(f"catalogue has no column {given!r} for {what}; columns: {list(table.columns)}")
        return given
    for n in names:
        if n in table.columns:
            return n
    raise ValueError(f"catalogue has no {what} column (tried {names}); name it with --{what}-col")


def read_fits_band(path: str | Path, hdu: int | None = None) -> cutouts.Band:
    """First 2-D image HDU of a FITS file (or HDU ``hdu``) with its celestial WCS; error if it has none."""
    from astropy.io import fits
    from astropy.wcs import WCS

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"image {path} does not exist")
    hdul = fits.open(path, memmap=True)  # memory-mapped: stamps read only the windows they need
    hdus = [hdul[hdu]] if hdu is not None else list(hdul)
    images = [h for h in hdus if h.data is not None and getattr(h.data, "ndim", 0) == 2]
    if not images:
        raise ValueError(f"{path}: no 2-D image HDU")
    for h in images:
        wcs = WCS(h.header)
        if wcs.has_celestial:
            return cutouts.Band(h.data, wcs, name=path.name)
    raise ValueError(f"{path}: image has no celestial WCS (need CTYPE1/2 = RA---TAN/DEC--TAN, CRVAL, CRPIX, CD "
                     f"or CDELT); cannot place catalogue positions on it")


def check_pixel_scale(native: float, wanted: float, resample: bool, max_ratio: float, what: str,
                      log: Callable[[str], None] = _log) -> bool:
    """True if stamps must be resampled from ``native`` to ``wanted`` arcsec/px; error if refused."""
    ratio = native / wanted
    if abs(ratio - 1.0) <= SCALE_RTOL:
        return False
    if not resample:
        raise ValueError(f"{what}: pixel scale {native:.4g}\"/px differs from the model's {wanted:.4g}\"/px "
                         f"and --no-resample was given")
    if ratio > max_ratio or ratio < 1.0 / max_ratio:
        raise ValueError(f"{what}: pixel scale {native:.4g}\"/px is {ratio:.3g}x the model's {wanted:.4g}\"/px, "
                         f"beyond the allowed factor {max_ratio:g}: resampling that far would invent or "
                         f"destroy the structure the model measures")
    log(f"{what}: resampling from {native:.4g}\"/px to the model's {wanted:.4g}\"/px (ratio {ratio:.3f})")
    return True


def model_spec(meta: dict) -> dict:
    spec = meta.get("preprocess") or {}
    for key in ("bands", "stamp", "pixel_scale"):
        if key not in spec:
            raise ValueError(f"model metadata lacks preprocess.{key}: cannot tell what the model expects")
    return spec


def stamps_from_images(bands: list[cutouts.Band], cat: pd.DataFrame, meta: dict, ra_col=None, dec_col=None,
                       resample: bool = True, max_ratio: float = 3.0, blank: float | None = None,
                       log: Callable[[str], None] = _log) -> tuple[np.ndarray, np.ndarray]:
    """Stamps on the model's grid at the catalogue's positions, and per-row flags."""
    spec = model_spec(meta)
    names = spec.get("band_names") or []
    if len(bands) != int(spec["bands"]):
        raise ValueError(f"model expects {spec['bands']} band(s){' ' + str(names) if names else ''} in that order, "
                         f"got {len(bands)} image(s)")
    for b in bands:
        check_pixel_scale(cutouts.pixel_scale_arcsec(b.wcs), float(spec["pixel_scale"]), resample, max_ratio,
                          b.name or "image", log)
    ra = find_column(cat, RA_NAMES, ra_col, "ra")
    dec = find_column(cat, DEC_NAMES, dec_col, "dec")
    return cutouts.cut(bands, cat[ra].to_numpy(float), cat[dec].to_numpy(float), int(spec["stamp"]),
                       float(spec["pixel_scale"]), window=16, blank=blank)


def stamps_from_npz(path: str | Path, meta: dict, pixel_scale: float | None = None, resample: bool = True,
                    max_ratio: float = 3.0, log: Callable[[str], None] = _log) -> tuple[np.ndarray, np.ndarray]:
    """Stamps from an NPZ cube ('images', or its only array), checked against the model; per-row flags."""
    spec = model_spec(meta)
    arrays = io.read_npz(path)
    if "images" in arrays:
        x = arrays["images"]
    elif len(arrays) == 1:
        x = next(iter(arrays.values()))
    else:
        raise ValueError(f"{path}: holds {sorted(arrays)}; expected an 'images' array")
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 3 and int(spec["bands"]) == 1:
        x = x[:, None]
    if x.ndim != 4:
        raise ValueError(f"{path}: stamps must be (N, bands, H, W) (or (N, H, W) for a 1-band model), got {x.shape}")
    if x.shape[1] != int(spec["bands"]):
        raise ValueError(f"{path}: model expects {spec['bands']} band(s), the cube has {x.shape[1]} (axis 1)")
    flags = np.where(np.isfinite(x).all(axis=(1, 2, 3)), cutouts.OK, cutouts.BAD_PIXELS).astype(np.int32)
    x = np.where(np.isfinite(x), x, 0.0)
    size, model_scale = int(spec["stamp"]), float(spec["pixel_scale"])
    rescale = pixel_scale is not None and check_pixel_scale(float(pixel_scale), model_scale, resample, max_ratio,
                                                             str(path), log)
    if rescale or (pixel_scale is not None and resample and x.shape[2:] != (size, size)):
        if not rescale:
            log(f"{path}: {x.shape[-1]}x{x.shape[-1]} stamps at the model's pixel scale, centred onto its "
                f"{size}x{size} grid")
        # the model's footprint reaching beyond the given stamps is an edge, as for an image: compare
        # the footprints in arcsec, with the cube's own width (before resampling)
        if model_scale * size > float(pixel_scale) * x.shape[-1] * (1 + SCALE_RTOL):
            flags |= cutouts.EDGE
            log(f"{path}: the model's footprint ({size} px x {model_scale:.4g}\"/px) is wider than the stamps' "
                f"({x.shape[-1]} px x {float(pixel_scale):.4g}\"/px): every stamp is flagged 'edge'")
        x = cutouts.resample_stamps(x, float(pixel_scale), model_scale, size)
    elif x.shape[2:] != (size, size):
        hint = "--no-resample was given" if pixel_scale is not None else "give --stamps-pixel-scale to resample"
        raise ValueError(f"{path}: model expects {size}x{size} stamps, the cube holds {x.shape[2]}x{x.shape[3]} "
                         f"({hint})")
    return x.astype(np.float32), flags


# --------------------------------------------------------------------------- prediction
def predict_table(model, meta: dict, stamps: np.ndarray, flags: np.ndarray, rows: pd.DataFrame | None = None) -> pd.DataFrame:
    """Input rows + flag columns + the task's predictions (NaN for flagged rows)."""
    from .learn import inference as tasks

    n = len(stamps)
    rows = pd.DataFrame(index=range(n)) if rows is None else rows.reset_index(drop=True)
    if len(rows) != n:
        raise ValueError(f"{len(rows)} catalogue rows for {n} stamps")
    good = flags == cutouts.OK
    out = rows.assign(flag=flags.astype(np.int32),
                      flag_names=[",".join(nm for b, nm in cutouts.FLAG_NAMES.items() if f & b) for f in flags])
    if good.any():
        # rows supply per-stamp conditions (e.g. the seeing of a stargal model's psf_channel)
        pred = tasks.predict_task(model, meta, stamps[good], out[good].reset_index(drop=True))
        full = pd.DataFrame(np.nan, index=range(n), columns=pred.columns)
        full.loc[np.flatnonzero(good), :] = pred.to_numpy()
    else:
        full = pd.DataFrame({"pred": np.full(n, np.nan)})
    return pd.concat([out, full], axis=1)


def write_predictions(path: str | Path, table: pd.DataFrame, meta: dict, model_path: str | Path) -> None:
    """Parquet with the model's task, unit and label in the file's key-value metadata (atomic)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    t = pa.Table.from_pandas(table, preserve_index=False)
    info = {"model": str(model_path), "task": meta.get("task"), "unit": meta.get("unit"),
            "label": meta.get("label"), "pixel_scale": meta["preprocess"].get("pixel_scale")}
    t = t.replace_schema_metadata({**(t.schema.metadata or {}), b"deepsky": json.dumps(info).encode()})
    with io.atomic_path(path) as tmp:
        pq.write_table(t, tmp)


def run(model_path, out, images=None, catalogue=None, stamps=None, stamps_pixel_scale=None, ra_col=None,
        dec_col=None, resample=True, max_ratio=3.0, hdu=None, blank=None, log: Callable[[str], None] = _log) -> pd.DataFrame:
    """Everything ``deepsky predict`` does; returns the table it wrote."""
    from .learn import modelfile as train

    if bool(images) == bool(stamps):
        raise ValueError("give either --images with --catalogue, or --stamps")
    model_path = Path(model_path)
    if not model_path.exists():
        raise FileNotFoundError(f"model {model_path} does not exist")
    model, meta = train.load_model(model_path)
    model_spec(meta)
    if images:
        if not catalogue:
            raise ValueError("--images needs --catalogue (RA/Dec of the objects to measure)")
        cat = read_catalogue(catalogue)
        bands = [read_fits_band(p, hdu) for p in images]
        x, flags = stamps_from_images(bands, cat, meta, ra_col, dec_col, resample, max_ratio, blank, log)
    else:
        x, flags = stamps_from_npz(stamps, meta, stamps_pixel_scale, resample, max_ratio, log)
        cat = read_catalogue(catalogue) if catalogue else pd.DataFrame({"index": np.arange(len(x))})
    table = predict_table(model, meta, x, flags, cat)
    write_predictions(out, table, meta, model_path)
    n_bad = int((flags != cutouts.OK).sum())
    log(f"{len(table)} rows -> {out} ({meta.get('task')} in {meta.get('unit')}); "
        f"{n_bad} flagged with NaN predictions {cutouts.describe_flags(flags)}")
    return table


# --------------------------------------------------------------------------- CLI
def add_parser(sub) -> None:
    p = sub.add_parser("predict", help="apply a trained model to FITS images + a catalogue, or to an NPZ of stamps",
                       description=__doc__.split("\n\n")[0],
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help=".keras model (its .json metadata beside it)")
    p.add_argument("-o", "--out", required=True, help="output Parquet table")
    p.add_argument("--images", nargs="+", metavar="FITS", help="one FITS image per band, in the model's band order")
    p.add_argument("--catalogue", "--catalog", help="CSV/Parquet/FITS table of positions (deg)")
    p.add_argument("--stamps", metavar="NPZ", help="NPZ cube of stamps (N, bands, H, W)")
    p.add_argument("--stamps-pixel-scale", type=float, help="arcsec/px of the NPZ stamps (checked against the model)")
    p.add_argument("--ra-col", help="RA column (default: first of ra, RA, RAJ2000, ...)")
    p.add_argument("--dec-col", help="Dec column (default: first of dec, DEC, DEJ2000, ...)")
    p.add_argument("--hdu", type=int, help="FITS HDU index of the image (default: first 2-D image with a WCS)")
    p.add_argument("--blank", type=float, help="pixel value meaning 'no data' (e.g. 0 in drizzled mosaics)")
    p.add_argument("--no-resample", dest="resample", action="store_false",
                   help="refuse images whose pixel scale differs from the model's instead of resampling")
    p.add_argument("--max-scale-ratio", type=float, default=3.0,
                   help="largest image/model pixel-scale ratio (or its inverse) to resample (default 3)")
    p.set_defaults(func=_main)


def _main(args) -> int:
    run(args.model, args.out, args.images, args.catalogue, args.stamps, args.stamps_pixel_scale, args.ra_col,
        args.dec_col, args.resample, args.max_scale_ratio, args.hdu, args.blank)
    return 0
