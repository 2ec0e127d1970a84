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


TASKS: dict[str, RegressionTask] = {
    "size": RegressionTask(name="size", label="r_e_arcsec", unit="arcsec"),
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
    x = data.preprocess(images, spec)
    y = task.encode(cat[task.label], target)
    log(f"{task_name}/{model_name}: {tr.sum()} train, {va.sum()} validation stamps, input {x.shape[1:]}")
    train.configure_determinism(seed)
    train.configure_precision(train_cfg.get("precision", "float32"))
    log(train.device_summary())
    head = model_opts.get("head", "point")
    outputs, loss = (2 * task.outputs, models.gaussian_nll) if head == "gaussian" else (task.outputs, task.loss)
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


def predict_task(model, meta: dict, images: np.ndarray) -> pd.DataFrame:
    """Predictions in physical units for raw images, using the preprocessing saved with the model."""
    from . import train

    task = get_task(meta["task"])
    x = data.preprocess(images, meta["preprocess"])
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
