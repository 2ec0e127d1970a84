"""The HST-like bulge+disk target recipe: labels, determinism, noise, neighbours."""
import copy
import sys
from pathlib import Path

import galsim
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
from deepsky import sims  # noqa: E402
from deepsky.sims import hst_target  # noqa: E402
from deepsky.sims.psf import make_psf  # noqa: E402

RECIPE = {
    "kind": "hst_bulge_disk", "shards": 1, "per_shard": 6, "stamp": 32, "pixel_scale": 0.06,
    "psf": {"profile": "airy", "lam_nm": 1545.0, "diam_m": 2.4, "obscuration": 0.33, "nstruts": 4,
            "strut_thick": 0.03, "strut_angle_deg": 45.0},
    "native_pixel_arcsec": 0.13,
    "disk": {"n": {"min": 0.7, "max": 1.3, "step": 0.1}, "r_e": {"min": 0.12, "max": 0.5},
             "q": {"min": 0.15, "max": 1.0}},
    "bulge": {"n": {"min": 2.5, "max": 5.0, "step": 0.5}, "re_ratio": {"min": 0.15, "max": 0.6},
              "q": {"min": 0.6, "max": 1.0}, "misalign_deg": 10.0},
    "bulge_fraction": {"min": 0.0, "max": 0.8}, "snr": {"min": 10, "max": 200}, "sky": 300.0,
    "noise_corr_px": 0.7, "offset_px": 1.0, "method": "fft",
    "neighbours": {"prob": 0.5, "max": 2, "sep_px": {"min": 8, "max": 14}, "flux_ratio": {"min": 0.05, "max": 1.0},
                   "r_e": {"min": 0.08, "max": 0.3}, "n": {"min": 0.5, "max": 4.0, "step": 0.5}},
}


def brightest_region(image: galsim.Image, total: float, area_arcsec2: float | None = None):
    """From a noiseless PSF-free rendering: (radius sqrt(A/pi) of the brightest region holding half
    of ``total``, flux of the brightest region of area ``area_arcsec2``)."""
    pix = np.sort(image.array.ravel())[::-1].astype(float)
    cum = np.cumsum(pix)
    pa = image.scale**2
    k = int(np.searchsorted(cum, 0.5 * total))
    r_half = np.sqrt((k + 0.5) * pa / np.pi)
    flux_in = None if area_arcsec2 is None else float(cum[int(round(area_arcsec2 / pa)) - 1])
    return r_half, flux_in


@pytest.mark.parametrize("n,r_e,q,pa", [(1.0, 0.3, 1.0, 0.0), (4.0, 0.2, 0.3, 30.0), (0.7, 0.8, 0.15, 100.0)])
def test_single_component_label_is_circularised_re(n, r_e, q, pa):
    # one sheared Sersic: the half-light isophote is the ellipse of area pi r_e^2 (the pre-training label)
    r = hst_target.circularised_hlr([[1.0]], [[n]], [[r_e]], [[q]], [[pa]])
    assert r[0] == pytest.approx(r_e, rel=1e-4)


@pytest.mark.parametrize("bt,b,d", [
    (0.3, (4.0, 0.08, 0.8, 20.0), (1.0, 0.4, 0.35, 60.0)),
    (0.6, (3.0, 0.15, 0.7, 100.0), (1.0, 0.5, 0.2, 10.0)),
    (0.1, (5.0, 0.05, 0.9, 0.0), (0.8, 0.3, 0.5, 140.0)),
])
def test_bulge_disk_label_encloses_half_the_light(bt, b, d):
    """The computed label against GalSim's own noiseless, PSF-free rendering on a fine grid."""
    (nb, reb, qb, pab), (nd, red, qd, pad) = b, d
    label = hst_target.circularised_hlr([[bt, 1 - bt]], [[nb, nd]], [[reb, red]], [[qb, qd]], [[pab, pad]])[0]
    gal = hst_target.bulge_disk({"bulge_fraction": bt, "flux": 1.0, "bulge_n": nb, "bulge_r_e_arcsec": reb,
                               "bulge_q": qb, "bulge_pa_deg": pab, "disk_n": nd, "disk_r_e_arcsec": red,
                               "disk_q": qd, "disk_pa_deg": pad})
    scale = 0.004
    image = gal.drawImage(nx=1500, ny=1500, scale=scale, method="no_pixel")  # surface brightness x pixel area
    assert image.array.sum() > 0.97  # the grid holds (nearly) all the light
    r_num, flux_in = brightest_region(image, 1.0, np.pi * label**2)
    assert r_num == pytest.approx(label, rel=0.01)
    assert flux_in == pytest.approx(0.5, abs=0.005)  # the label's isophote holds half the light (1%)


