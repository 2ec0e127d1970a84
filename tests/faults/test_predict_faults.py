"""Fault injection for `deepsky predict` (issue 16 item 5): every damaged or wrong input a user can
hand it ends in one line naming it and exit status 2, never a traceback or a silent number;
stamps with nothing to measure are flagged; memory does not grow with the number of stamps."""

from __future__ import annotations

import io as _io
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from astropy.io import fits

import candels_fixtures as cf
from deepsky import cli, io
from deepsky.predict import NO_SIGNAL

SCRIPTS = Path(cli.__file__).resolve().parents[1]


def run_cli(capfd, *args):
    """In-process CLI run; stderr at the file-descriptor level (what a terminal would show)."""
    rc = cli.main(["predict", *map(str, args)])
    return rc, capfd.readouterr().err


def assert_one_line(rc, err, *words):
    lines = err.strip().splitlines()
    assert rc == 2, (rc, err)
    assert len(lines) == 1 and lines[0].startswith("deepsky predict: error: "), err
    assert "Traceback" not in err
    for w in words:
        assert str(w) in lines[0], (w, lines[0])


def npz_bytes(arrays: dict, compression=zipfile.ZIP_STORED) -> bytes:
    buf = _io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compression) as zf:
        for name, a in arrays.items():
            b = _io.BytesIO()
            np.lib.format.write_array(b, a, allow_pickle=True)
            zf.writestr(f"{name}.npy", b.getvalue())
    return buf.getvalue()


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    d = tmp_path_factory.mktemp("img")
    rows = cf.make_mosaic(d / "f160w.fits", noise=0.05)
    good = [g for g in rows if g["band"] == "H" and g["seq"] in (1, 2)]
    pd.DataFrame({"ra": [g["ra"] for g in good], "dec": [g["dec"] for g in good]}).to_csv(d / "c.csv", index=False)
    return d / "f160w.fits", d / "c.csv"


