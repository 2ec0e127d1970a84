"""Unit tests of the model study's pieces: variant resolution, training subsets, the Sersic-fit
baseline, the Gaussian head's NLL and interval coverage."""
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
from deepsky import sims  # noqa: E402
from deepsky.learn import data, uncertainty  # noqa: E402
from deepsky.reports import baselines, study  # noqa: E402
from deepsky.sims import sersic  # noqa: E402
from deepsky.sims.psf import make_psf, psf_half_light_radius  # noqa: E402

CONFIG = {
    "train": {"epochs": 40, "batch_size": 128, "learning_rate": 0.002, "schedule": "cosine", "augment": True},
    "models": {"cnn": {"width": 16, "batchnorm": False, "dropout": 0.0}},
    "study": {"fractions": [0.25, 1.0], "train": {"epochs": 5},
              "variants": {"cnn_bn": {"arch": "cnn", "batchnorm": True, "augment": False},
                           "g": {"arch": "cnn", "head": "gaussian", "fractions": [1.0], "learning_rate": 0.001}}},
}


def test_variant_frame_expands_variants_by_fractions():
    f = study.variant_frame(CONFIG["study"])
    assert list(zip(f["variant"], f["fraction"])) == [("cnn_bn", 0.25), ("cnn_bn", 1.0), ("g", 1.0)]


def test_resolve_keeps_plain_names_and_resolves_study_names():
    arch, opts, train = study.resolve("cnn", CONFIG)
    assert (arch, opts, train) == ("cnn", CONFIG["models"]["cnn"], CONFIG["train"])
    arch, opts, train = study.resolve("study/variant~cnn_bn/fraction~0.25", CONFIG)
    assert arch == "cnn" and opts == {"width": 16, "batchnorm": True, "dropout": 0.0}
    assert train == {**CONFIG["train"], "epochs": 5, "augment": False, "fraction": 0.25}
    arch, opts, train = study.resolve("study/variant~g/fraction~1.0", CONFIG)
    assert opts["head"] == "gaussian" and train["learning_rate"] == 0.001 and train["epochs"] == 5
    with pytest.raises(ValueError, match="no variant 'nope'.*cnn_bn"):
        study.resolve("study/variant~nope/fraction~1.0", CONFIG)


def test_train_subsets_are_nested_and_sized():
    mask = np.zeros(1000, bool)
    mask[::2] = True
    quarter, half = data.train_subset(mask, 0.25, 3), data.train_subset(mask, 0.5, 3)
    assert quarter.sum() == 125 and half.sum() == 250
    assert not (quarter & ~half).any() and not (half & ~mask).any()
    assert (data.train_subset(mask, 1.0, 3) == mask).all()
    with pytest.raises(ValueError, match="fraction 0"):
        data.train_subset(mask, 0.0, 3)


PSF = {"profile": "moffat", "fwhm": 0.18, "beta": 2.5}


@pytest.mark.parametrize("n,r_e,q,pa", [(1.0, 0.3, 0.6, 30.0), (4.0, 0.2, 0.8, 100.0), (2.5, 0.5, 0.45, 10.0)])
def test_sersic_fit_recovers_r_e_on_a_noiseless_galsim_stamp(n, r_e, q, pa):
    import galsim

    scale, stamp = 0.06, 64
    psf = make_psf(PSF)
    img = galsim.Convolve(sersic.sersic_galaxy(n, r_e, q, pa, 1e5), psf).drawImage(
        nx=stamp, ny=stamp, scale=scale, offset=(0.2, -0.3)).array
    fit = baselines.fit_sersic(img, 1.0, scale, baselines.psf_kernel(PSF, stamp, scale),
                               psf_half_light_radius(psf))
    assert fit["success"]
    assert abs(fit["r_e_fit"] / r_e - 1) < 0.03
    assert abs(fit["n_fit"] - n) < 0.1 * n
    assert abs(fit["r_e_start"] / r_e - 1) > abs(fit["r_e_fit"] / r_e - 1)  # the fit improved on the moments


