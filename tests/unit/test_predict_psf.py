"""PSF inputs of `deepsky predict` (DESIGN-size): PSF stamps on the model's grid (unit sum, centred,
pixel response right for empirical and assumed PSFs), native-scale cutting, exact block sums,
binned PSF FWHM, per-object PSFs, and the adaptive binning loop with a stand-in predictor that
measures half-light radii (the PSF-aware network itself comes with the lead's model)."""

from __future__ import annotations

import json
import shutil

import galsim
import numpy as np
import pandas as pd
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from deepsky import cli, cutouts
from deepsky.errors import UserError
from deepsky.predict import NO_PSF, pipeline
from deepsky.predict import psf as psfmod
from deepsky.predict.stamps import block_sum, cut_native

S = 32  # stamp of the stand-in PSF-aware model
SCALE = 0.1  # native arcsec/px of the test images


# --------------------------------------------------------------------------- PSF stamps
@pytest.mark.parametrize("b", [1, 2, 3])
def test_moffat_psf_stamp_unit_sum_centred_and_binned_like_a_coarser_drawing(b):
    stamp = psfmod.draw_moffat_psf(0.5, SCALE, S, b)
    assert stamp.shape == (S, S) and stamp.dtype == np.float32
    assert abs(float(stamp.sum(dtype=np.float64)) - 1.0) < 1e-6
    dx, dy = psfmod.centroid_offset(stamp)
    assert abs(dx) < 1e-3 and abs(dy) < 1e-3
    # block-summing b x b native pixels is drawing on b-times coarser pixels (pixel response included)
    coarse = galsim.Moffat(beta=3.0, fwhm=0.5).drawImage(nx=S, ny=S, scale=SCALE * b).array
    # to the accuracy of GalSim's FFT drawing with default GSParams (a few 1e-4 of the peak)
    np.testing.assert_allclose(stamp, coarse / coarse.sum(), atol=5e-4 * stamp.max())


def test_psf_fwhm_in_binned_pixels_pixel_included(tmp_path):
    """FWHM 0.6" at 0.1"/px is 6 native px: binned by b, the Moffat seen through b x b native pixels
    (as the training PSFs' psf_fwhm_px counts the pixel) is a little over 6/b binned px; an
    empirical PSF of the same Moffat (pixel included, 2x oversampled) gives nearly the same."""
    rows = pd.DataFrame({"fwhm": [0.6, 0.6]})
    prov = psfmod.provider_from_options(rows, None, None, None, 0.6, None, SCALE, lambda m: None)
    epsf = galsim.Convolve(galsim.Moffat(beta=3.0, fwhm=0.6), galsim.Pixel(SCALE))
    write_psf(tmp_path / "e.fits", epsf.drawImage(nx=81, ny=81, scale=SCALE / 2, method="no_pixel").array,
              PIXSCALE=SCALE / 2)
    emp = psfmod.provider_from_options(rows, tmp_path / "e.fits", None, None, None, None, SCALE, lambda m: None)
    last = np.inf
    for b in (1, 2, 3, 4):
        got = prov.fwhm_px(rows, SCALE, b)
        assert got[0] == got[1] and 6.0 / b < got[0] < 6.0 / b + 0.5 < last, (b, got)
        want = galsim.Convolve(galsim.Moffat(beta=3.0, fwhm=0.6), galsim.Pixel(SCALE * b)).drawImage(
            nx=64, ny=64, scale=SCALE * b / 8, method="no_pixel").calculateFWHM() / (SCALE * b)
        assert got[0] == pytest.approx(want, rel=0.01)
        assert emp.fwhm_px(rows, SCALE, b)[0] == pytest.approx(got[0], rel=0.05)
        last = got[0]