# --------------------------------------------------------------------------- the eight inputs of issue 16
def test_empty_and_truncated_npz(tmp_path, capfd, model_file):
    model, stamps = model_file
    good = (model.parent / "stamps.npz").read_bytes()
    (tmp_path / "empty.npz").write_bytes(b"")
    assert_one_line(*run_cli(capfd, model, "--stamps", tmp_path / "empty.npz", "-o", tmp_path / "o.parquet"),
                    "empty.npz", "empty")
    (tmp_path / "cut.npz").write_bytes(good[: len(good) // 2])
    assert_one_line(*run_cli(capfd, model, "--stamps", tmp_path / "cut.npz", "-o", tmp_path / "o.parquet"),
                    "cut.npz", "truncated")
    # a complete zip whose array header promises more stamps than the member holds
    hdr = np.lib.format.header_data_from_array_1_0(stamps)
    b = _io.BytesIO()
    np.lib.format.write_array_header_1_0(b, {**hdr, "shape": (50, *stamps.shape[1:])})
    with zipfile.ZipFile(tmp_path / "lies.npz", "w") as zf:
        zf.writestr("images.npy", b.getvalue() + stamps[:3].tobytes())
    assert_one_line(*run_cli(capfd, model, "--stamps", tmp_path / "lies.npz", "-o", tmp_path / "o.parquet"),
                    "lies.npz", "truncated")
    # one flipped byte inside the stamps: the member's CRC says so
    flipped = bytearray(good)
    flipped[len(good) // 2] ^= 0xFF
    (tmp_path / "flip.npz").write_bytes(bytes(flipped))
    assert_one_line(*run_cli(capfd, model, "--stamps", tmp_path / "flip.npz", "-o", tmp_path / "o.parquet"),
                    "flip.npz", "CRC")
    assert not (tmp_path / "o.parquet").exists()


def test_npy_cubes_are_read_and_a_truncated_one_refused(tmp_path, capfd, model_file):
    model, stamps = model_file
    rc, err = run_cli(capfd, model, "--stamps", model.parent / "stamps.npz", "-o", tmp_path / "ref.parquet")
    assert rc == 0, err
    np.save(tmp_path / "cube.npy", stamps)
    rc, err = run_cli(capfd, model, "--stamps", tmp_path / "cube.npy", "-o", tmp_path / "npy.parquet")
    assert rc == 0, err
    np.testing.assert_array_equal(pd.read_parquet(tmp_path / "npy.parquet")["pred"],
                                  pd.read_parquet(tmp_path / "ref.parquet")["pred"])
    raw = (tmp_path / "cube.npy").read_bytes()
    (tmp_path / "cut.npy").write_bytes(raw[:-1000])
    assert_one_line(*run_cli(capfd, model, "--stamps", tmp_path / "cut.npy", "-o", tmp_path / "o.parquet"),
                    "cut.npy", "truncated")
    (tmp_path / "text.npy").write_text("not an array\n")
    assert_one_line(*run_cli(capfd, model, "--stamps", tmp_path / "text.npy", "-o", tmp_path / "o.parquet"),
                    "text.npy")


def test_truncated_and_non_fits_images(tmp_path, capfd, model_file, image):
    model, _ = model_file
    fits_path, cat = image
    raw = fits_path.read_bytes()
    (tmp_path / "cut.fits").write_bytes(raw[: len(raw) // 2])
    assert_one_line(*run_cli(capfd, model, "--images", tmp_path / "cut.fits", "--catalogue", cat,
                             "-o", tmp_path / "o.parquet"), "cut.fits", "truncated")
    (tmp_path / "cut_header.fits").write_bytes(raw[:2000])  # inside the first header
    assert_one_line(*run_cli(capfd, model, "--images", tmp_path / "cut_header.fits", "--catalogue", cat,
                             "-o", tmp_path / "o.parquet"), "cut_header.fits")
    (tmp_path / "notes.fits").write_text("these are my notes, not an image\n" * 200)
    assert_one_line(*run_cli(capfd, model, "--images", tmp_path / "notes.fits", "--catalogue", cat,
                             "-o", tmp_path / "o.parquet"), "notes.fits", "not a readable FITS file")
    table = tmp_path / "table.fits"  # a FITS file holding only a table
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns([fits.Column("a", "E", array=[1.0])])]
                 ).writeto(table)
    assert_one_line(*run_cli(capfd, model, "--images", table, "--catalogue", cat, "-o", tmp_path / "o.parquet"),
                    "table.fits", "no 2-D image")


def test_hdu_out_of_range(tmp_path, capfd, model_file, image):
    model, _ = model_file
    fits_path, cat = image
    assert_one_line(*run_cli(capfd, model, "--images", fits_path, "--catalogue", cat, "--hdu", 7,
                             "-o", tmp_path / "o.parquet"), "--hdu 7", "out of range", "2 HDU(s)")
    assert_one_line(*run_cli(capfd, model, "--images", fits_path, "--catalogue", cat, "--hdu", 0,
                             "-o", tmp_path / "o.parquet"), "HDU 0", "no 2-D image")
    rc, err = run_cli(capfd, model, "--images", fits_path, "--catalogue", cat, "--hdu", 1, "-o", tmp_path / "o.parquet")
    assert rc == 0, err


def test_output_path_problems(tmp_path, capfd, model_file):
    model, _ = model_file
    npz = model.parent / "stamps.npz"
    (tmp_path / "outdir").mkdir()
    assert_one_line(*run_cli(capfd, model, "--stamps", npz, "-o", tmp_path / "outdir"), "outdir", "is a directory")
    (tmp_path / "afile").write_text("x")
    assert_one_line(*run_cli(capfd, model, "--stamps", npz, "-o", tmp_path / "afile" / "p.parquet"),
                    "afile", "is a file")
    assert_one_line(*run_cli(capfd, model, "--stamps", npz, "-o", tmp_path / "afile", "--partitioned"),
                    "afile", "not a folder")
    assert list((tmp_path / "outdir").iterdir()) == []


def test_damaged_models(tmp_path, capfd, model_file):
    model, _ = model_file
    npz = model.parent / "stamps.npz"
    raw = bytearray(model.read_bytes())
    with zipfile.ZipFile(model) as zf:
        info = zf.getinfo("model.weights.h5")
    assert info.compress_type == zipfile.ZIP_STORED
    raw[info.header_offset + 30 + len(info.filename) + 4000] ^= 0xFF  # one bit pattern inside the weights
    bad = tmp_path / "crc.keras"
    bad.write_bytes(bytes(raw))
    bad.with_suffix(".json").write_bytes(model.with_suffix(".json").read_bytes())
    assert_one_line(*run_cli(capfd, bad, "--stamps", npz, "-o", tmp_path / "o.parquet"),
                    "crc.keras", "CRC", "model.weights.h5")
    cut = tmp_path / "cut.keras"
    cut.write_bytes(bytes(raw[: len(raw) // 2]))
    cut.with_suffix(".json").write_bytes(model.with_suffix(".json").read_bytes())
    assert_one_line(*run_cli(capfd, cut, "--stamps", npz, "-o", tmp_path / "o.parquet"), "cut.keras")
    hollow = tmp_path / "hollow.keras"  # a valid zip that is no Keras model
    with zipfile.ZipFile(hollow, "w") as zf:
        zf.writestr("readme.txt", "hello")
    hollow.with_suffix(".json").write_bytes(model.with_suffix(".json").read_bytes())
    assert_one_line(*run_cli(capfd, hollow, "--stamps", npz, "-o", tmp_path / "o.parquet"),
                    "hollow.keras", "cannot be loaded")
    legacy = tmp_path / "old.h5"
    legacy.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    assert_one_line(*run_cli(capfd, legacy, "--stamps", npz, "-o", tmp_path / "o.parquet"), "old.h5", "legacy")
    meta = tmp_path / "nometa.keras"
    meta.write_bytes(model.read_bytes())
    meta.with_suffix(".json").write_text("{not json")
    assert_one_line(*run_cli(capfd, meta, "--stamps", npz, "-o", tmp_path / "o.parquet"), "nometa.json", "JSON")
    assert not (tmp_path / "o.parquet").exists()


def test_one_line_from_a_separate_process(tmp_path, model_file):
    """What a terminal shows: nothing of TensorFlow's, one line, status 2 (here: a CRC error)."""
    model, _ = model_file
    raw = bytearray(model.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    (tmp_path / "m.keras").write_bytes(bytes(raw))
    (tmp_path / "m.json").write_bytes(model.with_suffix(".json").read_bytes())
    env = {**os.environ, "PYTHONPATH": str(SCRIPTS)}
    p = subprocess.run([sys.executable, "-m", "deepsky.cli", "predict", str(tmp_path / "m.keras"), "--stamps",
                        str(model.parent / "stamps.npz"), "-o", str(tmp_path / "o.parquet")],
                       capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1 and "m.keras" in p.stderr, p.stderr


# --------------------------------------------------------------------------- array types and empty stamps
@pytest.mark.parametrize("kind, words", [("complex", "complex"), ("bool", "boolean"), ("object", "objects"),
                                         ("str", "stamps must be real numbers"),
                                         ("fortran", "Fortran order")])
def test_arrays_that_are_not_real_numbers_are_refused(tmp_path, capfd, model_file, kind, words):
    model, stamps = model_file
    arr = {"complex": stamps.astype(np.complex64), "bool": stamps > 0,
           "object": np.array([None] * 8, dtype=object), "str": np.array(["a"] * 8),
           "fortran": np.asfortranarray(stamps)}[kind]
    (tmp_path / "x.npz").write_bytes(npz_bytes({"images": arr}))
    assert_one_line(*run_cli(capfd, model, "--stamps", tmp_path / "x.npz", "-o", tmp_path / "o.parquet"),
                    "x.npz", words)


def test_empty_and_constant_stamps_are_flagged_not_sized(tmp_path, capfd, model_file):
    model, stamps = model_file
    x = stamps.copy()
    x[1] = 0.0
    x[3] = 7.5
    x[5, 0, :, :] = np.nan  # bad pixels take precedence: the stamp is not also 'no_signal'
    io.write_npz(tmp_path / "s.npz", {"images": x})
    rc, err = run_cli(capfd, model, "--stamps", tmp_path / "s.npz", "-o", tmp_path / "o.parquet")
    assert rc == 0, err
    t = pd.read_parquet(tmp_path / "o.parquet")
    assert t["flag"].tolist() == [0, NO_SIGNAL, 0, NO_SIGNAL, 0, 2, 0, 0]
    assert t["flag_names"][1] == t["flag_names"][3] == "no_signal"
    assert t["pred"][[1, 3, 5]].isna().all() and t["pred"].drop(index=[1, 3, 5]).notna().all()
    assert "no_signal" in err


# --------------------------------------------------------------------------- memory and chunking
def test_chunks_and_compressed_members_give_the_same_predictions(tmp_path, capfd, model_file):
    model, stamps = model_file
    npz = model.parent / "stamps.npz"
    rc, err = run_cli(capfd, model, "--stamps", npz, "-o", tmp_path / "one.parquet")
    assert rc == 0, err
    ref = pd.read_parquet(tmp_path / "one.parquet")["pred"]
    np.savez_compressed(tmp_path / "z.npz", images=stamps)
    for args in (["--stamps", npz, "--chunk-size", 3], ["--stamps", tmp_path / "z.npz", "--chunk-size", 3]):
        rc, err = run_cli(capfd, model, *args, "-o", tmp_path / "c.parquet")
        assert rc == 0, err
        np.testing.assert_allclose(pd.read_parquet(tmp_path / "c.parquet")["pred"], ref, rtol=1e-5)
    assert_one_line(*run_cli(capfd, model, "--stamps", npz, "--chunk-size", 0, "-o", tmp_path / "c.parquet"),
                    "--chunk-size")


# the peak of this process's own memory (VmHWM: ru_maxrss would include the forking parent's size,
# as Linux keeps it across exec)
PEAK_RSS = """
import sys
from deepsky import cli
rc = cli.main(sys.argv[1:])
hwm = [line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM:")][0]
print("PEAK_RSS_KB", hwm, file=sys.stderr)
sys.exit(rc)
"""


def peak_rss_mb(model, npz, out) -> float:
    env = {**os.environ, "PYTHONPATH": str(SCRIPTS)}
    p = subprocess.run([sys.executable, "-c", PEAK_RSS, "predict", str(model), "--stamps", str(npz), "-o", str(out),
                        "--chunk-size", "1024"], capture_output=True, text=True, env=env, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    return int(p.stderr.split("PEAK_RSS_KB")[1].split()[0]) / 1024.0


def test_memory_does_not_grow_with_the_number_of_stamps(tmp_path, model_file):
    """10x more stamps (8 MB -> 80 MB of float32) must not cost more memory: the cube is read by rows.
    Before, the whole cube was read and copied to float64 (~5x its size: ~1 GB for 200 MB)."""
    model, stamps = model_file
    rng = np.random.default_rng(5)
    sizes = {}
    for n in (2_000, 20_000):
        x = stamps[rng.integers(0, len(stamps), n)] + rng.normal(0, 1, (n, *stamps.shape[1:])).astype(np.float32)
        io.write_npz(tmp_path / f"{n}.npz", {"images": x})
        del x
        sizes[n] = peak_rss_mb(model, tmp_path / f"{n}.npz", tmp_path / f"{n}.parquet")
        assert len(pd.read_parquet(tmp_path / f"{n}.parquet")) == n
    grown = sizes[20_000] - sizes[2_000]
    print(f"peak RSS: {sizes[2_000]:.0f} MB for 2,000 stamps, {sizes[20_000]:.0f} MB for 20,000 (+{grown:.0f} MB; "
          f"the cube grew by {18_000 * stamps[0].nbytes / 2**20:.0f} MB)")
    assert grown < 40, sizes
