"""Resampling conserves flux, noise and size, and aligns bands of different WCS over the whole stamp.

Scale ratios 2, 3 and 1.7 in both directions: "shrink" resamples a 0.03"/px stamp onto a coarser grid
(0.03 * ratio "/px), "enlarge" a coarse stamp onto the 0.03"/px grid.  Both public paths are tested:
``resample_stamps`` (NPZ cubes, centred grids) and ``cut`` (a band with a WCS, cut at a position that
is not on a pixel centre, so the grids are offset by a fraction of a pixel).
"""

from __future__ import annotations

import galsim
import numpy as np
import pytest
from astropy.wcs import WCS

from deepsky import cutouts

FINE = 0.03  # arcsec/px
COARSE_PX = 64  # stamp width on the coarse grid
CASES = [(r, d) for r in (2.0, 3.0, 1.7) for d in ("shrink", "enlarge")]
GSP = galsim.GSParams(folding_threshold=1e-4, maxk_threshold=1e-4, kvalue_accuracy=1e-6)


def tan_wcs(scale: float, shape: tuple[int, int], crval=(150.1, 2.2), rot_deg: float = 0.0,
            crpix_shift=(0.0, 0.0), flip: bool = False) -> WCS:
    """TAN WCS, east left, optionally rotated by ``rot_deg``, flipped in x and with CRPIX moved."""
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = list(crval)
    w.wcs.crpix = [shape[1] / 2 + 0.5 + crpix_shift[0], shape[0] / 2 + 0.5 + crpix_shift[1]]
    s, t = scale / 3600.0, np.deg2rad(rot_deg)
    w.wcs.cd = np.array([[-s, 0.0], [0.0, s]]) @ np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    if flip:
        w.wcs.cd[:, 0] *= -1
    w.pixel_shape = shape[::-1]
    return w


def geometry(ratio: float, direction: str) -> tuple[float, int, float, int]:
    """(input scale, input width, output scale, output width): the output footprint inside the input."""
    coarse = FINE * ratio
    fine_px = int(np.floor(COARSE_PX * ratio))  # fine grid covering about the coarse footprint
    if direction == "shrink":
        return FINE, fine_px + 4, coarse, COARSE_PX
    return coarse, COARSE_PX + 2, FINE, fine_px


def resample(img: np.ndarray, s_in: float, s_out: float, n_out: int, path: str, at=(0.3, -0.2)):
    """``img`` (square, flux/px) resampled through ``path``; for "cut" the stamp centre is moved by ``at``
    input pixels (x, y) from the image centre. Returns the stamp and the centre in input pixels (x, y)."""
    n = img.shape[-1]
    c = (n - 1) / 2.0
    if path == "npz":
        return cutouts.resample_stamps(img[None, None], s_in, s_out, n_out)[0, 0], (c, c)
    band = cutouts.Band(img, tan_wcs(s_in, img.shape))
    x, y = c + at[0], c + at[1]
    ra, dec = band.wcs.all_pix2world([x], [y], 0)
    stamps, flags = cutouts.cut([band], ra, dec, n_out, s_out)
    assert flags[0] == cutouts.OK
    return stamps[0, 0].astype(np.float64), (x, y)


def draw(obj: galsim.GSObject, scale: float, n: int, offset=(0.0, 0.0)) -> np.ndarray:
    """``obj`` drawn by GalSim (flux per pixel, pixel-integrated) on an n x n grid, centred + offset (px)."""
    return obj.withGSParams(GSP).drawImage(nx=n, ny=n, scale=scale, offset=offset).array.astype(np.float64)


def sersic(hlr: float) -> galsim.GSObject:
    """A well-sampled Sersic, truncated at 4 hlr so that every stamp here holds all of its light."""
    gal = galsim.Sersic(n=1.5, half_light_radius=hlr, trunc=4 * hlr, flux=1000.0)
    return gal.shear(q=0.8, beta=30 * galsim.degrees)


def axis_sum_w2(n_out: int, step: float, centre: float, n_in: int) -> np.ndarray:
    """Per output pixel along one axis: sum over input pixels of the squared covered fraction.

    Written independently of the library: the fraction of input pixel q inside [lo, hi] is
    F_q(hi) - F_q(lo) with F_q(t) = clip(t - (q - 1/2), 0, 1).
    """
    j = np.arange(n_out) - (n_out - 1) / 2.0
    lo, hi = centre + (j - 0.5) * step, centre + (j + 0.5) * step
    q = np.arange(n_in) - 0.5
    frac = np.clip(hi[:, None] - q, 0, 1) - np.clip(lo[:, None] - q, 0, 1)
    return (frac ** 2).sum(axis=1)