def test_block_sum_conserves_flux_exactly():
    x = np.random.default_rng(1).normal(3.0, 2.0, (5, 2, 96, 96))
    for b in (1, 2, 3, 4):
        y = block_sum(x, b)
        assert y.shape == (5, 2, 96 // b, 96 // b)
        np.testing.assert_allclose(y.sum(axis=(2, 3)), x.sum(axis=(2, 3)), rtol=1e-13)
        np.testing.assert_allclose(y[0, 0, 1, 2], x[0, 0, b:2 * b, 2 * b:3 * b].sum(), rtol=1e-13)
    with pytest.raises(ValueError, match="block-sum"):
        block_sum(x[..., :95, :95], 2)


@pytest.mark.parametrize("oversample", [1, 2, 4])
def test_empirical_psf_drawn_with_its_own_pixel_response(oversample):
    """An ePSF (PSF x native pixel, sampled `oversample` times finer, its scale in the header) drawn
    by InterpolatedImage without another pixel gives the PSF as the camera records it."""
    native = SCALE
    epsf = galsim.Convolve(galsim.Moffat(beta=3.0, fwhm=0.35), galsim.Pixel(native))
    n = 41 * oversample + (1 - oversample % 2)  # odd: centred on the middle pixel
    fine = epsf.drawImage(nx=n, ny=n, scale=native / oversample, method="no_pixel").array
    want = psfmod.draw_moffat_psf(0.35, native, S, 1)
    for b in (1, 2):
        got = psfmod.draw_image_psf(fine, native / oversample, native, S, b)
        assert abs(float(got.sum(dtype=np.float64)) - 1.0) < 1e-6
        ref = want if b == 1 else psfmod.draw_moffat_psf(0.35, native, S, 2)
        assert np.abs(got - ref).max() < 0.01 * ref.max(), (oversample, b)
        assert max(map(abs, psfmod.centroid_offset(got))) < 0.01


def write_psf(path, planes, **header):
    hdr = fits.Header()
    for k, v in header.items():
        hdr[k] = v
    fits.PrimaryHDU(np.asarray(planes, np.float32), header=hdr).writeto(path, overwrite=True)


def test_psf_file_scale_from_header(tmp_path):
    img = galsim.Moffat(beta=3.0, fwhm=0.3).drawImage(nx=25, ny=25, scale=0.05).array
    w = WCS(naxis=2)
    w.wcs.ctype, w.wcs.cdelt, w.wcs.crval, w.wcs.crpix = ["RA---TAN", "DEC--TAN"], [-0.05 / 3600, 0.05 / 3600], \
        [10, 10], [13, 13]
    cases = {"wcs": dict(w.to_header()), "pixscale": {"PIXSCALE": 0.05}, "webbpsf": {"PIXELSCL": 0.05},
             "cdelt": {"CDELT1": 0.05, "CUNIT1": "arcsec"}, "none": {}}
    for name, hdr in cases.items():
        write_psf(tmp_path / f"{name}.fits", img, **hdr)
        planes, scale = psfmod.read_psf_file(tmp_path / f"{name}.fits")
        assert planes.shape == (1, 25, 25)
        assert (scale is None) if name == "none" else scale == pytest.approx(0.05, rel=1e-9), name
    write_psf(tmp_path / "zero.fits", np.zeros((9, 9)))
    with pytest.raises(UserError, match="no positive flux"):
        psfmod.read_psf_file(tmp_path / "zero.fits")
    (tmp_path / "junk.fits").write_text("no")
    with pytest.raises(UserError, match="junk.fits"):
        psfmod.read_psf_file(tmp_path / "junk.fits")


def test_per_object_psfs_cube_and_fwhm_column(tmp_path):
    planes = [galsim.Moffat(beta=3.0, fwhm=f).drawImage(nx=31, ny=31, scale=SCALE).array for f in (0.3, 0.5, 0.8)]
    write_psf(tmp_path / "cube.fits", planes, PIXSCALE=SCALE)
    cat = pd.DataFrame({"psf_id": [2, 0, 0, 7, np.nan, 1], "fwhm": [0.3, 0.3, np.nan, 0.5, -1.0, 0.30001]})
    logs = []
    prov = psfmod.provider_from_options(cat, tmp_path / "cube.fits", None, "psf_id", None, None, SCALE, logs.append)
    st = prov.stamps(cat, SCALE, S, 1)
    np.testing.assert_array_equal(prov.flags(cat, SCALE), [0, 0, 0, NO_PSF, NO_PSF, 0])
    np.testing.assert_allclose(st[[0, 1, 2, 5]].sum(axis=(1, 2)), 1.0, rtol=1e-6)
    assert (st[[3, 4]] == 0).all()
    np.testing.assert_array_equal(st[1], st[2])
    fw = prov.fwhm_px(cat, SCALE, 1)
    assert fw[1] < fw[5] < fw[0] and np.isnan(fw[3])  # planes 0.3" < 0.5" < 0.8"
    assert len([k for k in prov._cache if k[0] != "fwhm"]) == 3  # three distinct planes drawn once each
    with pytest.raises(UserError, match="--psf-index-col"):
        psfmod.provider_from_options(cat, tmp_path / "cube.fits", None, None, None, None, SCALE, logs.append)
    with pytest.raises(UserError, match="'nope'"):
        psfmod.provider_from_options(cat, tmp_path / "cube.fits", None, "nope", None, None, SCALE, logs.append)

    prov = psfmod.provider_from_options(cat, None, None, None, None, "fwhm", SCALE, logs.append)
    np.testing.assert_array_equal(prov.flags(cat, SCALE), [0, 0, NO_PSF, 0, NO_PSF, 0])
    st = prov.stamps(cat, SCALE, S, 1)
    np.testing.assert_array_equal(st[0], st[5])  # 0.3" and 0.30001": the same 0.01-px cell
    assert len(prov._cache) == 2
    assert any("Moffat" in m and "assumed" in m for m in logs)


# --------------------------------------------------------------------------- native cutting
def tan_image(shape, scale=SCALE):
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval, w.wcs.crpix = [150.0, 2.0], [shape[1] / 2, shape[0] / 2]
    w.wcs.cd = np.array([[-scale, 0.0], [0.0, scale]]) / 3600
    return w


def test_cut_native_nearest_pixel_flags_and_block_sum():
    shape = (120, 140)
    w = tan_image(shape)
    img = np.zeros(shape)
    img[50, 60] = 1.0  # a point at pixel (x=60, y=50)
    img[np.isnan(img)] = 0
    img[100:, 130:] = np.nan
    band = cutouts.Band(img, w)
    pts = [(60.0, 50.0), (60.3, 49.8), (60.49, 50.49), (3.0, 50.0), (135.0, 110.0), (500.0, 50.0)]
    ra, dec = w.all_pix2world([p[0] for p in pts], [p[1] for p in pts], 0)
    x, flags = cut_native([band], ra, dec, 16)
    assert x.shape == (6, 1, 16, 16)
    for k in range(3):  # the point lands within half a pixel of the true centre (7.5, 7.5)
        yy, xx = np.unravel_index(np.argmax(x[k, 0]), (16, 16))
        assert abs(xx - 7.5 - (60 - pts[k][0])) <= 0.5 + 1e-9 and abs(yy - 7.5 - (50 - pts[k][1])) <= 0.5 + 1e-9
        assert flags[k] == 0
    assert flags[3] == cutouts.EDGE
    assert flags[4] & cutouts.BAD_PIXELS and flags[4] & cutouts.EDGE
    assert flags[5] == cutouts.EDGE | cutouts.OFF_IMAGE
    xb, _ = cut_native([band], ra[:1], dec[:1], 32)
    assert block_sum(xb, 2).sum() == pytest.approx(xb.sum(), rel=1e-12) == pytest.approx(1.0)


# --------------------------------------------------------------------------- the run, PSF-aware
def hlr_px(stamps: np.ndarray) -> np.ndarray:
    """Half-light radius (stamp pixels) about each stamp's true centre, from its curve of growth."""
    n, s = stamps.shape[0], stamps.shape[-1]
    yy, xx = np.indices((s, s)) - (s - 1) / 2.0
    r = np.hypot(xx, yy).ravel()
    order = np.argsort(r)
    out = np.empty(n)
    for i in range(n):
        cum = np.cumsum(stamps[i, 0].ravel()[order])
        out[i] = r[order][np.searchsorted(cum, 0.5 * cum[-1])]
    return out


class HlrPredictor:
    """Stands in for a PSF-aware network: 'predicts' R_e in (binned) pixels by measuring it."""

    def __init__(self):
        self.calls = []

    def __call__(self, x, rows, psfs=None):
        assert psfs is not None and psfs.shape == (len(x), S, S)
        np.testing.assert_allclose(psfs.sum(axis=(1, 2)), 1.0, rtol=1e-5)
        self.calls.append(len(x))
        r = hlr_px(x)  # model (binned) pixels; arcsec from the rows' grid, as the model's decoding does
        scale = rows["pixel_scale"].to_numpy() * rows["binning"].to_numpy()
        return pd.DataFrame({"pred": r * scale, "pred_r_e_px": r, "lo68": 0.9 * r * scale})


@pytest.fixture(scope="module")
def psf_field(tmp_path_factory, model_file):
    """A 0.1"/px FITS image of exponential galaxies (R_e 2.5, 11 and 30 px) seen through a Moffat of
    FWHM 0.4" (4 px), its PSF as a FITS file, a catalogue, and a PSF-aware model file (the tiny
    model's archive with psf_input: image in its metadata)."""
    d = tmp_path_factory.mktemp("psf")
    shape = (400, 400)
    w = tan_image(shape)
    psf = galsim.Moffat(beta=3.0, fwhm=0.4)
    image = galsim.ImageF(shape[1], shape[0], scale=SCALE)
    gals = [(100.0, 100.0, 2.5), (250.0, 120.0, 11.0), (200.0, 280.0, 30.0)]
    for x, y, re in gals:
        g = galsim.Convolve(galsim.Exponential(half_light_radius=re * SCALE, flux=1e4), psf)
        g.drawImage(image, add_to_image=True, center=galsim.PositionD(x + 1, y + 1))
    fits.PrimaryHDU(image.array, header=w.to_header()).writeto(d / "img.fits")
    ra, dec = w.all_pix2world([g[0] for g in gals], [g[1] for g in gals], 0)
    pd.DataFrame({"ra": ra, "dec": dec, "true_re_px": [g[2] for g in gals], "fwhm": 0.4}).to_csv(d / "cat.csv",
                                                                                                   index=False)
    epsf = galsim.Convolve(psf, galsim.Pixel(SCALE)).drawImage(nx=41, ny=41, scale=SCALE / 2, method="no_pixel")
    write_psf(d / "psf.fits", epsf.array, PIXSCALE=SCALE / 2)
    meta = json.loads(model_file[0].with_suffix(".json").read_text())
    meta["preprocess"] = {**meta["preprocess"], "psf_input": "image", "stamp": S, "re_switch_px": 8.0,
                          "psf_fwhm_min_px": 1.7}
    meta["unit"] = "px"
    shutil.copy(model_file[0], d / "psfnet.keras")
    (d / "psfnet.json").write_text(json.dumps(meta))
    return d


@pytest.mark.parametrize("how", ["psf", "fwhm", "fwhm_col"])
def test_adaptive_binning_measures_small_and_large_galaxies(tmp_path, psf_field, how):
    d = psf_field
    kw = {"psf": dict(psf=d / "psf.fits"), "fwhm": dict(psf_fwhm=0.4), "fwhm_col": dict(psf_fwhm_col="fwhm")}[how]
    pred = HlrPredictor()
    logs = []
    t = pipeline.run(d / "psfnet.keras", tmp_path / "p.parquet", images=[d / "img.fits"], catalogue=d / "cat.csv",
                     predictor=pred, log=logs.append, **kw)
    assert (t["flag"] == 0).all(), t
    # the 2.5 px galaxy stays at native scale; 11 px is measured again on 2x2 bins (5.5 binned px);
    # 30 px would want b = 3 or 4, but the 4 px PSF seen through 3x3-pixel bins is 1.6 binned px,
    # under the model's 1.7 px minimum
    assert t["binning"].tolist() == [1, 2, 2]
    # each 'prediction' is the half-light radius of what the stand-in saw: the same galaxy drawn
    # directly on the stamp's grid (native, or b times coarser), measured the same way
    for k, (re, b) in enumerate([(2.5, 1), (11.0, 2), (30.0, 2)]):
        g = galsim.Convolve(galsim.Exponential(half_light_radius=re * SCALE), galsim.Moffat(beta=3.0, fwhm=0.4))
        want = hlr_px(g.drawImage(nx=S, ny=S, scale=SCALE * b).array[None, None])[0]
        assert t["pred_r_e_px"][k] == pytest.approx(want, rel=0.03, abs=0.5), k
    # arcsec = model pixels x native scale x binning: the 11 px galaxy, binned, fits its stamp
    np.testing.assert_allclose(t["pred"], t["pred_r_e_px"] * SCALE * t["binning"], rtol=1e-12)
    assert t["pred"][1] == pytest.approx(11.0 * SCALE, rel=0.15)
    np.testing.assert_allclose(t["lo68"], 0.9 * t["pred"], rtol=1e-12)
    assert pred.calls[1:] == [3, 2], pred.calls  # pass 1 on all three, pass b=2 on two
    import pyarrow.parquet as pq

    info = json.loads(pq.read_schema(tmp_path / "p.parquet").metadata[b"deepsky"])
    assert info["options"]["max_binning"] == 8
    if how != "psf":
        assert any("assumed" in m for m in logs)


def test_max_binning_and_a_binned_stamp_beyond_the_image(tmp_path, psf_field):
    d = psf_field
    t = pipeline.run(d / "psfnet.keras", tmp_path / "p.parquet", images=[d / "img.fits"], catalogue=d / "cat.csv",
                     psf_fwhm=0.4, predictor=HlrPredictor(), max_binning=1, log=lambda m: None)
    assert t["binning"].tolist() == [1, 1, 1]
    # a 50 x 50 px cut-out around the 11 px galaxy: its 32 px native stamp fits, the 64 px one for
    # b = 2 does not, so the native measurement stays (unflagged)
    with fits.open(d / "img.fits") as h:
        w = WCS(h[0].header)
        fits.PrimaryHDU(h[0].data[95:145, 225:275], header=w[95:145, 225:275].to_header()).writeto(tmp_path / "c.fits")
    cat = pd.read_csv(d / "cat.csv").iloc[[1]]
    cat.to_csv(tmp_path / "c.csv", index=False)
    t = pipeline.run(d / "psfnet.keras", tmp_path / "c.parquet", images=[tmp_path / "c.fits"],
                     catalogue=tmp_path / "c.csv", psf_fwhm=0.4, predictor=HlrPredictor(), log=lambda m: None)
    assert t["binning"].tolist() == [1] and t["flag"].tolist() == [0] and t["pred_r_e_px"][0] > 8.0


def test_psf_aware_model_without_psf_names_the_options(tmp_path, capfd, psf_field):
    d = psf_field
    rc = cli.main(["predict", str(d / "psfnet.keras"), "--images", str(d / "img.fits"), "--catalogue",
                   str(d / "cat.csv"), "-o", str(tmp_path / "p.parquet")])
    err = capfd.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1
    for opt in ("--psf FILE", "--psf-fwhm ARCSEC", "--psf-fwhm-col COL"):
        assert opt in err


def test_psf_options_refused_for_a_model_without_psf_input(tmp_path, capfd, model_file, psf_field):
    rc = cli.main(["predict", str(model_file[0]), "--stamps", str(model_file[0].parent / "stamps.npz"),
                   "--psf-fwhm", "0.2", "-o", str(tmp_path / "p.parquet")])
    err = capfd.readouterr().err
    assert rc == 2 and "does not take a PSF" in err


def test_npz_stamps_need_their_scale_for_a_fwhm(tmp_path, psf_field):
    d = psf_field
    blob = galsim.Gaussian(fwhm=0.5).drawImage(nx=64, ny=64, scale=SCALE).array
    x = np.broadcast_to(blob, (4, 1, 64, 64)).astype(np.float32)
    np.save(tmp_path / "s.npy", x)
    with pytest.raises(UserError, match="--stamps-pixel-scale"):
        pipeline.run(d / "psfnet.keras", tmp_path / "p.parquet", stamps=tmp_path / "s.npy", psf_fwhm=0.4,
                     predictor=HlrPredictor(), log=lambda m: None)
    t = pipeline.run(d / "psfnet.keras", tmp_path / "p.parquet", stamps=tmp_path / "s.npy", psf_fwhm=0.4,
                     stamps_pixel_scale=SCALE, predictor=HlrPredictor(), log=lambda m: None)
    assert len(t) == 4 and (t["flag"] == 0).all() and (t["binning"] == 1).all()
    np.testing.assert_allclose(t["pred"], hlr_px(x[:, :, 16:48, 16:48]) * SCALE)
