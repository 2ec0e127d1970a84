"""Fault injection: crashes and kills (issue 16, item 6).

* a training killed while it writes its epoch checkpoint resumes to the same model as an
  uninterrupted run (the checkpoint's files are replaced together, by one rename, so a kill between
  them can never pair a new model with an old epoch counter and repeat an epoch);
* temporary files of killed writers and empty scratch folders are removed after a successful run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import snakerun
from deepsky import io

CFG = {"epochs": 4, "batch_size": 32, "learning_rate": 0.002, "schedule": "cosine", "patience": 10,
       "augment": True}


class Killed(Exception):
    pass


@pytest.fixture(scope="module")
def xy():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(192, 16, 16, 1)).astype("float32")
    y = (x[:, 4:12, 4:12].mean(axis=(1, 2, 3)) * 4).astype("float32")[:, None]
    return x, y


def fit(xy, scratch):
    from deepsky.learn import models, train

    x, y = xy
    train.configure_determinism(7)
    m = models.build("cnn", (16, 16, 1), 1, width=4, dropout=0.3)
    return train.fit_model(m, x[:160], y[:160], x[160:], y[160:], CFG, 7, scratch, log=lambda msg: None)


@pytest.fixture(scope="module")
def uninterrupted(xy, tmp_path_factory):
    model, history = fit(xy, tmp_path_factory.mktemp("a") / "scratch")
    return model.get_weights(), history


def test_kill_inside_a_checkpoint_write_never_repeats_an_epoch(xy, uninterrupted, tmp_path, monkeypatch):
    """Killed after the epoch-2 model file was written and before its state.json: the resumed run
    must end exactly like the uninterrupted one."""
    write_json = io.write_json

    def dying_write_json(path, obj):
        if Path(path).name == "state.json" and obj.get("epoch") == 1:
            raise Killed  # as a kill -9 at that instant: nothing after it runs
        write_json(path, obj)

    scratch = tmp_path / "scratch"
    monkeypatch.setattr(io, "write_json", dying_write_json)
    with pytest.raises(Killed):
        fit(xy, scratch)
    monkeypatch.setattr(io, "write_json", write_json)
    model, history = fit(xy, scratch)
    weights, want = uninterrupted
    assert list(history["epoch"]) == [1, 2, 3, 4]
    assert history.drop(columns="seconds").equals(want.drop(columns="seconds")), (history, want)
    assert all(np.array_equal(a, b) for a, b in zip(weights, model.get_weights()))


def test_damaged_checkpoint_is_not_resumed(xy, uninterrupted, tmp_path):
    """A checkpoint whose model file was damaged on disk is dropped (the run starts over) instead of
    resuming from garbage or failing with a traceback."""
    from deepsky.learn import train

    scratch = tmp_path / "scratch"
    fit(xy, scratch)
    ckpt = train.latest_checkpoint(scratch)
    assert ckpt is not None and (ckpt / "state.json").is_file()
    last = ckpt / "last.keras"
    raw = bytearray(last.read_bytes())
    raw[len(raw) // 2] ^= 0x10
    last.write_bytes(bytes(raw))
    model, history = fit(xy, scratch)
    weights, want = uninterrupted
    assert history.drop(columns="seconds").equals(want.drop(columns="seconds"))
    assert all(np.array_equal(a, b) for a, b in zip(weights, model.get_weights()))


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_clean_partials_removes_only_leftovers(tmp_path):
    host = io._host()
    old = time.time() - 3600
    started = time.time() - 60
    files = {
        f".a.npz.{host}.{dead_pid()}.0123abcd.part": True,  # killed writer on this host
        f".a.keras.{host}.{dead_pid()}.0123abcd.part.keras": True,
        f".b.npz.{host}.{os.getpid()}.0123abcd.part": False,  # a writer that is still alive
        ".c.json.a1B2c3D4.part": True,  # an old mkstemp name from before this run
        ".d.json.zz9_yy8X.part": False,  # same kind, but touched during this run
        ".e.npz.othernode.12.0123abcd.part": True,  # another host, before this run
        ".f.npz.othernode.12.0123abcd.part": False,  # another host, during this run
        "g.npz": False,
        ".hidden": False,
    }
    for name in files:
        p = tmp_path / "sub" / name
        p.parent.mkdir(exist_ok=True)
        p.write_text("x")
        if name in (".c.json.a1B2c3D4.part", ".e.npz.othernode.12.0123abcd.part"):
            os.utime(p, (old, old))
    removed = {p.name for p in io.clean_partials(tmp_path, started)}
    assert removed == {n for n, stale in files.items() if stale}
    assert {p.name for p in (tmp_path / "sub").iterdir()} == {n for n, stale in files.items() if not stale}


def test_remove_empty_dirs(tmp_path):
    (tmp_path / "s" / "train" / "size" / "cnn").mkdir(parents=True)
    (tmp_path / "s" / "train" / "stargal" / "cnn").mkdir(parents=True)
    (tmp_path / "s" / "train" / "stargal" / "keep.txt").write_text("x")
    io.remove_empty_dirs(tmp_path / "s")
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == [
        "s", "s/train", "s/train/stargal", "s/train/stargal/keep.txt"]
    (tmp_path / "s" / "train" / "stargal" / "keep.txt").unlink()
    io.remove_empty_dirs(tmp_path / "s")
    assert not (tmp_path / "s").exists()


@pytest.mark.workflow
def test_successful_run_removes_leftovers(tmp_path):
    """Leftovers of a killed earlier run (a temporary shard, an empty checkpoint folder) are gone once
    a later run succeeds."""
    part = tmp_path / f"results/sims/size/.shard0000.npz.{io._host()}.{dead_pid()}.deadbeef.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(b"half a shard")
    empty = tmp_path / "results/.scratch/train/size/cnn"
    empty.mkdir(parents=True)
    snakerun.run(tmp_path, "results/size/split.parquet", configfiles=[snakerun.TINY])
    assert (tmp_path / "results/size/split.parquet").is_file()
    assert not part.exists()
    assert not (tmp_path / "results/.scratch").exists()
    left = [p for p in (tmp_path / "results").rglob("*.part*")]
    assert not left, left