@pytest.mark.parametrize("path", ["npz", "cut"])
@pytest.mark.parametrize("ratio,direction", CASES)
def test_flux_of_point_source_and_sersic_conserved(ratio, direction, path):
    s_in, n_in, s_out, n_out = geometry(ratio, direction)
    sources = {"point": galsim.Gaussian(fwhm=0.8 * s_in, flux=500.0),  # unresolved on the input grid
               "sersic": sersic(5 * FINE * ratio)}
    for name, obj in sources.items():
        img = draw(obj, s_in, n_in, offset=(1.37, -2.21))
        out, _ = resample(img, s_in, s_out, n_out, path)
        assert out.sum() == pytest.approx(img.sum(), rel=0.01), (name, out.sum(), img.sum())
        assert img.sum() == pytest.approx(obj.flux, rel=1e-3)  # the whole source is on both stamps


@pytest.mark.parametrize("path", ["npz", "cut"])
@pytest.mark.parametrize("ratio,direction", CASES)
def test_white_noise_sigma_is_the_area_weighted_expectation(ratio, direction, path):
    """Each output pixel is sum_q w_q v_q over input pixels q, w_q the fraction of pixel q it covers,
    so unit white noise gives variance sum_q w_q**2 = (sum_y w**2)(sum_x w**2) per pixel; the test
    compares the measured sigma over all pixels with sqrt(mean over pixels of that variance), which
    for an integer shrink by k is k (a k x k block sum) and for an integer enlargement by k is 1/k**2
    (each input pixel shared equally by k x k output pixels).  For 1.7 the fractions vary from pixel
    to pixel (period 10 output pixels shrinking, 17 enlarging) and the mean is computed from them."""
    s_in, n_in, s_out, n_out = geometry(ratio, direction)
    rng = np.random.default_rng(12)
    reps = 8 if direction == "shrink" else 24
    sig, cx, cy = [], None, None
    for _ in range(reps):
        out, (cx, cy) = resample(rng.normal(size=(n_in, n_in)), s_in, s_out, n_out, path)
        sig.append(out)
    measured = np.std(sig)
    step = s_out / s_in
    want = np.sqrt(axis_sum_w2(n_out, step, cy, n_in).mean() * axis_sum_w2(n_out, step, cx, n_in).mean())
    if path == "npz" and ratio != 1.7:  # centred grids, integer ratio: block sums / replication
        assert want == pytest.approx(ratio if direction == "shrink" else ratio ** -2, rel=1e-9)
    assert measured == pytest.approx(want, rel=0.03), (measured, want)


def half_light_radius(img: np.ndarray, scale: float) -> float:
    """Half-light radius (arcsec) by curve of growth: exact circular apertures (photutils) about the
    light's centroid, normalised by the light in the largest aperture that fits the stamp."""
    from photutils.centroids import centroid_com
    from photutils.profiles import CurveOfGrowth

    n = img.shape[0]
    cog = CurveOfGrowth(img, centroid_com(img), np.arange(0.5, n / 2 - 1.5, 0.1))
    cog.normalize()
    return float(cog.calc_radius_at_ee(0.5)) * scale


@pytest.mark.parametrize("path", ["npz", "cut"])
@pytest.mark.parametrize("ratio,direction", CASES)
def test_half_light_radius_of_well_sampled_sersic_unchanged(ratio, direction, path):
    """hlr = 5 pixels of the coarse grid; the reference is the same Sersic drawn by GalSim at the output scale."""
    s_in, n_in, s_out, n_out = geometry(ratio, direction)
    gal = sersic(5 * FINE * ratio)
    out, _ = resample(draw(gal, s_in, n_in), s_in, s_out, n_out, path)
    ref = draw(gal, s_out, n_out)
    got, want = half_light_radius(out, s_out), half_light_radius(ref, s_out)
    assert got == pytest.approx(want, rel=0.02), (got, want)
    assert want == pytest.approx(5 * FINE * ratio, rel=0.05)  # the measurement itself is sane


