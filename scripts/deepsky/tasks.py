"""Supervised tasks on shard caches: what to predict, how to encode it, how to score it.

A task ties a catalogue column (the label) to a target transform, a loss and metrics.  Training and
evaluation rules call ``train_task`` / ``evaluate_task`` and never care which task they run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

from . import data, metrics


@dataclass(frozen=True)
class RegressionTask:
    """Regress a positive physical quantity through a standardised log transform."""

    name: str
    label: str  # catalogue column
    unit: str
    loss: str = "huber"
    outputs: int = 1

    def fit_target(self, values) -> dict:
        return data.fit_log_target(values)

    def encode(self, values, t: dict) -> np.ndarray:
        return data.encode_target(values, t)

    def decode(self, outputs: np.ndarray, t: dict) -> pd.DataFrame:
        return pd.DataFrame({"pred": data.decode_target(outputs[:, 0], t)})


@dataclass(frozen=True)
class BinaryTask:
    """Binary classification: one logit, binary cross-entropy from logits; decodes to P(label)."""

    name: str
    label: str  # catalogue column holding the positive class as True/1
    unit: str = "probability"
    outputs: int = 1

    @property
    def loss(self):
        import keras  # only jobs that train import keras

        return keras.losses.BinaryCrossentropy(from_logits=True)

    def fit_target(self, values) -> dict:
        y = binary_labels(values, self.label)
        return {"kind": "logit", "positive": self.label, "prior": float(y.mean()) if y.size else float("nan")}

    def encode(self, values, t: dict) -> np.ndarray:
        return binary_labels(values, self.label).astype(np.float32)

    def decode(self, outputs: np.ndarray, t: dict) -> pd.DataFrame:
        logit = np.asarray(outputs, dtype=float)[:, 0]
        return pd.DataFrame({"logit": logit, "pred": 1.0 / (1.0 + np.exp(-logit))})


def binary_labels(values, name: str = "label") -> np.ndarray:
    """0/1 integer labels from booleans or 0/1 numbers; anything else is an error naming the column."""
    v = np.asarray(values)
    if v.dtype == bool:
        return v.astype(np.int8)
    if v.dtype.kind in "iuf" and np.isin(v, (0, 1)).all():
        return v.astype(np.int8)
    raise ValueError(f"column {name!r} must hold booleans or 0/1 values, got {np.unique(v)[:5]!r}")


TASKS: dict[str, RegressionTask | BinaryTask] = {
    "size": RegressionTask(name="size", label="r_e_arcsec", unit="arcsec"),
    "stargal": BinaryTask(name="stargal", label="is_star"),
}


def get_task(name: str):
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; known: {sorted(TASKS)}") from None


def preprocess_spec(task_cfg: dict, recipe: dict, bands: int) -> dict:
    """The preprocessing a model of this task expects, as saved beside the model."""
    return {**task_cfg["preprocess"], "stamp": int(recipe["stamp"]), "bands": int(bands),
            "pixel_scale": float(recipe["pixel_scale"])}


def train_task(task_name: str, images: np.ndarray, cat: pd.DataFrame, split: pd.DataFrame, spec: dict,
               model_name: str, model_opts: dict, train_cfg: dict, seed: int, scratch,
               log: Callable[[str], None] = print):
    """Train ``model_name`` on the train split; returns (model, meta, history, timing)."""
    from . import models, train  # keras is imported only by jobs that train

    task = get_task(task_name)
    cat = data.split_frame(cat, split)
    tr, va = (cat["split"] == "train").to_numpy(), (cat["split"] == "val").to_numpy()
    tr = data.train_subset(tr, float(train_cfg.get("fraction", 1.0)), seed)
    target = task.fit_target(cat.loc[tr, task.label])
    x = data.preprocess(images, spec, psf_fwhm=psf_fwhm(cat, spec))
    y = task.encode(cat[task.label], target)
    log(f"{task_name}/{model_name}: {tr.sum()} train, {va.sum()} validation stamps, input {x.shape[1:]}")
    train.configure_determinism(seed)
    train.configure_precision(train_cfg.get("precision", "float32"))
    log(train.device_summary())
    head = model_opts.get("head", "point")
    outputs, loss = (2 * task.outputs, models.gaussian_beta_nll) if head == "gaussian" else (task.outputs, task.loss)
    model = models.build(model_name, data.input_shape(spec), outputs, **model_opts)
    log(f"{model_name}: {model.count_params()} parameters")
    t0 = time.perf_counter()
    model, history = train.fit_model(model, x[tr], y[tr], x[va], y[va], train_cfg, seed, scratch,
                                     loss=loss, digest_extra={"spec": spec, "opts": model_opts},
                                     log=log)
    meta = {
        "task": task_name,
        "model": model_name,
        "label": task.label,
        "unit": task.unit,
        "preprocess": spec,
        "target": target,
        "model_options": model_opts,
        "train": train_cfg,
        "seed": seed,
        "params": int(model.count_params()),
        "epochs_run": int(len(history)),
        "best_epoch": int(history["val_loss"].idxmin() + 1) if len(history) else 0,
        "n_train": int(tr.sum()),
        "config_digest": train.config_digest({"spec": spec, "opts": model_opts, "train": train_cfg,
                                              "seed": seed, "model": model_name}),
    }
    timing = {"train_seconds": float(history["seconds"].iloc[-1]) if len(history) else time.perf_counter() - t0,
              "epochs_run": meta["epochs_run"], "n_train": meta["n_train"],
              "train_samples_per_s": meta["n_train"] * meta["epochs_run"] / max(
                  float(history["seconds"].iloc[-1]) if len(history) else 1.0, 1e-9)}
    # wall-clock figures differ from run to run: keep them out of the model metadata and history
    return model, meta, history.drop(columns=["seconds"], errors="ignore"), timing


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
    from . import io, train

    images, cat = io.read_shards(npz_paths, parquet_paths)
    cat = data.split_frame(cat, pd.read_parquet(split_path))
    sel = (cat["split"] == which).to_numpy()
    images, cat = images[sel], cat[sel].reset_index(drop=True)
    model, meta = train.load_model(model_path)
    pred = predict_task(model, meta, images, cat)
    table = pd.concat([cat, pred], axis=1).assign(true=cat[meta["label"]])
    return images, cat, meta, pred, table


def predict_task(model, meta: dict, images: np.ndarray, cat: pd.DataFrame | None = None) -> pd.DataFrame:
    """Predictions in physical units for raw images, using the preprocessing saved with the model
    (``cat`` supplies per-stamp observing conditions when that preprocessing needs them)."""
    from . import train

    task = get_task(meta["task"])
    x = data.preprocess(images, meta["preprocess"], psf_fwhm=psf_fwhm(cat, meta["preprocess"]))
    train.predict(model, x[:512])  # warm-up: graph tracing is not inference time (stamps/s is steady state)
    t0 = time.perf_counter()
    out = train.predict(model, x)
    seconds = time.perf_counter() - t0
    pred = task.decode(out, meta["target"])
    if meta.get("model_options", {}).get("head") == "gaussian":
        from . import uncertainty

        pred = pd.concat([pred, uncertainty.gaussian_columns(out, meta["target"])], axis=1)
    pred.attrs["seconds"] = seconds
    return pred


SIZE_BINS = {"snr": [10, 20, 40, 80, 200], "sersic_n": [0.5, 1.5, 2.5, 4.0, 6.0],
             "r_e_arcsec": [0.1, 0.2, 0.35, 0.6, 1.0]}


def size_report(pred: pd.DataFrame, cat: pd.DataFrame) -> dict:
    """Overall and binned size metrics on a test table with 'true' and 'pred' columns."""
    true, p = cat["r_e_arcsec"].to_numpy(), pred["pred"].to_numpy()
    out = {"overall": metrics.size_metrics(true, p)}
    hi = cat["snr"].to_numpy() > 20
    out["snr_gt_20"] = metrics.size_metrics(true[hi], p[hi])
    out["binned"] = {}
    for col, edges in SIZE_BINS.items():
        if col in cat:
            v = cat[col].to_numpy(float)
            e = np.array(edges, float)
            e[0], e[-1] = min(e[0], v.min()), max(e[-1], v.max())
            out["binned"][col] = metrics.binned(metrics.size_metrics, true, p, v, e)
    return out


# --------------------------------------------------------------------------- star/galaxy
#: SDSS photo's star/galaxy separation: psfMag - cModelMag > 0.145 mag (r band) -> extended (galaxy)
SDSS_CONCENTRATION_CUT = 0.145


def concentration(cat: pd.DataFrame, band: str = "r") -> np.ndarray:
    """Catalogue baseline score psfMag - cModelMag (mag) in ``band``: ~0 for point sources,
    growing with extent.  Raises a ValueError naming the missing column."""
    cols = [f"psfMag_{band}", f"cModelMag_{band}"]
    missing = [c for c in cols if c not in cat]
    if missing:
        raise ValueError(f"catalogue lacks {missing} needed by the psfMag - cModelMag baseline")
    return (cat[cols[0]] - cat[cols[1]]).to_numpy(float)


def _star_galaxy_names(m: dict) -> dict:
    """Rename class-1/class-0 keys of metrics.classification_metrics to star/galaxy."""
    names = {"pos_purity": "star_purity", "pos_completeness": "star_completeness",
             "neg_purity": "galaxy_purity", "neg_completeness": "galaxy_completeness",
             "positives": "stars"}
    return {names.get(k, k): v for k, v in m.items()}


def stargal_scores(pred: pd.DataFrame, cat: pd.DataFrame, cut: float = SDSS_CONCENTRATION_CUT) -> dict:
    """Per-method (score, threshold, probability or None) for P(star): the CNN's probability and
    the catalogue baseline's -(psfMag_r - cModelMag_r) with the SDSS cut."""
    return {"cnn": (pred["pred"].to_numpy(float), 0.5, pred["pred"].to_numpy(float)),
            "baseline": (-concentration(cat), -cut, None)}