def test_sersic_fit_on_high_snr_noisy_stamps_via_the_catalogue_path():
    recipe = {"kind": "sersic", "per_shard": 4, "stamp": 48, "pixel_scale": 0.06, "psf": PSF,
              "sersic_n": {"min": 0.8, "max": 3.0, "step": 0.1}, "r_e": {"min": 0.15, "max": 0.4},
              "q": {"min": 0.5, "max": 1.0}, "snr": {"min": 400, "max": 500}, "sky": 100.0,
              "offset_px": 0.5, "method": "fft"}
    images, cat = sims.simulate_shard(recipe, 11, "fit", 0)
    fits = baselines.fit_catalogue(images, cat, recipe)
    s = baselines.summary(fits)
    assert s["failures"] == 0 and s["median_abs_rel"] < 0.05 and s["seconds_per_galaxy"] > 0


def test_gaussian_nll_keras_matches_numpy_and_the_normal_density():
    from keras import ops
    from scipy import stats

    from deepsky.learn import models

    y = np.array([0.0, 1.0, -2.0, 0.3, 0.1], np.float32)
    mu = np.array([0.0, 0.5, 0.0, 0.3, 0.0], np.float32)
    raw = np.array([0.0, np.log(0.25), np.log(4.0), -1.0, -30.0], np.float32)
    logvar = uncertainty.gaussian_logvar(raw)
    # a smooth floor: near-identity above it, never below it
    assert np.allclose(logvar[:4], raw[:4], atol=2e-3) and -8.0 < logvar[4] < -7.99
    expect = -stats.norm.logpdf(y, mu, np.exp(0.5 * logvar))
    assert np.allclose(uncertainty.gaussian_nll(y, mu, logvar), expect, atol=1e-6)
    pred = ops.convert_to_tensor(np.stack([mu, raw], 1))
    got = ops.convert_to_numpy(models.gaussian_nll(ops.convert_to_tensor(y), pred))
    assert np.allclose(got, expect, rtol=1e-5, atol=1e-5)
    assert np.allclose(ops.convert_to_numpy(models.gaussian_logvar(ops.convert_to_tensor(raw))), logvar, atol=1e-5)
    beta = ops.convert_to_numpy(models.gaussian_beta_nll(ops.convert_to_tensor(y), pred))
    assert np.allclose(beta, np.exp(models.BETA * logvar) * expect, rtol=1e-5, atol=1e-6)


def test_beta_nll_holds_the_weight_out_of_the_gradient():
    import keras
    import tensorflow as tf  # a declared dependency: Keras' default backend, which this suite runs on

    # (test_backends covers JAX in subprocesses; this in-process check needs tf.GradientTape)
    assert keras.backend.backend() == "tensorflow", "run the test suite with the default KERAS_BACKEND"
    from deepsky.learn import models

    y = tf.constant([0.4, -0.2])
    pred = tf.Variable([[0.0, -1.0], [0.1, 0.5]])
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(models.gaussian_beta_nll(y, pred))
    g = tape.gradient(loss, pred).numpy()
    lv = uncertainty.gaussian_logvar(pred.numpy()[:, 1])
    w = np.exp(models.BETA * lv)
    dlv = 1 / (1 + np.exp(-(pred.numpy()[:, 1] + 8.0)))  # d logvar / d raw of the smooth floor
    resid = y.numpy() - pred.numpy()[:, 0]
    assert np.allclose(g[:, 0], -w * resid * np.exp(-lv), rtol=1e-4)  # d/dmu of w * NLL, w constant
    assert np.allclose(g[:, 1], w * 0.5 * (1 - resid**2 * np.exp(-lv)) * dlv, rtol=1e-4)


