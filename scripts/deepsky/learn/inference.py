"""Inference with saved models: raw stamps in physical units -> predictions in the task's unit.

The preprocessing saved beside a model (``modelfile``) is applied to raw stamps; ``cat`` supplies
per-stamp observing conditions (e.g. the seeing of a ``psf_channel`` model).
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from .. import io
from . import data, modelfile, tasks


def predict(model, x: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """Network outputs for preprocessed inputs, batched, as a float64 numpy array."""
    return np.asarray(model.predict(x, batch_size=batch_size, verbose=0), dtype=np.float64)


def psf_fwhm(cat: pd.DataFrame | None, spec: dict):
    """The per-stamp PSF FWHM (arcsec) a ``psf_channel`` preprocessing needs, else None."""
    if not spec.get("psf_channel", False):
        return None
    col = spec.get("psf_column", "psfFWHM_r")
    if cat is None or col not in cat:
        raise ValueError(f"the model's preprocessing (psf_channel: true) needs the catalogue column {col!r} "
                         "(PSF FWHM in arcsec, SDSS PhotoObj psfFWHM_r); add it to the catalogue, name "
                         "another column in preprocess.psf_column, or set preprocess.psf_channel: false")
    return cat[col].to_numpy(float)


def predict_split(npz_paths, parquet_paths, split_path, model_path, which: str = "test"):
    """Score a saved model on one split of a dataset's shards (by default the held-out test split).

    Returns (images, catalogue, model metadata, predictions, table) where ``table`` is the
    catalogue with the predictions and a ``true`` column (the task's label) beside them.
    """
    images, cat = io.read_shards(npz_paths, parquet_paths)
    cat = data.split_frame(cat, io.read_parquet(split_path))
    sel = (cat["split"] == which).to_numpy()
    images, cat = images[sel], cat[sel].reset_index(drop=True)
    model, meta = modelfile.load_model(model_path)
    pred = predict_task(model, meta, images, cat)
    table = pd.concat([cat, pred], axis=1).assign(true=cat[meta["label"]])
    return images, cat, meta, pred, table


def predict_task(model, meta: dict, images: np.ndarray, cat: pd.DataFrame | None = None,
                 psfs: np.ndarray | None = None) -> pd.DataFrame:
    """Predictions in physical units for raw images, using the preprocessing saved with the model
    (``cat`` supplies per-stamp observing conditions when that preprocessing needs them; ``psfs``
    (N, S, S) the PSF images on the stamps' grid, unit sum, centred at (S-1)/2, for models whose
    ``preprocess.psf_input`` is ``"image"``)."""
    task = tasks.get_task(meta["task"])
    spec = meta["preprocess"]
    kw = {}
    if spec.get("psf_input") == "image":
        if psfs is None:
            raise ValueError("this model takes the PSF as an input image (preprocess.psf_input: image) and none was "
                             "given: deepsky predict takes it with --psf FILE, --psf-fwhm ARCSEC or --psf-fwhm-col COL")
        psfs = np.asarray(psfs, dtype=np.float32)
        if psfs.shape != (len(images), spec["stamp"], spec["stamp"]):
            raise ValueError(f"psfs must be (N, {spec['stamp']}, {spec['stamp']}) for {len(images)} stamps, "
                             f"got {psfs.shape}")
        kw["psfs"] = psfs
    x = data.preprocess(images, spec, psf_fwhm=psf_fwhm(cat, spec), **kw)
    predict(model, x[:512])  # warm-up: graph tracing is not inference time (stamps/s is steady state)
    t0 = time.perf_counter()
    out = predict(model, x)
    seconds = time.perf_counter() - t0
    pred = task.decode(out, meta["target"])
    if meta.get("model_options", {}).get("head") == "gaussian":
        from . import uncertainty

        pred = pd.concat([pred, uncertainty.gaussian_columns(out, meta["target"])], axis=1)
    pred.attrs["seconds"] = seconds
    return pred
