"""Survey-scale `deepsky predict`: partitioned Parquet datasets that a rerun completes, a progress
line with rate and ETA, sky tiles for the workflow's scatter and the gather's completeness check."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import candels_fixtures as cf
from deepsky.errors import UserError
from deepsky.predict import Progress, outputs, pipeline, tiles


# --------------------------------------------------------------------------- progress
def test_progress_line_has_rate_and_eta():
    now = [0.0]
    lines = []
    p = Progress(1000, lines.append, every=5.0, clock=lambda: now[0])
    p.skip(200)  # written by an earlier run: done, but not in the rate
    now[0] = 2.0
    p.update(100)
    assert lines == []  # less than `every` seconds since the start
    now[0] = 6.0
    p.update(200)
    assert lines == ["500/1000 objects (50.0%), 50/s, ETA 0m10s"]  # 300 new in 6 s; 500 left
    now[0] = 7.0
    p.update(500)
    assert lines[-1].startswith("1000/1000 objects (100.0%)") and lines[-1].endswith("ETA 0m00s")


# --------------------------------------------------------------------------- tiles
def test_tiles_equal_counts_compact_and_across_ra_zero():
    rng = np.random.default_rng(3)
    n = 10_007
    ra = np.mod(rng.uniform(-1.0, 1.0, n), 360.0)  # a field across RA = 0
    dec = rng.uniform(-30.5, -29.5, n)
    ra[5], dec[17] = np.nan, np.inf
    t = tiles.tile_index(ra, dec, 6)
    counts = np.bincount(t, minlength=6)
    assert counts.sum() == n and counts.max() - counts.min() <= 3, counts
    assert t[5] == t[17] == 5  # no position: the last tile
    shifted = np.mod(ra + 180.0, 360.0) - 180.0  # continuous across 0
    good = np.isfinite(ra) & np.isfinite(dec)
    for k in range(6):
        m = (t == k) & good
        # 2 strips of 3 tiles on a 2 x 1 deg field: each tile ~0.67 deg in RA, 0.5 in Dec
        assert np.ptp(shifted[m]) < 0.75 and np.ptp(dec[m]) < 0.55, k
    np.testing.assert_array_equal(t, tiles.tile_index(ra, dec, 6))  # deterministic
    assert (tiles.tile_index(ra[:3], dec[:3], 8) <= 7).all()  # more tiles than objects: some empty


# --------------------------------------------------------------------------- partitioned runs
@pytest.fixture(scope="module")
def survey(tmp_path_factory):
    """A mosaic and a catalogue of 23 positions (its galaxies, repeated, and some off the image)."""
    d = tmp_path_factory.mktemp("survey")
    rows = cf.make_mosaic(d / "m.fits", noise=0.05)
    pick = [rows[i % len(rows)] for i in range(23)]
    cat = pd.DataFrame({"id": [f"o{i:02d}" for i in range(23)], "ra": [g["ra"] for g in pick],
                        "dec": [g["dec"] for g in pick]})
    cat.to_parquet(d / "cat.parquet")
    return d


class Crashing:
    """A predictor that fails on its `after`-th chunk (a killed job, as far as the parts go)."""

    def __init__(self, inner, after: int):
        self.inner, self.after, self.calls = inner, after, 0

    def __call__(self, x, rows, psfs=None):
        self.calls += 1
        if self.calls == self.after + 2:  # +1: the first call only asks for the columns
            raise KeyboardInterrupt
        return self.inner(x, rows, psfs)


@pytest.fixture(scope="module")
def keras_predictor(model_file):
    from deepsky.learn import modelfile

    model, meta = modelfile.load_model(model_file[0])
    return pipeline.KerasPredictor(model, meta)


def test_partitioned_dataset_resumes_and_matches_an_uninterrupted_run(tmp_path, survey, model_file,
                                                                      keras_predictor):
    model = model_file[0]
    kw = dict(images=[survey / "m.fits"], catalogue=survey / "cat.parquet", partitioned=True, chunk_size=5,
              date=None, log=lambda m: None)
    ref = pipeline.run(model, tmp_path / "ref", predictor=keras_predictor, **kw)
    assert ref["complete"] and ref["rows"] == 23 and ref["parts"] == [f"part-{k:05d}.parquet" for k in range(5)]
    t = pd.read_parquet(tmp_path / "ref")  # the folder reads as one table (_job/_manifest are skipped)
    assert sorted(t["id"]) == [f"o{i:02d}" for i in range(23)] and t["pred"].notna().sum() > 10

    crash = Crashing(keras_predictor, after=3)
    with pytest.raises(KeyboardInterrupt):
        pipeline.run(model, tmp_path / "ds", predictor=crash, **kw)
    done = sorted(p.name for p in (tmp_path / "ds").glob("part-*.parquet"))
    assert done == ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    assert not (tmp_path / "ds" / outputs.MANIFEST).exists()
    with pytest.raises(UserError, match="did not finish"):
        outputs.read_manifest(tmp_path / "ds")

    logs = []
    again = Crashing(keras_predictor, after=99)
    m = pipeline.run(model, tmp_path / "ds", predictor=again, **{**kw, "log": logs.append})
    assert again.calls == 1 + 2  # the columns, then only the two missing chunks
    assert any("resuming: 3 of 5 part(s)" in line for line in logs)
    assert m == json.loads((tmp_path / "ds" / outputs.MANIFEST).read_text())
    for part in ref["parts"]:
        assert (tmp_path / "ds" / part).read_bytes() == (tmp_path / "ref" / part).read_bytes(), part
    assert (tmp_path / "ds" / outputs.MANIFEST).read_bytes() == (tmp_path / "ref" / outputs.MANIFEST).read_bytes()

    # a complete dataset: a rerun predicts nothing
    idle = Crashing(keras_predictor, after=99)
    pipeline.run(model, tmp_path / "ds", predictor=idle, **kw)
    assert idle.calls == 0  # not even the columns: the model is not loaded
    # the parts of another job are never mixed in
    with pytest.raises(UserError, match="another job.*chunk_size"):
        pipeline.run(model, tmp_path / "ds", predictor=keras_predictor, **{**kw, "chunk_size": 7})
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="not empty"):
        pipeline.run(model, tmp_path / "foreign", predictor=keras_predictor, **kw)


def test_split_predict_gather(tmp_path, survey, model_file, keras_predictor):
    paths = [tmp_path / "tiles" / f"{k + 1}-of-4.parquet" for k in range(4)]
    counts = tiles.split(survey / "cat.parquet", paths)
    assert sum(counts) == 23 and max(counts) - min(counts) <= 1
    parts = []
    for p in paths:
        out = tmp_path / "parts" / p.stem
        pipeline.run(model_file[0], tmp_path / "scratch" / p.stem, images=[survey / "m.fits"], catalogue=p,
                     partitioned=True, chunk_size=4, date=None, predictor=keras_predictor, log=lambda m: None)
        tiles.finish_tile(tmp_path / "scratch" / p.stem, out)
        parts.append(out)
    summary = tiles.gather(paths, parts, tmp_path / "manifest.json")
    assert summary["rows"] == 23 and [t["rows"] for t in summary["tiles"]] == counts
    got = pd.read_parquet(tmp_path / "parts").sort_values(tiles.ROW)
    assert got[tiles.ROW].tolist() == list(range(23))
    assert got["id"].tolist() == [f"o{i:02d}" for i in range(23)]
    # the same numbers as one run over the whole catalogue
    whole = pipeline.run(model_file[0], tmp_path / "whole.parquet", images=[survey / "m.fits"],
                         catalogue=survey / "cat.parquet", predictor=keras_predictor, log=lambda m: None)
    np.testing.assert_allclose(got["pred"].to_numpy(), whole["pred"].to_numpy(), rtol=1e-5)
    np.testing.assert_array_equal(got["flag"].to_numpy(), whole["flag"].to_numpy())

    # a tile's part lost after the fact: the gather says which
    (parts[2] / "part-00000.parquet").unlink()
    with pytest.raises(UserError, match="incomplete"):
        tiles.gather(paths, parts, tmp_path / "m2.json")