# ------------------------------------------------------------------ bands of different WCS
#: source grid: tangent-plane offsets (arcsec) of a 4 x 4 grid of Gaussians around the stamp centre
GRID = [(dx, dy) for dx in (-1.35, -0.45, 0.45, 1.35) for dy in (-1.35, -0.45, 0.45, 1.35)]
SIGMA = 0.1  # arcsec
BANDS = [  # scale "/px, rotation deg, CRPIX shift px, x flipped
    (0.03, 0.0, (0.0, 0.0), False),
    (0.05, 30.0, (0.37, -0.21), False),
    (0.08, -17.0, (-0.44, 0.13), True),
    (0.06, 0.0, (0.5, 0.25), False),  # aligned with the first band but offset: the separable path
    (0.04, 0.0, (0.29, 0.5), True),  # flipped in x, not rotated: separable with a negative step
]


def band_image(scale, rot, shift, flip, sky: WCS) -> cutouts.Band:
    """An image ~6" wide holding the Gaussians of GRID at their sky positions (from ``sky``)."""
    n = int(np.ceil(6.0 / scale))
    wcs = tan_wcs(scale, (n, n), rot_deg=rot, crpix_shift=shift, flip=flip)
    img = galsim.ImageD(n, n, scale=scale)
    for k, (dx, dy) in enumerate(GRID):
        ra, dec = sky.all_pix2world([dx], [dy], 0)
        x, y = wcs.all_world2pix(ra, dec, 0)
        galsim.Gaussian(sigma=SIGMA, flux=100.0 + k).drawImage(
            image=img, center=galsim.PositionD(x[0] + 1, y[0] + 1), add_to_image=True)
    return cutouts.Band(img.array, wcs, name=f"{scale}")


def test_bands_of_different_wcs_aligned_over_the_whole_stamp():
    """Five bands (0.03/0.05/0.08/0.06/0.04 "/px; rotated 0, 30, -17, 0, 0 deg, two flipped; CRPIX
    offset by fractions of a pixel) cut at 0.06 "/px: all 16 sources of a grid reaching the stamp's corners land,
    in every band, within 0.05 px of where the first band's WCS puts them, and carry their flux."""
    sky = WCS(naxis=2)  # tangent plane in arcsec around the field centre
    sky.wcs.ctype, sky.wcs.crval = ["RA---TAN", "DEC--TAN"], [150.1, 2.2]
    sky.wcs.crpix, sky.wcs.cdelt = [1, 1], [-1 / 3600, 1 / 3600]
    bands = [band_image(*b, sky) for b in BANDS]
    size, scale = 64, 0.06
    ra, dec = sky.all_pix2world([0.013], [-0.021], 0)  # not on any band's pixel centre
    stamps, flags = cutouts.cut(bands, ra, dec, size, scale)
    assert flags[0] == cutouts.OK
    # where the sources should be: the first band's pixel axes, scaled to 0.06"/px, about the centre
    ref = bands[0].wcs
    x0, y0 = ref.all_world2pix(ra, dec, 0)
    c, step = (size - 1) / 2, scale / 0.03
    yy, xx = np.mgrid[:size, :size]
    cents = np.zeros((len(bands), len(GRID), 2))
    for k, (dx, dy) in enumerate(GRID):
        xs, ys = ref.all_world2pix(*sky.all_pix2world([dx], [dy], 0), 0)
        ex, ey = c + (xs[0] - x0[0]) / step, c + (ys[0] - y0[0]) / step
        win = (np.abs(xx - ex) <= 6.5) & (np.abs(yy - ey) <= 6.5)  # 3.9 sigma: sources are 15 px apart
        for b in range(len(bands)):
            w = np.where(win, stamps[0, b], 0.0)
            cents[b, k] = (w * xx).sum() / w.sum() - ex, (w * yy).sum() / w.sum() - ey
            assert w.sum() == pytest.approx(100.0 + k, rel=0.01), (b, k)
    assert np.abs(cents).max() < 0.05, np.abs(cents).max(axis=(1, 2))
    # and the light of the whole grid sits in the same place in every band, to far better than that
    assert np.abs(cents - cents[0]).max() < 0.03


