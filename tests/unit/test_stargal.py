"""Star/galaxy stand-in: the GalSim recipe, its measured photometry, the task and its metrics."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
from deepsky import sims  # noqa: E402
from deepsky.learn import data, inference, tasks  # noqa: E402
from deepsky.reports import metrics, task_reports  # noqa: E402
from deepsky.sims import registry, stargal  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def default_recipe(**over) -> dict:
    """The stargal recipe of config/config.yaml with the schema's defaults filled in."""
    from snakemake.utils import validate

    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    validate(cfg, str(REPO / "workflow" / "schemas" / "config.schema.yaml"), set_default=True)
    rec = dict(cfg["sims"]["stargal"])
    rec.update(over)
    return rec


@pytest.fixture(scope="module")
def small_shard():
    rec = default_recipe(per_shard=40, per_field=20, stamp=32)
    return rec, *sims.simulate_shard(rec, 11, "stargal", 3)


# --------------------------------------------------------------------------- recipe
def test_registered_and_dispatched():
    assert registry.recipe_module("stargal") is stargal


def test_shard_is_deterministic_and_seeded(small_shard):
    rec, images, cat = small_shard
    again_images, again_cat = sims.simulate_shard(rec, 11, "stargal", 3)
    np.testing.assert_array_equal(images, again_images)
    pd.testing.assert_frame_equal(cat, again_cat)
    other_images, _ = sims.simulate_shard(rec, 12, "stargal", 3)
    assert not np.array_equal(images, other_images)
    other_shard, _ = sims.simulate_shard(rec, 11, "stargal", 4)
    assert not np.array_equal(images, other_shard)
    # stamp i is a function of (seed, dataset, shard, i): a shorter shard is a prefix of a longer one
    short_images, short_cat = sims.simulate_shard({**rec, "per_shard": 25}, 11, "stargal", 3)
    np.testing.assert_array_equal(short_images, images[:25])
    pd.testing.assert_frame_equal(short_cat, cat.iloc[:25])


def test_shard_format_and_catalogue_columns(small_shard):
    rec, images, cat = small_shard
    assert images.shape == (40, 5, 32, 32) and images.dtype == np.float32
    assert np.isfinite(images).all()
    for col in ["id", "objID", "ra", "dec", "run", "rerun", "camcol", "field", "petroRad_r", "type", "class",
                "is_star"] + [f"{m}_{b}" for m in ("psfMag", "cModelMag") for b in "ugriz"]:
        assert col in cat, col
    assert cat["id"].is_unique and cat["objID"].is_unique
    assert set(cat["class"]) <= {"STAR", "GALAXY"}
    assert (cat["is_star"] == (cat["class"] == "STAR")).all()
    assert set(cat["type"]) <= {3, 6}
    # type is SDSS photo's own rule applied to the measured magnitudes
    extended = cat["psfMag_r"] - cat["cModelMag_r"] > stargal.SDSS_EXTENDED_CUT
    assert ((cat["type"] == 3) == extended).all()
    # every field of a shard has its own seeing, shared by its stamps
    assert cat.groupby("field_index")["psf_fwhm_arcsec"].nunique().eq(1).all()
    assert cat["psf_fwhm_arcsec"].nunique() == 2


def test_star_fraction_follows_config():
    rec = default_recipe(per_shard=6000)
    cat, _ = stargal.draw_stargal_params(rec, 5, "stargal", 0)
    frac = cat["is_star"].mean()
    assert abs(frac - 0.27) < 0.02  # 3.5 sigma for 6000 draws
    cat, _ = stargal.draw_stargal_params({**rec, "star_fraction": 0.6}, 5, "stargal", 0)
    assert abs(cat["is_star"].mean() - 0.6) < 0.025


def test_galaxy_sizes_shrink_with_magnitude_down_to_barely_resolved():
    rec = default_recipe(per_shard=6000)
    cat, _ = stargal.draw_stargal_params(rec, 5, "stargal", 0)
    gal = cat[~cat["is_star"]]
    bright = gal.loc[gal["r_mag_true"] < 18, "r_disk_arcsec"].median()
    faint = gal.loc[gal["r_mag_true"] > 21, "r_disk_arcsec"].median()
    assert bright > 1.5 * faint
    # a good share of faint galaxies are much smaller than the seeing disk (FWHM ~1.35")
    assert (gal.loc[gal["r_mag_true"] > 21, "r_disk_arcsec"] < 0.4).mean() > 0.15


