"""Unit tests of the model study's pieces: variant resolution, training subsets, the Sersic-fit
baseline, the Gaussian head's NLL and interval coverage."""
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from deepsky import baselines, data, sims, study, uncertainty  # noqa: E402

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
    psf = sims.make_psf(PSF)
    img = galsim.Convolve(sims.sersic_galaxy(n, r_e, q, pa, 1e5), psf).drawImage(
        nx=stamp, ny=stamp, scale=scale, offset=(0.2, -0.3)).array
    fit = baselines.fit_sersic(img, 1.0, scale, baselines.psf_kernel(PSF, stamp, scale),
                               sims.psf_half_light_radius(psf))
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

    from deepsky import models

    y = np.array([0.0, 1.0, -2.0, 0.3], np.float32)
    mu = np.array([0.0, 0.5, 0.0, 0.3], np.float32)
    logvar = np.array([0.0, np.log(0.25), np.log(4.0), -1.0], np.float32)
    expect = -stats.norm.logpdf(y, mu, np.exp(0.5 * logvar))
    assert np.allclose(uncertainty.gaussian_nll(y, mu, logvar), expect, atol=1e-6)
    got = ops.convert_to_numpy(models.gaussian_nll(ops.convert_to_tensor(y), ops.convert_to_tensor(np.stack([mu, logvar], 1))))
    assert np.allclose(got, expect, atol=1e-5)
    assert np.isclose(expect[0], 0.5 * np.log(2 * np.pi))


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
    assert np.allclose(cols["sigma_ln"], [0.5, 0.1])
    assert np.allclose(np.sqrt(cols["lo68"] * cols["hi68"]), [0.3, np.exp(np.log(0.3) + 0.5)])
    assert (cols["lo95"] < cols["lo68"]).all() and (cols["hi95"] > cols["hi68"]).all()