def test_interval_coverage_on_known_inputs():
    sigma = np.ones(3)
    y = np.array([0.5, 1.5, 2.5])  # 0.5, 1.5 and 2.5 sigma from mu = 0
    assert uncertainty.coverage(y, np.zeros(3), sigma, 0.68) == pytest.approx(1 / 3)
    assert uncertainty.coverage(y, np.zeros(3), sigma, 0.95) == pytest.approx(2 / 3)
    assert uncertainty.z_for(0.95) == pytest.approx(1.959964, abs=1e-5)
    rng = np.random.default_rng(0)
    mu, sig = rng.normal(size=40000), np.exp(rng.normal(-1, 0.3, 40000))
    y = mu + sig * rng.normal(size=mu.size)
    true, pred = np.exp(y), np.exp(mu)
    cal = uncertainty.calibration(true, pred, sig, rng.uniform(10, 200, mu.size), [10, 50, 200])
    assert abs(cal["overall"]["cov68"] - 0.68) < 0.01 and abs(cal["overall"]["cov95"] - 0.95) < 0.01
    assert sum(b["count"] for b in cal["by_snr"]) == mu.size
    over = uncertainty.calibration(true, pred, 0.5 * sig, np.full(mu.size, 30.0), [10, 200])  # overconfident
    assert over["overall"]["cov68"] < 0.45


def test_gaussian_columns_bracket_the_median():
    target = {"kind": "log", "mean": np.log(0.3), "std": 0.5}
    cols = uncertainty.gaussian_columns(np.array([[0.0, 0.0], [1.0, np.log(0.04)]]), target)
    assert np.allclose(cols["sigma_ln"], [0.5, 0.1], rtol=5e-3)  # the smooth floor at logvar -8 barely moves these
    assert np.allclose(np.sqrt(cols["lo68"] * cols["hi68"]), [0.3, np.exp(np.log(0.3) + 0.5)])
    assert (cols["lo95"] < cols["lo68"]).all() and (cols["hi95"] > cols["hi68"]).all()


def test_snr_bins_are_left_closed_and_clip_outside_values():
    b = uncertainty.snr_bins([5, 10, 19.9, 20, 40, 50], [10, 20, 40])
    assert b.tolist() == [0, 0, 0, 1, 1, 1]
    with pytest.raises(ValueError, match=r"\[10.0, 5.0\]"):
        uncertainty.snr_bins([1.0], [10, 5])


def test_conformal_multiplier_is_the_finite_sample_quantile():
    z = np.arange(10, 0, -1.0)  # scores 10..1, unsorted
    assert uncertainty.conformal_multiplier(z, 0.5) == 6.0  # ceil(11 * 0.5) = 6th smallest
    assert uncertainty.conformal_multiplier(z, 0.68) == 8.0  # ceil(7.48) = 8
    assert uncertainty.conformal_multiplier(z, 0.95) == 10.0  # ceil(10.45) = 11 > n: the largest
    with pytest.raises(ValueError, match="no validation"):
        uncertainty.conformal_multiplier([], 0.68)


def _miscalibrated(rng, n):
    """Two S/N populations: the network's sigma is half the truth at low S/N, twice it at high S/N."""
    snr = np.where(rng.random(n) < 0.5, 15.0, 100.0)
    sig_pred = np.exp(rng.normal(-1.5, 0.3, n))
    sig_true = sig_pred * np.where(snr < 50, 2.0, 0.5)
    mu = rng.normal(-1, 0.5, n)
    return np.exp(mu + sig_true * rng.normal(size=n)), np.exp(mu), sig_pred, snr


def test_recalibration_on_validation_fixes_coverage_per_snr_bin_on_fresh_data():
    rng = np.random.default_rng(3)
    edges = [10, 50, 200]
    recal = uncertainty.recalibration(*_miscalibrated(rng, 6000), edges, uncertainty.curve_levels())
    test = _miscalibrated(rng, 6000)  # new draws: recalibration never saw them
    raw = uncertainty.calibration(*test, edges)
    fixed = uncertainty.calibration(*test, edges, recal=recal)
    lo, hi = raw["by_snr"]
    assert lo["cov68"] < 0.45 and hi["cov68"] > 0.9  # over- then under-confident
    for b in fixed["by_snr"]:
        assert abs(b["cov68"] - 0.68) < 0.03 and abs(b["cov95"] - 0.95) < 0.02
    j = recal["levels"].index(0.68)
    assert recal["multiplier"][0][j] == pytest.approx(2 * uncertainty.z_for(0.68), rel=0.08)
    assert recal["multiplier"][1][j] == pytest.approx(0.5 * uncertainty.z_for(0.68), rel=0.08)
    # effective sigma follows the multiplier; the reliability curve is recalibrated too
    assert fixed["by_snr"][0]["median_sigma_ln"] > 1.8 * lo["median_sigma_ln"]
    assert np.allclose(fixed["curve"]["coverage"], fixed["curve"]["level"], atol=0.03)