def test_measured_magnitudes_are_sensible():
    """Bright objects: psfMag ~ true magnitude for stars and psfMag ~ cModelMag; galaxies are extended."""
    rec = default_recipe(per_shard=60, per_field=30, r_mag={"min": 16.0, "max": 19.0})
    _, cat = sims.simulate_shard(rec, 3, "stargal", 0)
    stars, gals = cat[cat["is_star"]], cat[~cat["is_star"]]
    assert len(stars) >= 5 and len(gals) >= 20
    # stars: PSF magnitude within a few hundredths of the truth, cModel ~ PSF
    assert abs(np.median(stars["psfMag_r"] - stars["r_mag_true"])) < 0.03
    assert np.all(np.abs(stars["psfMag_r"] - stars["cModelMag_r"]) < 0.1)
    assert np.all(stars["psfMag_r"] - stars["cModelMag_r"] < stargal.SDSS_EXTENDED_CUT)
    # galaxies: the model recovers the total flux; the PSF fit misses the extended light
    assert abs(np.median(gals["cModelMag_r"] - gals["r_mag_true"])) < 0.15
    assert np.median(gals["psfMag_r"] - gals["cModelMag_r"]) > 0.4
    assert gals["petroRad_r"].median() > stars["petroRad_r"].median()
    # colours: stars follow the locus (g-r measured vs true within 0.1 mag for bright stars)
    true_gr = -2.5 * np.log10(stars["flux_true_g"] / stars["flux_true_r"])
    assert np.all(np.abs((stars["psfMag_g"] - stars["psfMag_r"]) - true_gr) < 0.1)


def test_noise_level_in_nanomaggies(small_shard):
    """Pixel noise of the stamp borders matches the sky noise the recipe promises, per band."""
    rec, images, cat = small_shard
    sigma = data.border_sigma(images)
    expect = cat[[f"sky_sigma_{b}" for b in "ugriz"]].to_numpy()
    ratio = np.median(sigma / expect, axis=0)
    assert np.all(np.abs(ratio - 1) < 0.1), ratio
    # realistic SDSS r-band depth: sky sigma of a few 0.01 nanomaggies per 0.396" pixel
    assert 0.01 < np.median(expect[:, 2]) < 0.06


def test_luptitudes():
    flux = np.array([10.0, 100.0, 1e4])  # >> softening b (0.12 nmgy in r): Pogson limit
    np.testing.assert_allclose(stargal.luptitude(flux, "r"), 22.5 - 2.5 * np.log10(flux), atol=2e-3)
    assert np.isfinite(stargal.luptitude(np.array([0.0, -1.0]), "u")).all()
    np.testing.assert_allclose(stargal.mag_to_nmgy(22.5), 1.0)


def test_power_law_counts():
    rng = np.random.default_rng(0)
    m = stargal.power_law_mags(rng, 15, 22, 0.3, 200000)
    assert m.min() >= 15 and m.max() <= 22
    n1, n2 = ((m >= 20) & (m < 21)).sum(), ((m >= 21) & (m < 22)).sum()
    assert abs(np.log10(n2 / n1) - 0.3) < 0.02


def test_measure_recovers_flux_of_noiseless_star():
    rec = default_recipe()
    field = stargal.draw_fields(rec, np.random.default_rng(1), 1).iloc[0]
    psfs = stargal.field_psfs(rec, field)
    radii = stargal.template_radii(rec)
    tpl = stargal.FieldTemplates(psfs, radii, 48, 0.396, stargal.profile_kimages(radii, 96, 0.396))
    import galsim

    img = np.stack([p.withFlux(10.0).drawImage(nx=48, ny=48, scale=0.396, offset=(0.3, -0.2)).array for p in psfs])
    m = stargal.measure(img, tpl, float(field["fwhm_r"]) / 2.355 / 0.396)
    np.testing.assert_allclose(m["psf_flux"], 10.0, rtol=5e-3)
    np.testing.assert_allclose(m["cmodel_flux"], 10.0, rtol=2e-2)
    assert abs(m["cx"] - 0.3) < 0.05 and abs(m["cy"] + 0.2) < 0.05
    # an extended exponential galaxy: PSF flux well below the model flux
    gal = galsim.Convolve(galsim.Exponential(half_light_radius=1.5, flux=10.0), psfs[2])
    img[2] = gal.drawImage(nx=48, ny=48, scale=0.396).array
    m = stargal.measure(img, tpl, float(field["fwhm_r"]) / 2.355 / 0.396)
    assert m["psf_flux"][2] < 0.6 * m["cmodel_flux"][2]
    assert abs(m["cmodel_flux"][2] / 10.0 - 1) < 0.05