def stargal_report(pred: pd.DataFrame, cat: pd.DataFrame, faint_mag: float, mag_edges, n_bins: int = 10,
                   cut: float = SDSS_CONCENTRATION_CUT, mag_col: str = "cModelMag_r") -> dict:
    """CNN vs the psfMag - cModelMag baseline on a test table (label ``is_star``).

    * ``overall`` / ``faint`` (``mag_col`` > ``faint_mag``): AUC, star and galaxy purity and
      completeness, accuracy, counts, and (CNN) Brier score and ECE;
    * ``by_mag``: the same in bins of ``mag_col`` (measured r magnitude, edges in mag);
    * ``reliability``: the CNN's reliability table (``n_bins`` probability bins).
    """
    y = metrics._binary(cat["is_star"].to_numpy())
    mag = cat[mag_col].to_numpy(float)
    faint = mag > faint_mag
    scores = stargal_scores(pred, cat, cut)
    out = {"positive_class": "STAR", "baseline": f"psfMag_r - cModelMag_r > {cut} -> galaxy",
           "magnitude": mag_col, "faint_mag": float(faint_mag), "overall": {}, "faint": {},
           "by_mag": {}}
    for name, (s, thr, p) in scores.items():
        out["overall"][name] = _star_galaxy_names(metrics.classification_metrics(y, s, thr, p, n_bins))
        out["faint"][name] = _star_galaxy_names(metrics.classification_metrics(
            y[faint], s[faint], thr, None if p is None else p[faint], n_bins))
        rows = []
        edges = np.asarray(mag_edges, float)
        for i, (lo, hi) in enumerate(zip(edges[:-1], edges[1:])):
            sel = (mag >= lo) & ((mag < hi) if i < len(edges) - 2 else (mag <= hi))
            m = metrics.classification_metrics(y[sel], s[sel], thr, None if p is None else p[sel], n_bins)
            rows.append({"lo": float(lo), "hi": float(hi), **_star_galaxy_names(m)})
        out["by_mag"][name] = rows
    out["reliability"] = metrics.reliability_table(y, scores["cnn"][2], n_bins)
    return nan_to_none(out)


def nan_to_none(obj):
    """Replace NaN floats (empty bins, one-class subsets) by None, so the JSON is standard JSON."""
    if isinstance(obj, dict):
        return {k: nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [nan_to_none(v) for v in obj]
    if isinstance(obj, float) and obj != obj:
        return None
    return obj
