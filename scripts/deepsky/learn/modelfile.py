"""Model files: a ``.keras`` file plus a JSON of metadata beside it, and configuration digests.

The JSON holds what inference needs (task, label and unit, preprocessing, target transform, model
options) and the training configuration's digest (``config_digest``).  Writes are atomic.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import keras

from .. import io


def config_digest(obj) -> str:
    """Short SHA-256 of a JSON-able object (sorted keys): identifies a training configuration."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def write_keras(model: keras.Model, path: str | os.PathLike) -> None:
    """Save ``model`` to ``path`` (.keras) atomically (Keras insists on the suffix of the name it writes)."""
    path = Path(path)
    with io.atomic_path(path) as tmp:
        tmp_keras = tmp.with_name(tmp.name + ".keras")
        model.save(tmp_keras)
        os.replace(tmp_keras, tmp)


def save_model(model: keras.Model, path: str | os.PathLike, meta: dict) -> None:
    """Save ``model`` as .keras and its preprocessing/target metadata as JSON beside it (atomic)."""
    path = Path(path)
    write_keras(model, path)
    io.write_json(path.with_suffix(".json"), meta)


def load_model(path: str | os.PathLike) -> tuple[keras.Model, dict]:
    """Load a .keras model and the metadata JSON saved beside it."""
    from . import models  # noqa: F401  (registers deepsky's custom losses, e.g. gaussian_nll)

    path = Path(path)
    meta_path = path.with_suffix(".json")
    if not meta_path.exists():
        raise FileNotFoundError(f"{meta_path} is missing: deepsky models carry their preprocessing in it")
    return keras.models.load_model(path), json.loads(meta_path.read_text())