# --------------------------------------------------------------------------- preprocessing and task
def test_border_sigma_and_noise_norm():
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, (3, 5, 32, 32)).astype(np.float32) * np.array([1, 2, 3, 4, 5], np.float32)[None, :, None, None]
    np.testing.assert_allclose(data.border_sigma(x).mean(axis=0), [1, 2, 3, 4, 5], rtol=0.1)
    spec = {"bands": 5, "stamp": 32, "norm": "noise", "stretch": "linear", "layout": "full", "flux_scale": 1.0}
    y = data.preprocess(x, spec)
    assert y.shape == (3, 32, 32, 5)
    np.testing.assert_allclose(y.std(axis=(0, 1, 2)), 1.0, rtol=0.1)


def test_binary_task_encode_decode():
    task = tasks.get_task("stargal")
    assert task.label == "is_star" and task.outputs == 1
    t = task.fit_target(np.array([True, False, False, True]))
    assert t["prior"] == 0.5
    np.testing.assert_array_equal(task.encode(pd.Series([True, False]), t), [1.0, 0.0])
    out = task.decode(np.array([[0.0], [100.0], [-100.0]]), t)
    np.testing.assert_allclose(out["pred"], [0.5, 1.0, 0.0], atol=1e-12)
    with pytest.raises(ValueError, match="is_star"):
        task.encode(np.array(["STAR", "GALAXY"]), t)


def test_psf_channel_needs_the_catalogue_column():
    spec = {"bands": 5, "stamp": 32, "norm": "ref", "ref_band": 2, "stretch": "asinh", "layout": "fovea",
            "flux_scale": 10.0, "pixel_scale": 0.396, "psf_channel": True, "psf_column": "psfFWHM_r"}
    x = np.random.default_rng(0).normal(0, 1, (4, 5, 32, 32)).astype(np.float32)
    cat = pd.DataFrame({"psfFWHM_r": [1.0, 1.2, 1.4, 2.0]})
    y = data.preprocess(x, spec, psf_fwhm=inference.psf_fwhm(cat, spec))
    assert y.shape == (4, 16, 16, 12) and data.input_shape(spec) == (16, 16, 12)
    # the seeing channel (binned half of the fovea) widens with the FWHM
    psf_binned = y[..., -1]
    assert (psf_binned > 0.5).sum(axis=(1, 2))[-1] > (psf_binned > 0.5).sum(axis=(1, 2))[0]
    with pytest.raises(ValueError, match="psfFWHM_r"):
        inference.psf_fwhm(pd.DataFrame({"objID": [1]}), spec)
    with pytest.raises(ValueError, match="PSF FWHM"):
        data.preprocess(x, spec)


# --------------------------------------------------------------------------- metrics
def test_roc_and_auc_known_values():
    y = np.array([0, 0, 1, 1])
    s = np.array([0.1, 0.4, 0.35, 0.8])
    fpr, tpr, thr = metrics.roc_curve(y, s)
    np.testing.assert_allclose(fpr, [0, 0, 0.5, 0.5, 1])
    np.testing.assert_allclose(tpr, [0, 0.5, 0.5, 1, 1])
    np.testing.assert_allclose(thr[1:], [0.8, 0.4, 0.35, 0.1])
    assert metrics.roc_auc(y, s) == pytest.approx(0.75)
    assert metrics.roc_auc(y, -s) == pytest.approx(0.25)
    assert metrics.roc_auc([0, 1, 0, 1], [1, 2, 3, 4]) == pytest.approx(0.75)
    assert metrics.roc_auc([0, 0, 1, 1], [1, 1, 1, 1]) == 0.5  # all tied
    assert metrics.roc_auc([0, 1], [0, 1]) == 1.0
    assert np.isnan(metrics.roc_auc([1, 1], [0.2, 0.3]))


