"""The prediction loop: inputs checked first, then chunk after chunk of stamps through the model.

Order matters for users: every cheap check (options, output path, model file and metadata,
catalogue, images, stamp cube, PSF) runs before the Keras backend is imported and the model
loaded, so a mistake is reported in a second, as one line.  Then stamps are made, predicted and
written ``chunk_size`` rows at a time: memory holds one chunk of stamps whatever the number of
objects, a progress line gives the rate and the time left, and with ``partitioned`` each chunk
is its own Parquet part, so a rerun skips the parts already written (``outputs``).
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from .. import cutouts
from ..errors import UserError
from . import inputs, outputs
from . import psf as psfmod
from . import stamps as stampmod

#: rows predicted (and written, one part each with --partitioned) at a time: 4096 stamps of 64 x 64
#: are 64 MB (a few times that once preprocessed), and the model's per-call warm-up batch
#: (``learn.inference.predict_task``) costs 1/8 more inference at this size
DEFAULT_CHUNK = 4096
#: seconds between progress lines
PROGRESS_EVERY = 10.0


def _log(msg: str) -> None:
    print(f"deepsky predict: {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- progress
class Progress:
    """Logs ``done/total`` objects with the rate and the time left, at most every ``every`` s."""

    def __init__(self, total: int, log: Callable[[str], None], every: float = PROGRESS_EVERY,
                 clock: Callable[[], float] = time.perf_counter):
        self.total, self.log, self.every, self.clock = total, log, every, clock
        self.done = self.skipped = 0
        self.t0 = self.last = clock()

    def skip(self, n: int) -> None:
        """Rows already written by an earlier run: counted as done, not in the rate."""
        self.skipped += n
        self.done += n

    def update(self, n: int) -> None:
        self.done += n
        now = self.clock()
        if self.done >= self.total or now - self.last >= self.every:
            self.last = now
            self.log(self.line(now))

    def rate(self, now: float | None = None) -> float:
        now = self.clock() if now is None else now
        return (self.done - self.skipped) / max(now - self.t0, 1e-9)

    def line(self, now: float) -> str:
        rate = self.rate(now)
        left = (self.total - self.done) / rate if rate > 0 else float("inf")
        return (f"{self.done}/{self.total} objects ({100.0 * self.done / max(self.total, 1):.1f}%), "
                f"{rate:.0f}/s, ETA {_duration(left)}")


def _duration(s: float) -> str:
    if not math.isfinite(s):
        return "?"
    s = int(round(s))
    h, m, sec = s // 3600, (s % 3600) // 60, s % 60
    return f"{h}h{m:02d}m{sec:02d}s" if h else f"{m}m{sec:02d}s"


# --------------------------------------------------------------------------- the model
@contextlib.contextmanager
def native_stderr_to(sink: Callable[[str], None] | None):
    """Collect what C++ libraries write to file descriptor 2 (TensorFlow's start-up banner) and pass
    it to ``sink`` line by line (None: drop it), so that a user sees deepsky's lines only."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            if sink is not None:
                tmp.seek(0)
                for line in tmp.read().decode(errors="replace").splitlines():
                    if line.strip():
                        sink(line)


class KerasPredictor:
    """``(stamps, rows, psfs) -> DataFrame`` of physical predictions, via ``learn.inference``."""

    def __init__(self, model, meta: dict):
        self.model, self.meta = model, meta

    def __call__(self, x: np.ndarray, rows: pd.DataFrame, psfs: np.ndarray | None = None) -> pd.DataFrame:
        from ..learn import inference

        kw = {"psfs": psfs} if psfs is not None else {}
        pred = inference.predict_task(self.model, self.meta, x, rows.reset_index(drop=True), **kw)
        return pred.astype(np.float64)


def prediction_columns(predictor, meta: dict, rows: pd.DataFrame, psf_provider, native_scale) -> list[str]:
    """The prediction columns (run once on one synthetic stamp, so every chunk has them all; the
    first catalogue row supplies the conditions a preprocessing may read, e.g. the seeing)."""
    spec = stampmod.model_spec(meta)
    s, nb = int(spec["stamp"]), int(spec["bands"])
    x = np.random.default_rng(0).normal(1.0, 0.1, (1, nb, s, s)).astype(np.float32)
    psfs, probe = None, rows.iloc[:1]
    if psf_provider is not None:  # a round PSF of 3 px FWHM: the columns do not depend on it
        yy, xx = np.indices((s, s)) - (s - 1) / 2.0
        g = np.exp(-0.5 * (xx**2 + yy**2) / (3.0 / 2.355) ** 2)
        psfs = (g / g.sum()).astype(np.float32)[None]
        probe = grid_rows(probe, native_scale, 1)
    return list(predictor(x, probe, psfs).columns)


def predict_rows(predictor, x: np.ndarray, flags: np.ndarray, rows: pd.DataFrame, columns: list[str],
                 psfs: np.ndarray | None = None) -> pd.DataFrame:
    """Predictions for the unflagged rows, NaN for the flagged ones (``columns`` in that order)."""
    n = len(rows)
    out = outputs.empty_like(columns, n)
    good = np.flatnonzero(flags == cutouts.OK)
    if good.size:
        pred = predictor(x[good], rows.iloc[good], None if psfs is None else psfs[good])
        out.iloc[good, :] = pred[columns].to_numpy(np.float64)
    return out


def grid_rows(rows: pd.DataFrame, native_scale: float | None, b: int) -> pd.DataFrame:
    """Rows as a PSF-aware model's decoding reads them: ``binning`` (b) and ``pixel_scale`` (native
    arcsec/px, when known) give arcsec = model pixels x pixel_scale x binning."""
    extra = {"binning": np.full(len(rows), b, dtype=np.int32)}
    if native_scale is not None:
        extra["pixel_scale"] = np.full(len(rows), float(native_scale))
    return rows.assign(**extra)


def predict_binned(predictor, source, provider, lo: int, hi: int, rows: pd.DataFrame, columns: list[str],
                   spec: dict, max_binning: int) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Adaptive binning for PSF-aware models (DESIGN-size): predict at native scale, then again on
    stamps block-summed by b = 2, 3, ... for objects whose R_e in model (binned) pixels, column
    ``preprocess.re_column`` (default ``pred_r_e_px``), exceeds ``preprocess.re_switch_px`` (10),
    while the PSF FWHM in binned pixels (``psf.PsfProvider.fwhm_px``) stays >=
    ``preprocess.psf_fwhm_min_px`` (1.3) and the wider stamp fits.  The predictor gets each row's
    ``binning`` and ``pixel_scale`` (``grid_rows``) and returns physical units itself.  Returns the
    predictions, flags and binning of each row."""
    re_col = spec.get("re_column", "pred_r_e_px")
    switch = float(spec.get("re_switch_px", 10.0))
    fwhm_min = float(spec.get("psf_fwhm_min_px", 1.3))
    n, s, native = hi - lo, int(spec["stamp"]), source.native_scale
    x, flags = source.chunk(lo, hi, 1)
    psfs = provider.stamps(rows, native, s, 1)
    flags = flags | provider.flags(rows, native)
    pred = predict_rows(predictor, x, flags, grid_rows(rows, native, 1), columns, psfs)
    binning = np.ones(n, dtype=np.int32)
    if re_col not in columns:
        return pred, flags, binning
    todo = np.flatnonzero((flags == cutouts.OK) & (pred[re_col].to_numpy() > switch))
    for b in range(2, max_binning + 1):
        if todo.size == 0:
            break
        fw = provider.fwhm_px(rows.iloc[todo], native, b)
        todo = todo[fw >= fwhm_min]
        if todo.size == 0:
            break
        xb, fb = source.chunk(lo, hi, b, rows=lo + todo)
        ok = fb == cutouts.OK  # a wider stamp leaving the image or the cube keeps the finer measurement
        todo, xb = todo[ok], xb[ok]
        if todo.size == 0:
            break
        sub = rows.iloc[todo]
        pb = predictor(xb, grid_rows(sub, native, b), provider.stamps(sub, native, s, b))[columns]
        pred.iloc[todo, :] = pb.to_numpy(np.float64)
        binning[todo] = b
        todo = todo[pb[re_col].to_numpy() > switch]
    return pred, flags, binning


# --------------------------------------------------------------------------- run
def _check_options(images, catalogue, stamps, chunk_size, psf, psf_fwhm, psf_fwhm_col, psf_index_col, max_binning):
    if bool(images) == bool(stamps):
        raise UserError("give either --images with --catalogue, or --stamps")
    if images and not catalogue:
        raise UserError("--images needs --catalogue (RA/Dec of the objects to measure)")
    if not (isinstance(chunk_size, (int, np.integer)) and chunk_size >= 1):
        raise UserError(f"--chunk-size must be a positive number of rows, got {chunk_size!r}")
    given = [o for o, v in (("--psf", psf), ("--psf-fwhm", psf_fwhm), ("--psf-fwhm-col", psf_fwhm_col)) if v]
    if len(given) > 1:
        raise UserError(f"give one PSF option, not {' and '.join(given)}")
    if psf_index_col and not psf:
        raise UserError("--psf-index-col chooses planes of a --psf cube: give --psf too")
    if psf_fwhm is not None and not (np.isfinite(psf_fwhm) and psf_fwhm > 0):
        raise UserError(f"--psf-fwhm must be a positive FWHM in arcsec, got {psf_fwhm}")
    if not (isinstance(max_binning, (int, np.integer)) and max_binning >= 1):
        raise UserError(f"--max-binning must be a positive integer, got {max_binning!r}")


def run(model_path, out, images=None, catalogue=None, stamps=None, stamps_pixel_scale=None, ra_col=None,
        dec_col=None, resample=True, max_ratio=3.0, hdu=None, blank=None, log: Callable[[str], None] = _log, *,
        catalogue_format: str | None = None, fmt: str | None = None, partitioned: bool = False,
        chunk_size: int = DEFAULT_CHUNK, date: str | None = "now", psf=None, psf_hdu: int | None = None,
        psf_index_col: str | None = None, psf_fwhm: float | None = None, psf_fwhm_col: str | None = None,
        max_binning: int = 8, progress_every: float = PROGRESS_EVERY, backend_log: Callable[[str], None] | None = None,
        predictor=None, keep_table: bool = True):
    """Everything ``deepsky predict`` does (see the ``deepsky.predict`` package notes).

    Returns the table written (a single output file, with ``keep_table``: it is then held in
    memory, a few numbers per row), a summary dict (``keep_table=False``), or the dataset's manifest
    (``partitioned``).  ``backend_log`` receives what TensorFlow prints while the model loads (None:
    dropped); ``predictor`` replaces the Keras model (tests).
    """
    _check_options(images, catalogue, stamps, chunk_size, psf, psf_fwhm, psf_fwhm_col, psf_index_col, max_binning)
    fmt = outputs.resolve_format(out, fmt, partitioned)
    model_path, meta = inputs.read_model_meta(model_path)
    spec = stampmod.model_spec(meta)
    aware = stampmod.psf_aware(meta)
    if not aware and (psf or psf_fwhm is not None or psf_fwhm_col):
        raise UserError(f"model {model_path.name} does not take a PSF (its preprocess.psf_input is not 'image'); "
                        "drop --psf/--psf-fwhm/--psf-fwhm-col")
    opened: list = []
    try:
        if images:
            cat = inputs.read_catalogue(catalogue, catalogue_format)
            fits = [inputs.open_fits_image(p, hdu) for p in images]
            opened += fits
            source = stampmod.ImageSource([f.band for f in fits], cat, meta, ra_col, dec_col, resample, max_ratio,
                                          blank, log)
        else:
            cube = inputs.open_stamp_cube(stamps)
            opened.append(cube)
            source = stampmod.CubeSource(cube, meta, stamps_pixel_scale, resample, max_ratio, log)
            if catalogue:
                cat = inputs.read_catalogue(catalogue, catalogue_format)
                if len(cat) != source.n:
                    raise UserError(f"catalogue {catalogue} has {len(cat)} rows for the {source.n} stamps of {stamps}")
            else:
                cat = pd.DataFrame({"index": np.arange(source.n)})
        cat = cat.reset_index(drop=True)
        if source.n == 0:
            raise UserError(f"nothing to predict: {catalogue if images else stamps} holds no rows")
        provider = None
        if aware:
            provider = psfmod.provider_from_options(cat, psf, psf_hdu, psf_index_col, psf_fwhm, psf_fwhm_col,
                                                    source.native_scale, log)
            if source.native_scale is None and provider.needs_scale:
                raise UserError("a PSF-aware model measures in pixels: give --stamps-pixel-scale (arcsec/px of the "
                                "stamps) to place the PSF on their grid and report sizes in arcsec")
        options = _options(images, catalogue, stamps, stamps_pixel_scale, ra_col, dec_col, resample, max_ratio, hdu,
                           blank, psf, psf_hdu, psf_index_col, psf_fwhm, psf_fwhm_col, max_binning, aware)
        from ..manifest import keras_digest

        info = outputs.provenance(meta, model_path, _model_digest(model_path, keras_digest), options,
                                  outputs.date_stamp(date))
        nchunks = -(-source.n // chunk_size)
        job = {"model_digest": info["model_digest"], "options": options, "rows": source.n,
               "chunk_size": int(chunk_size), "chunks": nchunks,
               "inputs": [[Path(p).name, inputs.fingerprint(p)]
                          for p in [*(images or []), catalogue, stamps, psf] if p]}
        finished = partitioned and outputs.dataset_done(out, job)
        if predictor is None and not finished:
            with native_stderr_to(backend_log):
                predictor = KerasPredictor(inputs.load_model(model_path), meta)
        columns = [] if finished else prediction_columns(predictor, meta, cat, provider, source.native_scale)
        if partitioned:
            writer = outputs.DatasetWriter(out, info, job, log, base=cat)
        else:
            writer = outputs.FileWriter(out, fmt, info, base=cat)
        result = _loop(predictor, source, provider, cat, columns, spec, writer, nchunks, chunk_size, max_binning,
                       Progress(source.n, log, progress_every), keep=keep_table and not partitioned)
    finally:
        for f in opened:
            f.close()
    # a dataset counts its rows and flags over every part, those of an earlier (resumed) run included
    summary = {} if partitioned else {"rows": source.n, "flags": stampmod.describe_flags(result[1])}
    writer.close(summary)
    if partitioned:
        m = writer.summary
        log(f"{m['rows']} rows in {nchunks} part(s) -> {out} ({meta.get('task')} in {meta.get('unit')}); "
            f"{m['flagged']} flagged with NaN predictions")
        return outputs.read_manifest(out)
    flags = result[1]
    log(f"{source.n} rows -> {out} ({meta.get('task')} in {meta.get('unit')}); "
        f"{int((flags != 0).sum())} flagged with NaN predictions {stampmod.describe_flags(flags)}")
    return result[0] if keep_table else summary


def _loop(predictor, source, provider, cat, columns, spec, writer, nchunks, chunk_size, max_binning, progress, keep):
    tables, all_flags = [], []
    try:
        for k in range(nchunks):
            lo, hi = k * chunk_size, min(source.n, (k + 1) * chunk_size)
            if writer.done(k):
                progress.skip(hi - lo)
                continue
            rows = cat.iloc[lo:hi]  # index: positions in the catalogue (per-object PSFs are looked up by it)
            if provider is not None:
                pred, flags, binning = predict_binned(predictor, source, provider, lo, hi, rows, columns, spec,
                                                      max_binning)
                pred = pred.assign(binning=binning)
            else:
                x, flags = source.chunk(lo, hi)
                pred = predict_rows(predictor, x, flags, rows, columns)
            table = pd.concat([rows.reset_index(drop=True).assign(flag=flags.astype(np.int32),
                                                                  flag_names=stampmod.flag_names(flags)), pred], axis=1)
            writer.write(k, table)
            if keep:
                tables.append(table)
            all_flags.append(flags)
            progress.update(hi - lo)
    except BaseException as exc:
        writer.abort(exc)
        raise
    flags = np.concatenate(all_flags) if all_flags else None
    return (pd.concat(tables, ignore_index=True) if keep else None), flags


def _model_digest(path: Path, keras_digest) -> str:
    """Content digest of the model (config + weights: stable across saves of the same model), else
    the file's SHA-256."""
    try:
        return keras_digest(path)
    except Exception:  # not a standard Keras 3 layout: digest the bytes
        h = hashlib.sha256(Path(path).read_bytes())
        return h.hexdigest()


def _options(images, catalogue, stamps, stamps_pixel_scale, ra_col, dec_col, resample, max_ratio, hdu, blank, psf,
             psf_hdu, psf_index_col, psf_fwhm, psf_fwhm_col, max_binning, psf_aware: bool) -> dict:
    """The options that shape the predictions (file names without folders: the same job gives the
    same provenance wherever it runs)."""
    def name(p):
        return Path(p).name if p else None

    opts = {"images": [name(p) for p in images] if images else None, "catalogue": name(catalogue),
            "stamps": name(stamps), "stamps_pixel_scale": stamps_pixel_scale, "ra_col": ra_col, "dec_col": dec_col,
            "resample": bool(resample), "max_scale_ratio": max_ratio, "hdu": hdu, "blank": blank, "psf": name(psf),
            "psf_hdu": psf_hdu, "psf_index_col": psf_index_col, "psf_fwhm": psf_fwhm, "psf_fwhm_col": psf_fwhm_col,
            "max_binning": max_binning if psf_aware else None}
    return {k: v for k, v in opts.items() if v is not None}