def test_recalibration_falls_back_to_all_galaxies_in_a_sparse_bin():
    rng = np.random.default_rng(4)
    true, pred, sig, _ = _miscalibrated(rng, 500)
    snr = np.full(true.size, 100.0)
    snr[:5] = 15.0  # 5 galaxies in the low bin: too few for their own quantile
    recal = uncertainty.recalibration(true, pred, sig, snr, [10, 50, 200], [0.68])
    assert recal["count"] == [5, 495]
    z = np.abs(np.log(true) - np.log(pred)) / sig
    assert recal["multiplier"][0][0] == uncertainty.conformal_multiplier(z, 0.68)
    with pytest.raises(ValueError, match="no level 0.95"):
        uncertainty.calibration(true, pred, sig, snr, [10, 50, 200], recal=recal)


def test_comparison_finds_the_fastest_model_at_least_as_accurate_as_the_fit():
    import pandas as pd

    ids = np.arange(6)
    true = np.full(6, 0.5)
    fits = pd.DataFrame({"id": ids, "success": [True] * 5 + [False]})
    base = {"median_abs_rel": 0.10, "median_abs_rel_all": 0.12, "seconds_per_galaxy": 0.2, "count": 6, "failures": 1}
    preds = {study.model_name(v, 1.0): pd.DataFrame({"id": ids, "true": true, "pred": true * (1 + e)})
             for v, e in (("slow", 0.05), ("fast", 0.09), ("fastest", 0.3))}
    speed = pd.DataFrame({"model": list(preds), "seconds_per_galaxy": [2e-4, 1e-4, 1e-5], "threads": 1})
    comp = study.comparison(base, fits, preds, speed, "slow")
    assert [r["variant"] for r in comp["models"]] == ["fastest", "fast", "slow"]
    assert [r["at_least_as_accurate"] for r in comp["models"]] == [False, True, True]
    assert comp["fastest_at_least_as_accurate"]["variant"] == "fast"
    assert comp["fastest_at_least_as_accurate"]["speedup"] == pytest.approx(2000)
    assert comp["most_accurate"]["variant"] == "slow" and comp["compare"]["speedup"] == pytest.approx(1000)
    with pytest.raises(ValueError, match="'nope'"):
        study.comparison(base, fits, preds, speed, "nope")


def test_time_model_times_the_whole_path_from_raw_stamps():
    import pandas as pd

    from deepsky.learn import models
    from deepsky.reports import speed

    spec = {"layout": "fovea", "norm": "flux", "stretch": "asinh", "flux_scale": 20.0, "stamp": 16, "bands": 1}
    meta = {"task": "size", "preprocess": spec, "target": {"kind": "log", "mean": -1.0, "std": 0.5}}
    model = models.build("cnn", data.input_shape(spec), 1, width=4)
    images = np.random.default_rng(0).uniform(1, 2, (40, 1, 16, 16)).astype(np.float32)
    cat = pd.DataFrame({"id": np.arange(40)})
    t = speed.time_model(model, meta, images, cat, repeats=3, batch_size=16)
    assert t["stamps"] == 40 and t["repeats"] == 3 and t["seconds_per_galaxy"] > 0
    assert t["stamps_per_s"] == pytest.approx(1 / t["seconds_per_galaxy"])
    pred = speed.end_to_end(model, meta, images, cat)
    assert pred.shape == (40,) and (pred > 0).all()
    with pytest.raises(ValueError, match="repeats"):
        speed.time_model(model, meta, images, cat, repeats=0)
    with pytest.raises(ValueError, match="got 0"):
        speed.set_threads(0)