def test_auc_equals_trapezoid_area_with_ties():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 500)
    s = np.round(rng.normal(y * 0.8, 1.0), 1)  # rounding makes many ties
    fpr, tpr, _ = metrics.roc_curve(y, s)
    assert metrics.roc_auc(y, s) == pytest.approx(np.trapezoid(tpr, fpr), abs=1e-12)
    # Mann-Whitney by brute force
    pos, neg = s[y == 1], s[y == 0]
    brute = ((pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()) / (pos.size * neg.size)
    assert metrics.roc_auc(y, s) == pytest.approx(brute, abs=1e-12)


def test_purity_completeness_known_counts():
    y = np.array([1, 1, 1, 0, 0, 0, 0, 0])
    p = np.array([1, 1, 0, 1, 0, 0, 0, 0])
    m = metrics.purity_completeness(y, p)
    assert (m["tp"], m["fn"], m["fp"], m["tn"]) == (2, 1, 1, 4)
    assert m["pos_purity"] == pytest.approx(2 / 3) and m["pos_completeness"] == pytest.approx(2 / 3)
    assert m["neg_purity"] == pytest.approx(4 / 5) and m["neg_completeness"] == pytest.approx(4 / 5)
    assert m["accuracy"] == pytest.approx(6 / 8)


def test_brier_and_calibration_known_values():
    assert metrics.brier_score([1, 0], [0.8, 0.3]) == pytest.approx(0.065)
    y = np.r_[np.ones(5), np.zeros(5)]
    assert metrics.expected_calibration_error(y, np.full(10, 0.9)) == pytest.approx(0.4)
    assert metrics.expected_calibration_error(y, np.full(10, 0.5)) == pytest.approx(0.0)
    # two bins, each perfectly calibrated -> 0; shift one -> weighted error
    y = np.array([1, 0, 0, 0, 1, 1, 1, 0])
    p = np.array([0.25, 0.25, 0.25, 0.25, 0.75, 0.75, 0.75, 0.75])
    assert metrics.expected_calibration_error(y, p) == pytest.approx(0.0)
    table = metrics.reliability_table(y, p, n_bins=4)
    assert [r["count"] for r in table] == [0, 4, 0, 4]
    assert table[3]["frac_pos"] == 0.75 and np.isnan(table[0]["mean_prob"])
    p2 = np.array([0.05] * 4 + [0.75] * 4)
    assert metrics.expected_calibration_error(y, p2) == pytest.approx(0.5 * 0.2)
    with pytest.raises(ValueError):
        metrics.reliability_table([1], [1.2])


def test_stargal_report_cnn_vs_baseline():
    rng = np.random.default_rng(0)
    n = 400
    is_star = rng.uniform(size=n) < 0.3
    mag = rng.uniform(16, 22, n)
    # baseline: concentration ~0 for stars, positive for galaxies, noisier at the faint end
    conc = np.where(is_star, 0.0, 0.5 * (22.5 - mag) / 6) + rng.normal(0, 0.02 + 0.05 * (mag > 21), n)
    cat = pd.DataFrame({"is_star": is_star, "cModelMag_r": mag, "psfMag_r": mag + conc})
    pred = pd.DataFrame({"pred": np.where(is_star, 0.97, 0.02)})  # a perfect, calibrated-ish CNN
    rep = task_reports.stargal_report(pred, cat, 21.0, np.arange(16, 22.5, 0.5))
    assert rep["overall"]["cnn"]["auc"] == 1.0
    assert rep["overall"]["cnn"]["star_purity"] == 1.0 and rep["overall"]["cnn"]["galaxy_completeness"] == 1.0
    assert rep["overall"]["baseline"]["auc"] < 1.0
    assert rep["faint"]["baseline"]["auc"] < rep["overall"]["baseline"]["auc"]
    assert rep["faint"]["cnn"]["count"] == int((mag > 21).sum())
    assert rep["overall"]["cnn"]["brier"] == pytest.approx(np.mean(np.where(is_star, 0.03, 0.02) ** 2))
    assert "brier" not in rep["overall"]["baseline"]
    assert len(rep["by_mag"]["cnn"]) == 12 and sum(r["count"] for r in rep["by_mag"]["cnn"]) == n
    # the SDSS cut by hand
    manual = metrics.purity_completeness(is_star, conc <= task_reports.SDSS_CONCENTRATION_CUT)
    assert rep["overall"]["baseline"]["star_completeness"] == pytest.approx(manual["pos_completeness"])
    import json

    json.dumps(rep, allow_nan=False)  # standard JSON: undefined metrics are null, not NaN
