"""Model files: a ``.keras`` file plus a JSON of metadata beside it, and configuration digests.

The JSON holds what inference needs (task, label and unit, preprocessing, target transform, model
options), the training configuration's digest (``config_digest``) and the model file's own digest
(``model_sha256``).  Writes are atomic.

Loading is the security line of ``deepsky predict``, which loads models users hand it:

* Keras must be >= 3.14 (:data:`MIN_KERAS`): the published safe-mode bypasses of ``.keras`` loading
  (up to CVE-2026-1462, and the archive path traversal) are fixed from that release;
* only ``.keras`` archives are loaded, with ``safe_mode=True``; legacy ``.h5``/``.hdf5`` model files
  are refused, since Keras' safe mode does not apply to them (CVE-2025-9905);
* the file must match ``model_sha256`` before Keras deserialises anything.

``model_sha256`` is the content digest :func:`deepsky.manifest.keras_digest` (the value ``deepsky
manifest`` lists for the file): SHA-256 over the model's config (canonical JSON) and every other
archive member, weight arrays by name, dtype, shape and bytes, leaving out only ``metadata.json``
(Keras version and save date).  A plain file hash would differ between two saves of the same model,
since the archive records its save date; this one is the same for identical runs and changes with
any weight.  It guards against damaged, swapped or edited model files; it is not a signature (whoever
can edit the model can edit the JSON beside it too).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import zipfile
from pathlib import Path

import keras

from .. import io, manifest

#: oldest Keras whose .keras loading has the published safe-mode bypasses fixed
MIN_KERAS = (3, 14)
#: legacy HDF5 model files (no safe mode): refused
LEGACY_SUFFIXES = (".h5", ".hdf5")
DIGEST_KEY = "model_sha256"


def config_digest(obj) -> str:
    """Short SHA-256 of a JSON-able object (sorted keys): identifies a training configuration."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def write_keras(model: keras.Model, path: str | os.PathLike) -> None:
    """Save ``model`` to ``path`` (.keras) atomically (Keras insists on the suffix of the name it writes)."""
    path = Path(path)
    with io.atomic_path(path) as tmp:
        tmp_keras = tmp.with_name(tmp.name + ".keras")
        try:
            model.save(tmp_keras)
            os.replace(tmp_keras, tmp)
        finally:
            tmp_keras.unlink(missing_ok=True)


def save_model(model: keras.Model, path: str | os.PathLike, meta: dict) -> None:
    """Save ``model`` as .keras and its metadata as JSON beside it, with the model's digest (atomic)."""
    path = Path(path)
    write_keras(model, path)
    io.write_json(path.with_suffix(".json"), {**meta, DIGEST_KEY: manifest.keras_digest(path)})


def record_digest(path: str | os.PathLike) -> str:
    """Record the digest of a model file you trust in its metadata JSON (models saved before deepsky
    recorded digests); returns it."""
    path = Path(path)
    meta_path = path.with_suffix(".json")
    meta = json.loads(meta_path.read_text())
    meta[DIGEST_KEY] = manifest.keras_digest(path)
    io.write_json(meta_path, meta)
    return meta[DIGEST_KEY]


def require_safe_keras(version: str | None = None) -> None:
    """Stop unless the installed Keras is at least :data:`MIN_KERAS` (safe-mode bypasses fixed)."""
    version = version or keras.__version__
    m = re.match(r"(\d+)\.(\d+)", version)
    if not m or (int(m.group(1)), int(m.group(2))) < MIN_KERAS:
        need = ".".join(map(str, MIN_KERAS))
        raise ValueError(f"Keras {version} loads models with known safe-mode bypasses; deepsky needs keras>={need} "
                         f"(pip install 'keras>={need}')")


def _rebuild_hint(path: Path) -> str:
    return (f"rebuild it: snakemake --cores 2 --force {path} (or, for a model you were given, "
            "get an intact copy of the .keras file together with its .json)")


def verify_model_file(path: str | os.PathLike, meta: dict, meta_path: str | os.PathLike) -> None:
    """Check a .keras file against the digest its metadata records (before Keras reads anything)."""
    path = Path(path)
    recorded = meta.get(DIGEST_KEY)
    if not recorded:
        raise ValueError(f"{meta_path}: records no {DIGEST_KEY} (saved before deepsky recorded model digests): "
                         f"retrain it (snakemake --cores 2 --force {path}), or if you trust the file run "
                         f"python -c \"from deepsky.learn import modelfile; modelfile.record_digest('{path}')\"")
    if not zipfile.is_zipfile(path):
        raise io.CorruptFileError(path, "is not a Keras 3 archive (truncated, damaged, or another format "
                                        "under a .keras name)", _rebuild_hint(path))
    try:
        with zipfile.ZipFile(path) as zf:
            bad = zf.testzip()  # CRC-32 of every member, metadata.json included
        if bad is not None:
            raise zipfile.BadZipFile(f"bad CRC-32 for member {bad}")
        digest = manifest.keras_digest(path)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, KeyError, UnicodeDecodeError) as exc:
        raise io.CorruptFileError(path, f"unreadable Keras archive ({type(exc).__name__}: {exc})",
                                  _rebuild_hint(path)) from exc
    if digest != recorded:
        raise io.CorruptFileError(path, f"does not match the model digest recorded in {Path(meta_path).name} "
                                        "(damaged, or modified after it was saved)", _rebuild_hint(path))


def load_model(path: str | os.PathLike) -> tuple[keras.Model, dict]:
    """Load a .keras model (safe mode) and the metadata JSON saved beside it, after checking both."""
    from . import models  # noqa: F401  (registers deepsky's custom losses, e.g. gaussian_nll)

    path = Path(path)
    require_safe_keras()
    if path.suffix.lower() in LEGACY_SUFFIXES:
        raise ValueError(f"{path}: legacy HDF5 model files are refused: Keras' safe mode does not apply to them "
                         "(CVE-2025-9905), so loading one can run arbitrary code; use a .keras model saved by deepsky")
    if path.suffix != ".keras":
        raise ValueError(f"{path}: not a .keras model file (deepsky loads only Keras 3 .keras archives)")
    if not path.is_file():
        raise FileNotFoundError(f"model {path} does not exist")
    meta_path = path.with_suffix(".json")
    if not meta_path.exists():
        raise FileNotFoundError(f"{meta_path} is missing: deepsky models carry their preprocessing in it")
    try:
        meta = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise io.CorruptFileError(meta_path, f"is not valid JSON ({exc})", _rebuild_hint(path)) from exc
    if not isinstance(meta, dict):
        raise io.CorruptFileError(meta_path, "is not a JSON object", _rebuild_hint(path))
    verify_model_file(path, meta, meta_path)
    try:
        model = keras.models.load_model(path, safe_mode=True)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise io.CorruptFileError(path, f"unreadable Keras archive ({type(exc).__name__}: {exc})",
                                  _rebuild_hint(path)) from exc
    return model, meta
