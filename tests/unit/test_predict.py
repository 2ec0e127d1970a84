"""`deepsky predict` end to end on a tiny trained size model: FITS + catalogue, NPZ, pixel scales, bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import candels_fixtures as cf
from deepsky import cli, cutouts, io, predict
from deepsky.learn import inference

STAMP = 32


@pytest.fixture(scope="module")
def loaded(model_file):
    from deepsky.learn import modelfile

    return modelfile.load_model(model_file[0])


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    d = tmp_path_factory.mktemp("img")
    rows = cf.make_mosaic(d / "f160w.fits", rot_deg=15.0, noise=0.05)
    return d / "f160w.fits", rows


def run_cli(capsys, *args):
    rc = cli.main(["predict", *map(str, args)])
    return rc, capsys.readouterr().err


def test_fits_and_csv_end_to_end(tmp_path, capsys, model_file, loaded, image):
    fits_path, rows = image
    good = [g for g in rows if g["band"] == "H" and g["seq"] in (1, 2, 3, 4)]
    cat = pd.DataFrame({"name": [f"g{g['seq']}" for g in good] + ["blank", "far", "edge"],
                        "RA": [g["ra"] for g in good] + [rows[7]["ra"], rows[8]["ra"], rows[6]["ra"]],
                        "DEC": [g["dec"] for g in good] + [rows[7]["dec"], rows[8]["dec"], rows[6]["dec"]]})
    cat.to_csv(tmp_path / "cat.csv", index=False)
    out = tmp_path / "pred.parquet"
    rc, err = run_cli(capsys, model_file[0], "--images", fits_path, "--catalogue", tmp_path / "cat.csv",
                      "-o", out, "--blank", "0")
    assert rc == 0, err
    t = pd.read_parquet(out)
    assert list(t["name"]) == list(cat["name"])  # every input row, in order
    ok = t["flag"] == 0
    assert list(ok) == [True] * 4 + [False] * 3
    assert np.isfinite(t.loc[ok, "pred"]).all() and (t.loc[ok, "pred"] > 0).all()
    assert t.loc[~ok, "pred"].isna().all(), "flagged rows must not carry a number"
    assert t["flag_names"].tolist()[4:] == ["bad_pixels", "edge,off_image", "edge"]
    # same numbers as cutting the stamps through the WCS and calling the task's predictor directly
    model, meta = loaded
    stamps, flags = cutouts.cut([predict.read_fits_band(fits_path)], cat["RA"][:4], cat["DEC"][:4], STAMP, 0.06)
    direct = inference.predict_task(model, meta, stamps)["pred"].to_numpy()
    np.testing.assert_allclose(t.loc[ok, "pred"].to_numpy(), direct, rtol=1e-5)
    import pyarrow.parquet as pq
    info = pq.read_schema(out).metadata[b"deepsky"].decode()
    assert '"unit": "arcsec"' in info and '"task": "size"' in info

    # the same positions as Parquet and as a FITS table give the same predictions
    from astropy.table import Table

    cat.to_parquet(tmp_path / "cat.parquet")
    Table.from_pandas(cat).write(tmp_path / "cat.fits")
    for name in ("cat.parquet", "cat.fits"):
        rc, err = run_cli(capsys, model_file[0], "--images", fits_path, "--catalogue", tmp_path / name,
                          "-o", tmp_path / f"{name}.out.parquet", "--blank", "0")
        assert rc == 0, err
        np.testing.assert_array_equal(pd.read_parquet(tmp_path / f"{name}.out.parquet")["pred"], t["pred"])


def test_npz_end_to_end_and_nan_stamp(tmp_path, capsys, model_file, loaded):
    path, stamps = model_file
    npz = path.parent / "stamps.npz"
    rc, err = run_cli(capsys, path, "--stamps", npz, "-o", tmp_path / "p.parquet")
    assert rc == 0, err
    t = pd.read_parquet(tmp_path / "p.parquet")
    model, meta = loaded
    np.testing.assert_allclose(t["pred"], inference.predict_task(model, meta, stamps)["pred"], rtol=1e-6)
    bad = stamps.copy()
    bad[2, 0, 5, 5] = np.nan
    io.write_npz(tmp_path / "bad.npz", {"images": bad[:, 0]})  # (N, H, W) accepted for a 1-band model
    rc, err = run_cli(capsys, path, "--stamps", tmp_path / "bad.npz", "-o", tmp_path / "b.parquet")
    assert rc == 0, err
    b = pd.read_parquet(tmp_path / "b.parquet")
    assert b["flag"].tolist() == [0, 0, cutouts.BAD_PIXELS] + [0] * 5
    assert np.isnan(b["pred"][2]) and np.allclose(b["pred"].drop(index=2), t["pred"].drop(index=2), rtol=1e-6)


def test_pixel_scale_resampled_or_refused(tmp_path, capsys, model_file, image):
    _, rows = image
    good = [dict(g, x=g["x"] * 1.2, y=g["y"] * 1.2) for g in rows if g["seq"] in (1, 2, 3)]
    fine = tmp_path / "fine.fits"  # the same galaxies at 0.05"/px
    placed = cf.make_mosaic(fine, scale=0.05, shape=(432, 504), galaxies=good)
    pd.DataFrame({"ra": [g["ra"] for g in placed], "dec": [g["dec"] for g in placed]}).to_csv(tmp_path / "c.csv")
    rc, err = run_cli(capsys, model_file[0], "--images", fine, "--catalogue", tmp_path / "c.csv",
                      "-o", tmp_path / "r.parquet")
    assert rc == 0, err
    assert "resampling from 0.05\"/px to the model's 0.06\"/px" in err
    # resampled stamps match what a 0.06"/px image of the same galaxies gives, to a few % of the peak
    band = predict.read_fits_band(fine)
    meta = {"preprocess": {"bands": 1, "stamp": STAMP, "pixel_scale": 0.06}}
    cat = pd.DataFrame({"ra": [g["ra"] for g in placed], "dec": [g["dec"] for g in placed]})
    got, flags = predict.stamps_from_images([band], cat, meta, log=lambda m: None)
    for k, g in enumerate(good):
        want = cf.expected_stamp(g, STAMP)
        assert flags[k] == 0
        assert np.abs(got[k, 0] - want).max() < 0.05 * want.max()
    rc, err = run_cli(capsys, model_file[0], "--images", fine, "--catalogue", tmp_path / "c.csv",
                      "-o", tmp_path / "n.parquet", "--no-resample")
    assert rc == 2 and "--no-resample" in err and not (tmp_path / "n.parquet").exists()
    coarse = tmp_path / "coarse.fits"  # 0.25"/px: ratio 4.2 beyond the default limit 3
    cf.make_mosaic(coarse, scale=0.25, shape=(100, 100), galaxies=[])
    rc, err = run_cli(capsys, model_file[0], "--images", coarse, "--catalogue", tmp_path / "c.csv",
                      "-o", tmp_path / "x.parquet")
    assert rc == 2 and "beyond the allowed factor" in err
    # NPZ of stamps at another scale: resampled when the scale is given
    rc, err = run_cli(capsys, model_file[0], "--stamps", model_file[0].parent / "stamps.npz",
                      "--stamps-pixel-scale", 0.05, "-o", tmp_path / "s.parquet")
    assert rc == 0 and "resampling" in err
    assert pd.read_parquet(tmp_path / "s.parquet")["flag_names"].eq("edge").all()  # 32x0.05" < 32x0.06"


def test_bad_inputs_get_clear_errors(tmp_path, capsys, model_file, image):
    from astropy.io import fits

    fits_path, rows = image
    pd.DataFrame({"ra": [rows[0]["ra"]], "dec": [rows[0]["dec"]]}).to_csv(tmp_path / "c.csv", index=False)
    nowcs = tmp_path / "nowcs.fits"
    fits.PrimaryHDU(np.ones((64, 64), np.float32)).writeto(nowcs)
    cases = [
        (["--images", nowcs, "--catalogue", tmp_path / "c.csv"], "no celestial WCS"),
        (["--images", fits_path, fits_path, "--catalogue", tmp_path / "c.csv"], "expects 1 band"),
        (["--images", fits_path], "needs --catalogue"),
        (["--images", fits_path, "--catalogue", tmp_path / "c.csv", "--ra-col", "alpha"], "no column 'alpha'"),
        (["--stamps", tmp_path / "two.npz"], "expects 1 band"),
        (["--stamps", tmp_path / "small.npz"], "16x16"),
    ]
    io.write_npz(tmp_path / "two.npz", {"images": np.ones((3, 2, STAMP, STAMP), np.float32)})
    io.write_npz(tmp_path / "small.npz", {"images": np.ones((3, 1, 16, 16), np.float32)})
    for args, msg in cases:
        rc, err = run_cli(capsys, model_file[0], *args, "-o", tmp_path / "o.parquet")
        assert rc == 2 and msg in err, (args, err)
        assert not (tmp_path / "o.parquet").exists()
    lonely = tmp_path / "lonely.keras"
    lonely.write_bytes(model_file[0].read_bytes())
    rc, err = run_cli(capsys, lonely, "--stamps", tmp_path / "two.npz", "-o", tmp_path / "o.parquet")
    assert rc == 2 and "lonely.json is missing" in err