def test_separable_path_gives_reproject_exact_numbers():
    """The fast path (a band aligned with the stamp grid) is reproject_exact's area weighting itself."""
    from reproject import reproject_exact

    rng = np.random.default_rng(3)
    for s_in, s_out, n_out in [(0.03, 0.06, 40), (0.05, 0.06, 40), (0.09, 0.03, 48), (0.03, 0.051, 40)]:
        n = int(np.ceil(n_out * s_out / s_in)) + 8
        img = rng.normal(size=(n, n)) + 3.0
        band = cutouts.Band(img, tan_wcs(s_in, img.shape))
        ra, dec = band.wcs.all_pix2world([n / 2 + 0.31], [n / 2 - 0.77], 0)
        got, flags = cutouts.cut([band], ra, dec, n_out, s_out)
        out_wcs = cutouts.stamp_wcs(band, ra[0], dec[0], n_out, s_out)
        mean, covered = reproject_exact((img, band.wcs), out_wcs, shape_out=(n_out, n_out))
        want = mean * covered * (s_out / s_in) ** 2
        assert flags[0] == cutouts.OK and covered.min() == pytest.approx(1.0)
        np.testing.assert_allclose(got[0, 0], want, rtol=1e-5, atol=1e-6 * np.abs(want).max())


def test_integer_ratios_are_block_sums_and_replications():
    """Centred grids at an integer ratio k: a k x k block sum (shrinking) and each pixel's flux shared
    by k x k pixels (enlarging), as astropy's block_reduce / block_replicate(conserve_sum=True) give."""
    from astropy.nddata import block_reduce, block_replicate

    x = np.random.default_rng(5).normal(size=(2, 3, 48, 48))
    for k in (2, 3):
        np.testing.assert_allclose(cutouts.resample_stamps(x, 0.03, 0.03 * k, 48 // k),
                                   block_reduce(x, (1, 1, k, k)), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(cutouts.resample_stamps(x, 0.03 * k, 0.03, 48 * k),
                                   block_replicate(x, (1, 1, k, k), conserve_sum=True), rtol=1e-5, atol=1e-7)


def test_rotated_band_flags_only_bad_pixels_its_footprint_covers():
    """A rotated band is read through its bounding box: a NaN in a corner of that box the rotated
    footprint misses leaves the stamp OK; a NaN under the footprint flags it (and counts as 0)."""
    n, scale = 120, 0.05
    wcs = tan_wcs(scale, (n, n), rot_deg=45.0)
    ref = cutouts.Band(np.ones((n, n)), tan_wcs(scale, (n, n)))
    ra, dec = ref.wcs.all_pix2world([59.5], [59.5], 0)
    size = 40  # footprint: a diamond of half-diagonal 28.3 px in the rotated band
    for (y, x), want in [((59 - 25, 59 - 25), cutouts.OK), ((59 - 10, 59 + 5), cutouts.BAD_PIXELS)]:
        img = np.ones((n, n))
        img[y, x] = np.nan
        stamps, flags = cutouts.cut([ref, cutouts.Band(img, wcs)], ra, dec, size, scale)
        assert flags[0] == want, (y, x, flags[0])
        assert np.isfinite(stamps).all()
        total = size * size - (1.0 if want else 0.0)  # flux 1 per pixel, the NaN pixel lost
        assert stamps[0, 1].sum() == pytest.approx(total, rel=1e-6)


def test_edge_and_bad_input():
    img = np.ones((50, 50))
    band = cutouts.Band(img, tan_wcs(0.06, img.shape))
    ra, dec = band.wcs.all_pix2world([24.5, 10.0, 24.5, -40.0], [24.5, 24.5, 24.5, 24.5], 0)
    stamps, flags = cutouts.cut([band], ra, dec, 30, 0.06)
    assert flags.tolist() == [cutouts.OK, cutouts.EDGE, cutouts.OK, cutouts.EDGE | cutouts.OFF_IMAGE]
    assert stamps[0, 0].sum() == pytest.approx(900.0) and stamps[3].sum() == 0.0
    # an exact copy where the grids coincide: no resampling at all
    np.testing.assert_array_equal(stamps[0, 0], img[10:40, 10:40])
    with pytest.raises(ValueError, match="pixel_scale must be a positive number of arcsec/px, got -0.1"):
        cutouts.cut([band], ra, dec, 30, -0.1)
    with pytest.raises(ValueError, match="native_scale must be a positive number of arcsec/px, got 0"):
        cutouts.resample_stamps(np.ones((1, 1, 8, 8)), 0, 0.06, 8)
    with pytest.raises(ValueError, match="square, got 8x6"):
        cutouts.resample_stamps(np.ones((1, 1, 8, 6)), 0.03, 0.06, 8)
