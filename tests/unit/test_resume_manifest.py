"""Unit tests: exact training resume on both Keras backends, content digests, mixed precision."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile

import numpy as np
import pytest

import snakerun
from deepsky import io, manifest


@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
def test_resume_reproduces_uninterrupted_training(backend):
    proc = subprocess.run([sys.executable, str(snakerun.REPO / "tests" / "resume_check.py")],
                          env=snakerun.env(KERAS_BACKEND=backend), capture_output=True, text=True, timeout=300)
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("REPORT ")]
    assert proc.returncode == 0 and line, proc.stdout[-2000:] + proc.stderr[-4000:]
    r = json.loads(line[0][len("REPORT "):])
    assert r["backend"] == backend
    assert r["killed_after_epoch"] == 2
    assert r["iterations"] == [20, 20]  # 4 epochs x 5 batches: the step count (and LR schedule) carried over
    assert r["history_equal"] and r["history_columns_equal"], r["losses"]
    assert r["last_weights_equal"] and r["best_weights_equal"] and r["optimizer_vars_equal"]
    assert r["rng_advanced"] and r["rng_equal"], "dropout RNG state not carried through the checkpoint"


def _tiny_model():

    from deepsky.learn import models, train

    train.configure_determinism(3)
    m = models.build("cnn", (8, 8, 1), 1, width=2)
    m.compile(optimizer="adam", loss="mse")
    x = np.random.default_rng(0).normal(size=(8, 8, 8, 1)).astype("float32")
    m.fit(x, x.mean(axis=(1, 2, 3)), epochs=1, batch_size=4, verbose=0)  # builds the optimizer state
    return m


def _rewrite(src, dst, edit):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for name in zin.namelist():
            zout.writestr(name, edit(name, zin.read(name)))


def test_keras_digest_ignores_save_date_and_object_ids(tmp_path):
    m = _tiny_model()
    a = tmp_path / "a.keras"
    m.save(a)

    def cosmetic(name, raw):
        if name == "metadata.json":
            meta = json.loads(raw)
            meta["date_saved"] = "1999-01-01@00:00:00"
            return json.dumps(meta).encode()
        if name == "config.json":  # what another process writes: other id() values
            return raw.decode().replace('"shared_object_id": ', '"shared_object_id": 9').encode()
        return raw

    b = tmp_path / "b.keras"
    _rewrite(a, b, cosmetic)
    assert io.file_digest(a) != io.file_digest(b)  # the bytes differ...
    assert manifest.keras_digest(a) == manifest.keras_digest(b)  # ...the content does not
    # a model loaded back (as a resumed training is) and saved again: same content, same digest
    import keras

    d = tmp_path / "d.keras"
    keras.models.load_model(a).save(d)
    assert manifest.keras_digest(d) == manifest.keras_digest(a)
    # a real change (one weight) changes the digest
    w = m.get_weights()
    w[0] = w[0] + np.float32(1e-3)
    m.set_weights(w)
    c = tmp_path / "c.keras"
    m.save(c)
    assert manifest.keras_digest(c) != manifest.keras_digest(a)


def test_manifest_build_skips_logs_benchmarks_hidden_and_compares(tmp_path):
    r = tmp_path / "results"
    for rel, text in {"logs/x.log": "t0", "benchmarks/t.tsv": "1.0", ".scratch/state.json": "{}",
                      "sims/.shard0000.npz.abc.part": "half", "size/metrics/m.json": "{}\n",
                      "size/split.parquet": "PAR1"}.items():
        (r / rel).parent.mkdir(parents=True, exist_ok=True)
        (r / rel).write_text(text)
    table = manifest.build(r)
    assert list(table["path"]) == ["size/metrics/m.json", "size/split.parquet"]
    assert set(table["kind"]) == {"bytes"}
    manifest.write(table, r / "manifest.tsv")
    assert list(manifest.build(r)["path"]) == list(table["path"])  # never lists itself
    other = table.copy()
    other.loc[1, "digest"] = "0" * 64
    diff = manifest.compare(table, other.iloc[1:])
    assert sorted(diff["path"]) == ["size/metrics/m.json", "size/split.parquet"]
    (tmp_path / "b.tsv").write_text(other.to_csv(sep="\t", index=False))
    cli = subprocess.run([sys.executable, "-m", "deepsky.cli", "manifest", "--compare", str(r / "manifest.tsv"),
                          str(tmp_path / "b.tsv")], env=snakerun.env(), capture_output=True, text=True)
    assert cli.returncode == 1 and "differs\tsize/split.parquet" in cli.stdout, cli.stdout + cli.stderr
    with pytest.raises(FileNotFoundError, match="no results folder"):
        manifest.build(tmp_path / "nope")


def test_manifest_lists_timed_study_outputs_without_comparing_their_bytes(tmp_path):
    runs = {}
    for run, seconds in (("a", "0.144"), ("b", "0.151")):
        r = tmp_path / run / "results"
        for rel, text in {"study/leaderboard.md": f"| train s | {seconds} |", "study/baseline/sersic.json": seconds,
                          "study/calibration/g/fraction~1.0.json": "{}", "size/metrics/m.json": "{}"}.items():
            (r / rel).parent.mkdir(parents=True, exist_ok=True)
            (r / rel).write_text(text)
        runs[run] = manifest.build(r)
    a, b = runs["a"], runs["b"]
    kinds = dict(zip(a["path"], a["kind"]))
    assert kinds["study/leaderboard.md"] == kinds["study/baseline/sersic.json"] == "wall-clock"
    assert kinds["study/calibration/g/fraction~1.0.json"] == kinds["size/metrics/m.json"] == "bytes"
    assert manifest.compare(a, b).empty  # different timings, same results
    assert list(manifest.compare(a, b[b["path"] != "study/leaderboard.md"])["path"]) == ["study/leaderboard.md"]


def test_mixed_precision_option_keeps_float32_heads():
    import keras

    from deepsky.learn import models, train

    try:
        train.configure_precision("mixed_bfloat16")
        m = models.build("cnn", (16, 16, 1), 1, width=2)
        assert m.get_layer("conv0").compute_dtype == "bfloat16"
        assert m.get_layer("head_out").compute_dtype == "float32"
        assert m.layers[-1].output.dtype == "float32"
        with pytest.raises(ValueError, match="train.precision"):
            train.configure_precision("float8")
    finally:
        train.configure_precision("float32")
    assert keras.mixed_precision.global_policy().name == "float32"
