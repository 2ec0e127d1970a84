"""The `deepsky` command's conventions: --version, -o/--out, examples in every --help, one-line
errors with exit status 2, catalogues in any astropy format, outputs in Parquet/FITS/ECSV with
provenance that is byte-reproducible when the date is fixed or left out."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from astropy.table import Table

import candels_fixtures as cf
from deepsky import __version__, cli, manifest
from deepsky.predict import outputs


@pytest.fixture(scope="module")
def field(tmp_path_factory):
    """A FITS mosaic and a catalogue of four of its galaxies plus one position off the image."""
    d = tmp_path_factory.mktemp("field")
    rows = cf.make_mosaic(d / "f160w.fits", rot_deg=15.0, noise=0.05)
    good = [g for g in rows if g["band"] == "H" and g["seq"] in (1, 2, 3, 4)]
    cat = pd.DataFrame({"name": [f"g{g['seq']}" for g in good] + ["far"],
                        "ra": [g["ra"] for g in good] + [rows[8]["ra"]],
                        "dec": [g["dec"] for g in good] + [rows[8]["dec"]],
                        "mag": [20.5, 21.0, 22.25, 23.0, 24.0]})
    return d / "f160w.fits", cat


def run_cli(capsys, *args):
    rc = cli.main(["predict", *map(str, args)])
    return rc, capsys.readouterr().err


def test_version_and_examples_in_every_help(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"deepsky {__version__}"
    for name in cli.SUBCOMMANDS:
        with pytest.raises(SystemExit) as e:
            cli.main([name, "--help"])
        text = capsys.readouterr().out
        assert e.value.code == 0
        assert "examples:" in text and f"  deepsky {name} " in text, name
        assert "-o" in text and "--out" in text, f"{name} lacks -o/--out"
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    assert "deepsky predict" in capsys.readouterr().out


@pytest.mark.parametrize("argv, words", [
    (["predict", "m.keras"], "required: -o/--out"),
    (["predict", "m.keras", "-o", "x.parquet", "--chunk-size", "many"], "invalid int value"),
    (["predict", "m.keras", "-o", "x.parquet", "--bogus"], "unrecognized arguments: --bogus"),
    (["predict", "m.keras", "-o", "x.parquet", "--format", "csv"], "invalid choice"),
    (["frobnicate"], "invalid choice"),
])
def test_bad_options_one_line_exit_2(capsys, argv, words):
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2
    assert len(err.strip().splitlines()) == 1 and words in err and "--help" in err, err


def test_user_error_one_line_no_traceback_and_debug_shows_it(tmp_path):
    """As a user sees it: a separate process, stderr exactly one line, exit 2; --debug adds the traceback."""
    cmd = [sys.executable, "-m", "deepsky.cli", "predict", str(tmp_path / "none.keras"), "--stamps", "s.npz",
           "-o", str(tmp_path / "o.parquet")]
    env = {**os.environ, "PYTHONPATH": str(Path(cli.__file__).parents[1])}
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 2 and p.stderr.splitlines() == [f"deepsky predict: error: model {tmp_path / 'none.keras'} "
                                                           "does not exist"], p.stderr
    p = subprocess.run([*cmd, "--debug"], capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 2 and "Traceback" in p.stderr and p.stderr.strip().endswith("does not exist")


def test_catalogue_in_any_astropy_format_gives_the_same_predictions(tmp_path, capsys, model_file, field):
    image, cat = field
    t = Table.from_pandas(cat)
    files = {"csv": tmp_path / "c.csv", "ecsv": tmp_path / "c.ecsv", "fits": tmp_path / "c.fits",
             "votable": tmp_path / "c.vot", "parquet": tmp_path / "c.parquet"}
    cat.to_csv(files["csv"], index=False)
    t.write(files["ecsv"])
    t.write(files["fits"])
    t.write(files["votable"], format="votable")
    cat.to_parquet(files["parquet"])
    plain = tmp_path / "c.txt"  # whitespace-separated: only with --catalogue-format
    t.write(plain, format="ascii.basic")
    preds = {}
    for kind, path in files.items():
        rc, err = run_cli(capsys, model_file[0], "--images", image, "--catalogue", path, "-o", tmp_path / f"{kind}.pq")
        assert rc == 0, (kind, err)
        got = pd.read_parquet(tmp_path / f"{kind}.pq")
        assert list(got["name"]) == list(cat["name"]) and np.allclose(got["mag"], cat["mag"]), kind
        preds[kind] = got["pred"].to_numpy()
    assert np.isfinite(preds["csv"][:4]).all() and np.isnan(preds["csv"][4])
    for kind in files:
        np.testing.assert_array_equal(preds[kind], preds["csv"], err_msg=kind)
    rc, err = run_cli(capsys, model_file[0], "--images", image, "--catalogue", plain, "-o", tmp_path / "x.pq")
    assert rc == 2 and "--catalogue-format" in err and len(err.strip().splitlines()) == 1
    rc, err = run_cli(capsys, model_file[0], "--images", image, "--catalogue", plain, "--catalogue-format",
                      "ascii.basic", "-o", tmp_path / "x.pq")
    assert rc == 0, err
    np.testing.assert_array_equal(pd.read_parquet(tmp_path / "x.pq")["pred"], preds["csv"])


def read_back(path, fmt):
    """(table, provenance dict) of an output file."""
    if fmt == "parquet":
        import pyarrow.parquet as pq

        return pd.read_parquet(path), json.loads(pq.read_schema(path).metadata[b"deepsky"])
    t = Table.read(path, format="fits" if fmt == "fits" else "ascii.ecsv")
    if fmt == "fits":
        m = t.meta
        info = {"deepsky_version": m["DSKYVER"], "model_digest": m["DSKYMSHA"], "config_digest": m["DSKYCFG"],
                "task": m["DSKYTASK"], "unit": m["DSKYUNIT"], "options": json.loads(m["DSKYOPT"])}
        if "DSKYDATE" in m:
            info["date"] = m["DSKYDATE"]
    else:
        info = dict(t.meta["deepsky"])
    return t.to_pandas(), info


def test_outputs_by_extension_or_format_with_reproducible_provenance(tmp_path, capsys, monkeypatch, model_file,
                                                                     field):
    image, cat = field
    cat.to_csv(tmp_path / "c.csv", index=False)
    meta = json.loads(model_file[0].with_suffix(".json").read_text())
    args = [model_file[0], "--images", image, "--catalogue", tmp_path / "c.csv"]
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    ref = None
    for fmt, out, extra in [("parquet", "p.parquet", []), ("fits", "p.fits", []), ("ecsv", "p.ecsv", []),
                            ("fits", "p.tbl", ["--format", "fits"])]:
        rc, err = run_cli(capsys, *args, "-o", tmp_path / out, *extra)
        assert rc == 0, err
        table, info = read_back(tmp_path / out, fmt)
        ref = table["pred"].to_numpy() if ref is None else ref
        np.testing.assert_allclose(table["pred"].to_numpy(float), ref, rtol=1e-12, err_msg=out)
        assert info["deepsky_version"] == __version__ and info["task"] == "size" and info["unit"] == "arcsec"
        assert info["model_digest"] == manifest.keras_digest(model_file[0])
        assert info["config_digest"] == meta["config_digest"]
        assert info["options"]["images"] == ["f160w.fits"] and info["options"]["catalogue"] == "c.csv"
        assert info["date"] == "2023-11-14T22:13:20Z", out
        # a second run with the same SOURCE_DATE_EPOCH writes the same bytes
        first = (tmp_path / out).read_bytes()
        assert run_cli(capsys, *args, "-o", tmp_path / out, *extra)[0] == 0
        assert (tmp_path / out).read_bytes() == first, f"{out} is not byte-reproducible"
    monkeypatch.delenv("SOURCE_DATE_EPOCH")
    rc, err = run_cli(capsys, *args, "-o", tmp_path / "nodate.parquet", "--no-date")
    assert rc == 0 and "date" not in read_back(tmp_path / "nodate.parquet", "parquet")[1]
    rc, err = run_cli(capsys, *args, "-o", tmp_path / "now.parquet")
    assert rc == 0 and read_back(tmp_path / "now.parquet", "parquet")[1]["date"][:2] == "20"
    rc, err = run_cli(capsys, *args, "-o", tmp_path / "p.csv")
    assert rc == 2 and "unknown extension" in err and not (tmp_path / "p.csv").exists()


def test_date_stamp(monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "0")
    assert outputs.date_stamp() == "1970-01-01T00:00:00Z"
    assert outputs.date_stamp(None) is None and outputs.date_stamp("2024-01-02") == "2024-01-02"
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "soon")
    with pytest.raises(ValueError, match="SOURCE_DATE_EPOCH"):
        outputs.date_stamp()