def test_round_components_match_galsim_circular_hlr():
    # concentric round components: isophotes are circles, so the label is the circular-aperture HLR
    label = hst_target.circularised_hlr([[0.4, 0.6]], [[4.0, 1.0]], [[0.1, 0.5]], [[1.0, 1.0]], [[0.0, 0.0]])[0]
    gal = galsim.Add([galsim.Sersic(4.0, half_light_radius=0.1, flux=0.4),
                      galsim.Sersic(1.0, half_light_radius=0.5, flux=0.6)])
    assert label == pytest.approx(gal.calculateHLR(scale=0.004, size=2000, flux_frac=0.5), rel=0.01)


def test_label_rejects_bad_components():
    with pytest.raises(ValueError, match="r_e > 0"):
        hst_target.circularised_hlr([[1.0]], [[1.0]], [[0.0]], [[0.5]], [[0.0]])
    with pytest.raises(ValueError, match="positive total flux"):
        hst_target.circularised_hlr([[0.0, 0.0]], [[4.0, 1.0]], [[0.1, 0.3]], [[1, 1]], [[0, 0]])


def test_recipe_is_deterministic_and_seed_dependent():
    im1, cat1 = sims.simulate_shard(RECIPE, 3, "hst_target", 0)
    im2, cat2 = sims.simulate_shard(copy.deepcopy(RECIPE), 3, "hst_target", 0)
    assert im1.dtype == np.float32 and im1.shape == (6, 1, 32, 32)
    assert np.array_equal(im1, im2)
    assert cat1.equals(cat2)
    im3, cat3 = sims.simulate_shard(RECIPE, 3, "hst_target", 1)
    assert not np.array_equal(im1, im3)
    assert not np.allclose(cat1["r_e_arcsec"], cat3["r_e_arcsec"])
    assert (cat1["r_e_arcsec"] > 0).all() and np.isfinite(im1).all()
    # the combined label lies between the bulge and the disk half-light radii
    lo = np.minimum(cat1["bulge_r_e_arcsec"], cat1["disk_r_e_arcsec"])
    hi = np.maximum(cat1["bulge_r_e_arcsec"], cat1["disk_r_e_arcsec"])
    assert ((cat1["r_e_arcsec"] >= lo * 0.99) & (cat1["r_e_arcsec"] <= hi * 1.01)).all()


def test_neighbours_and_psf_differ_from_pretraining():
    cat = hst_target.draw_bulge_disk_params(dict(RECIPE, per_shard=400), 1, "hst_target", 0)
    frac = (cat["n_neighbours"] > 0).mean()
    assert 0.6 < frac < 0.9  # Binomial(2, 0.5): P(>0) = 0.75
    sep = cat.loc[cat["n_neighbours"] > 0, "nearest_neighbour_px"]
    assert sep.between(8, 14).all()
    # the optical PSF (obscuration + struts + detector pixel) is not the pre-training Moffat
    psf = hst_target.make_hst_psf(RECIPE)
    moffat = make_psf({"profile": "moffat", "fwhm": 0.18, "beta": 2.5})
    a = psf.drawImage(nx=32, ny=32, scale=0.06).array
    b = moffat.drawImage(nx=32, ny=32, scale=0.06).array
    assert np.abs(a - b).sum() > 0.1


def test_noise_is_correlated_with_the_requested_variance():
    rng = np.random.default_rng(0)
    gain = hst_target.noise_kernel_gain(32, 0.7)
    cube = np.stack([hst_target.correlated_noise(rng, 32, 300.0, 0.7, gain) for _ in range(200)])
    assert cube.var() == pytest.approx(300.0, rel=0.03)
    rho = np.mean(cube[:, :, 1:] * cube[:, :, :-1]) / cube.var()
    assert rho > 0.3  # neighbouring pixels correlated, as in a drizzled mosaic
    white = np.stack([hst_target.correlated_noise(rng, 32, 300.0, 0.0, 1.0) for _ in range(200)])
    assert abs(np.mean(white[:, :, 1:] * white[:, :, :-1]) / white.var()) < 0.03


def test_unknown_method_is_refused():
    with pytest.raises(ValueError, match="method"):
        sims.simulate_shard(dict(RECIPE, method="magic"), 1, "hst_target", 0)
