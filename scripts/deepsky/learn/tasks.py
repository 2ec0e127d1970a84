"""Supervised tasks on shard caches: what to predict and how to encode it.

A task ties a catalogue column (the label) to a target transform and a loss.  Training
(``train.train_task``), inference (``inference.predict_task``) and the task reports
(``deepsky.reports.task_reports``) look a task up by name and never care which task they run.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from . import data


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
