"""Fault injection: model files (issue 16, item 1).

deepsky loads models that users hand it (``deepsky predict``), so loading is the security line:

* a Keras with the published safe-mode bypasses fixed (>= 3.14) is required, declared and checked;
* legacy ``.h5``/``.hdf5`` model files are refused (Keras' safe mode does not apply to them,
  CVE-2025-9905), as is anything that is not a ``.keras`` archive;
* the model file must match the content digest recorded in its metadata JSON at save time: tampered
  or damaged weights stop with one line naming the file, instead of predicting 0.0" for every row.
"""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest

import snakerun
from deepsky import cli, manifest
from deepsky.learn import modelfile


@pytest.fixture
def model_copy(model_file, tmp_path):
    """A private copy of the tiny trained model and its JSON (tests may damage it)."""
    src, stamps = model_file
    dst = tmp_path / "m.keras"
    shutil.copy(src, dst)
    shutil.copy(src.with_suffix(".json"), dst.with_suffix(".json"))
    return dst, stamps


def one_line_naming(exc, path):
    msg = str(exc)
    assert str(path) in msg and "\n" not in msg, msg


def test_keras_floor_is_declared():
    floor = re.compile(r"keras\s*>=\s*3\.(\d+)")
    deps = (snakerun.REPO / "pyproject.toml").read_text().split("dependencies = [", 1)[1].split("]", 1)[0]
    pins = [int(m.group(1)) for m in floor.finditer(deps)]
    assert pins and min(pins) >= 14, deps
    env = (snakerun.REPO / "workflow" / "envs" / "deepsky.yaml").read_text()
    assert [int(m.group(1)) for m in floor.finditer(env)] and all(
        int(m.group(1)) >= 14 for m in floor.finditer(env)), env


def test_old_keras_is_refused_at_load(model_copy, monkeypatch):
    import keras

    monkeypatch.setattr(keras, "__version__", "3.13.2")
    with pytest.raises(ValueError, match=r"3\.14"):
        modelfile.load_model(model_copy[0])


@pytest.mark.parametrize("suffix", [".h5", ".hdf5"])
def test_legacy_hdf5_models_are_refused(model_copy, suffix):
    import keras

    path, _ = model_copy
    legacy = path.with_suffix(suffix)
    keras.models.load_model(path).save(legacy)  # a legacy HDF5 model (its JSON is m.json, as for m.keras)
    with pytest.raises(ValueError, match="CVE-2025-9905") as e:
        modelfile.load_model(legacy)
    one_line_naming(e.value, legacy)
    renamed = path.with_name("renamed.keras")  # the same HDF5 file under a .keras name
    shutil.copy(legacy, renamed)
    shutil.copy(path.with_suffix(".json"), renamed.with_suffix(".json"))
    with pytest.raises(ValueError) as e:
        modelfile.load_model(renamed)
    one_line_naming(e.value, renamed)


def test_tampered_weights_are_refused(model_copy, tmp_path, capsys):
    import keras

    path, stamps = model_copy
    m = keras.models.load_model(path)
    m.set_weights([np.zeros_like(w) for w in m.get_weights()])  # "every galaxy is 0.0 arcsec"
    m.save(path)  # same name, metadata JSON left as it was
    with pytest.raises(ValueError, match="digest") as e:
        modelfile.load_model(path)
    one_line_naming(e.value, path)
    assert "snakemake" in str(e.value)  # how to rebuild it
    np.savez(tmp_path / "stamps.npz", images=stamps)
    out = tmp_path / "pred.parquet"
    rc = cli.main(["predict", str(path), "--stamps", str(tmp_path / "stamps.npz"), "-o", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and str(path) in err[0], err
    assert not out.exists()


def test_model_digest_is_stable_and_follows_the_weights(model_copy, tmp_path):
    import keras

    path, _ = model_copy
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["model_sha256"] == manifest.keras_digest(path)  # the manifest lists the same value
    m = keras.models.load_model(path)
    modelfile.save_model(m, tmp_path / "a.keras", meta)
    modelfile.save_model(m, tmp_path / "b.keras", meta)  # another save: other date inside the archive
    a, b = (json.loads((tmp_path / f"{n}.json").read_text()) for n in "ab")
    assert a == b and a["model_sha256"] == meta["model_sha256"]
    w = m.get_weights()
    w[-1] = w[-1] + np.float32(1e-6)
    m.set_weights(w)
    modelfile.save_model(m, tmp_path / "c.keras", meta)
    assert json.loads((tmp_path / "c.json").read_text())["model_sha256"] != a["model_sha256"]
    modelfile.load_model(tmp_path / "c.keras")


def test_every_flipped_bit_is_caught_or_harmless(model_copy, tmp_path):
    path, stamps = model_copy
    model, meta = modelfile.load_model(path)
    x = np.random.default_rng(0).normal(size=(4, *model.input_shape[1:])).astype("float32")
    want = model.predict(x, verbose=0)
    raw = path.read_bytes()
    bad = tmp_path / "bad.keras"
    shutil.copy(path.with_suffix(".json"), bad.with_suffix(".json"))
    caught = 0
    for i, pos in enumerate(np.linspace(0, len(raw) - 1, 40).astype(int)):
        flipped = bytearray(raw)
        flipped[pos] ^= 1 << (i % 8)
        bad.write_bytes(bytes(flipped))
        try:
            m, _ = modelfile.load_model(bad)
        except ValueError as exc:
            one_line_naming(exc, bad)
            caught += 1
            continue
        np.testing.assert_array_equal(m.predict(x, verbose=0), want, err_msg=f"bit flip at byte {pos}")
    assert caught >= 30


def test_metadata_without_digest_is_refused(model_copy):
    path, _ = model_copy
    meta_path = path.with_suffix(".json")
    meta = json.loads(meta_path.read_text())
    del meta["model_sha256"]
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="model_sha256") as e:
        modelfile.load_model(path)
    one_line_naming(e.value, meta_path)
    modelfile.record_digest(path)  # for a model the user trusts: record it, then it loads
    modelfile.load_model(path)
