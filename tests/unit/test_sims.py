"""Simulation: determinism, purity per stamp, and labels that are true."""

from __future__ import annotations

import galsim
import numpy as np
import pytest

from deepsky import sims
from deepsky.sims import photometry, sersic
from deepsky.sims.psf import make_psf, psf_half_light_radius


def test_shard_is_deterministic(tiny_recipe):
    r = dict(tiny_recipe, per_shard=12)
    a_img, a_cat = sims.simulate_shard(r, 3, "size", 0)
    b_img, b_cat = sims.simulate_shard(r, 3, "size", 0)
    assert a_img.dtype == np.float32 and a_img.shape == (12, 1, r["stamp"], r["stamp"])
    np.testing.assert_array_equal(a_img, b_img)
    assert a_cat.equals(b_cat)
    c_img, _ = sims.simulate_shard(r, 3, "size", 1)
    d_img, _ = sims.simulate_shard(r, 4, "size", 0)
    assert not np.array_equal(a_img, c_img) and not np.array_equal(a_img, d_img)


def test_stamp_depends_only_on_seed_shard_index(tiny_recipe):
    """Stamps are drawn sorted by n, but each is a pure function of (seed, shard, index)."""
    small_img, small_cat = sims.simulate_shard(dict(tiny_recipe, per_shard=5), 9, "size", 2)
    big_img, big_cat = sims.simulate_shard(dict(tiny_recipe, per_shard=11), 9, "size", 2)
    np.testing.assert_array_equal(small_img, big_img[:5])
    assert small_cat.equals(big_cat.iloc[:5].reset_index(drop=True))


def test_parameter_ranges_follow_recipe(tiny_recipe):
    r = dict(tiny_recipe, per_shard=200)
    cat = sersic.draw_sersic_params(r, 1, "size", 0)
    assert cat["r_e_arcsec"].between(r["r_e"]["min"], r["r_e"]["max"]).all()
    assert cat["sersic_n"].between(r["sersic_n"]["min"], r["sersic_n"]["max"]).all()
    # n snapped to the grid
    steps = cat["sersic_n"] / r["sersic_n"]["step"]
    np.testing.assert_allclose(steps, np.round(steps), atol=1e-6)
    assert cat["snr"].between(r["snr"]["min"], r["snr"]["max"]).all()
    np.testing.assert_allclose(cat["r_e_major_arcsec"], cat["r_e_arcsec"] / np.sqrt(cat["q"]))
    assert cat["id"].is_unique


def elliptical_fraction(n, r_e, q, pa_deg, aperture=1.0):
    return sersic.half_light_check(n, r_e, q, pa_deg, aperture=aperture)


@pytest.mark.parametrize("n,r_e,q,pa", [(0.5, 0.1, 0.9, 10.0), (1.0, 0.3, 0.4, 60.0), (4.0, 0.5, 0.7, 120.0),
                                        (6.0, 1.0, 0.25, 170.0), (6.0, 0.1, 1.0, 0.0)])
def test_label_radius_encloses_half_the_light(n, r_e, q, pa):
    assert abs(elliptical_fraction(n, r_e, q, pa) - 0.5) < 0.01


def test_label_check_is_sensitive():
    """A radius 5% off (or the major axis taken for the circularised radius) fails the 1% check."""
    assert elliptical_fraction(1.0, 0.3, 0.5, 30.0, aperture=1.05) > 0.515
    assert elliptical_fraction(1.0, 0.3, 0.5, 30.0, aperture=0.95) < 0.485


def test_flux_for_snr_inverts_definition():
    snr = np.array([10.0, 50.0, 200.0])
    f = photometry.flux_for_snr(snr, 0.3, 0.1, 0.06, 300.0)
    area = np.pi * (np.hypot(0.3, 0.1) / 0.06) ** 2
    np.testing.assert_allclose((f / 2) / np.sqrt(f / 2 + area * 300.0), snr, rtol=1e-10)


def test_realised_aperture_snr_matches_nominal(tiny_recipe):
    """Noise and flux are consistent with the S/N definition: measured over noise realisations."""
    r = dict(tiny_recipe)
    psf = make_psf(r["psf"])
    hlr = psf_half_light_radius(psf)
    snr, r_e, sky = 30.0, 0.2, float(r["sky"])
    flux = float(photometry.flux_for_snr(snr, r_e, hlr, r["pixel_scale"], sky))
    obj = galsim.Convolve(sersic.sersic_galaxy(1.0, r_e, 1.0, 0.0, flux), psf)
    s = r["stamp"]
    y, x = (np.mgrid[:s, :s] - (s - 1) / 2.0) * r["pixel_scale"]
    ap = np.hypot(x, y) <= np.hypot(r_e, hlr)
    sums = [sersic.render(obj, s, r["pixel_scale"], 0.0, 0.0, sky, galsim.BaseDeviate(k + 1))[ap].sum()
            for k in range(200)]
    measured = np.mean(sums) / np.std(sums)
    assert measured == pytest.approx(snr, rel=0.2)


def test_fft_path_agrees_with_photon_shooting(tiny_recipe):
    """The naive FFT path (used by the benchmark) draws the same galaxies, to noise."""
    r = dict(tiny_recipe, per_shard=6, snr={"min": 150, "max": 200})
    a, _ = sersic.simulate_shard(r, 5, "size", 0, method="phot")
    b, _ = sersic.simulate_shard(r, 5, "size", 0, method="fft")
    ratio = a.sum(axis=(1, 2, 3)) / b.sum(axis=(1, 2, 3))
    np.testing.assert_allclose(ratio, 1.0, atol=0.1)


def test_unknown_kind_is_named():
    with pytest.raises(ValueError, match="'spiral'"):
        sims.simulate_shard({"kind": "spiral"}, 1, "x", 0)


def test_unknown_psf_is_named():
    with pytest.raises(ValueError, match="'boxy'"):
        make_psf({"profile": "boxy"})
