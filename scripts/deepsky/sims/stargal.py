"""SDSS-like ugriz stamps of stars and galaxies (GalSim) with catalogue photometry measured on them.

The offline stand-in for the live SDSS path: one shard holds ``per_shard`` stamps of
``stamp`` x ``stamp`` pixels at ``pixel_scale`` arcsec/px in the five SDSS bands, in
**nanomaggies** (sky-subtracted, like SDSS ``frame`` files), and a catalogue with the columns the
live path produces (objID, ra, dec, run, rerun, camcol, field, psfMag_u..z, cModelMag_u..z,
petroRad_r, type, class, is_star) plus the simulation truth.

Observing conditions vary by *field* (``per_field`` consecutive stamps of a shard): the r-band
seeing FWHM (log-normal, arcsec), a small PSF ellipticity, and the sky brightness of every band.
The PSF is a Kolmogorov profile, mildly chromatic: FWHM_b = FWHM_r (lambda_b/lambda_r)**chromatic_index.

* stars: the PSF, with colours drawn along an SDSS-like stellar locus (F/G turn-off to M dwarfs);
* galaxies: exponential disk + de Vaucouleurs bulge, bulge-to-total in r, disk half-light radius
  log-normal with a median that shrinks with magnitude (down to barely resolved at the faint end),
  red bulges and blue disks (so colours vary across the galaxy);
* r magnitudes follow power-law number counts, p(m) ~ 10**(slope m), per class;
* noise: Gaussian approximation of the Poisson noise of sky + source, with ``e_per_nmgy``
  electrons per nanomaggy in each band (gain / nMgyPerCount of SDSS frames).

Catalogue photometry is *measured* on the noisy stamps (see ``measure``), never copied from the
truth, so the psfMag - cModelMag baseline is as honest as SDSS's own: a centroid on the g+r+i image,
PSF fluxes from the known PSF, and SDSS-style cModel fluxes from exponential and de Vaucouleurs
template fits.  Magnitudes are SDSS asinh magnitudes (luptitudes) with SDSS's softening per band.

Every stamp is a pure function of (seed, dataset, shard, index): its parameters come from its own
generator (``RowRNG``), its field's conditions from the field's own generator (field = index //
per_field), and its noise from a numpy generator seeded with ``stamp_seed(seed, dataset, shard,
index)``; growing ``per_shard`` appends stamps and leaves the existing ones unchanged.
"""

from __future__ import annotations

from collections.abc import Callable

import galsim
import numpy as np
import pandas as pd

from .seeds import dataset_key, stamp_identity, stamp_seed

# An FFT bigger than maximum_fft_size would otherwise only warn and then allocate many GB (as in psf.py).
galsim.errors.raise_fft_size_error = True

BANDS = ("u", "g", "r", "i", "z")
#: effective wavelengths of the SDSS filters, nm
WAVELENGTH_NM = {"u": 355.1, "g": 468.6, "r": 616.6, "i": 748.0, "z": 893.2}
#: SDSS asinh-magnitude softening parameters b (in units of f/f0), Lupton, Gunn & Szalay (1999)
LUPTON_B = {"u": 1.4e-10, "g": 0.9e-10, "r": 1.2e-10, "i": 1.8e-10, "z": 7.4e-10}
#: SDSS photo's type codes
TYPE_GALAXY, TYPE_STAR = 3, 6
#: SDSS star/galaxy cut on psfMag - cModelMag (mag): larger -> extended (galaxy)
SDSS_EXTENDED_CUT = 0.145

#: points of the stellar locus (u-g, g-r, r-i, i-z) at t = 0, 0.25, 0.5, 0.75, 1 (A/F -> late M)
STELLAR_LOCUS = np.array([
    [0.95, 0.15, 0.03, -0.01],
    [1.15, 0.35, 0.12, 0.03],
    [1.65, 0.65, 0.24, 0.12],
    [2.45, 1.30, 0.70, 0.38],
    [2.70, 1.50, 1.60, 0.85],
])
#: colours (u-g, g-r, r-i, i-z) of galaxy bulges and disks (low-redshift SDSS galaxies)
BULGE_COLOURS = np.array([1.75, 0.80, 0.42, 0.35])
DISK_COLOURS = np.array([1.15, 0.45, 0.28, 0.18])


# --------------------------------------------------------------------------- units
def mag_to_nmgy(mag) -> np.ndarray:
    """AB magnitude -> flux in nanomaggies (22.5 mag = 1 nmgy)."""
    return 10.0 ** (-0.4 * (np.asarray(mag, dtype=float) - 22.5))


def luptitude(flux_nmgy, band: str) -> np.ndarray:
    """SDSS asinh magnitude of a flux in nanomaggies (finite for zero and negative fluxes)."""
    b = LUPTON_B[band]
    x = np.asarray(flux_nmgy, dtype=float) * 1e-9  # f / f0 with f0 = 3631 Jy
    return -2.5 / np.log(10.0) * (np.arcsinh(x / (2.0 * b)) + np.log(b))


def colours_to_mags(r_mag, colours) -> np.ndarray:
    """(N,) r magnitudes and (N, 4) colours u-g, g-r, r-i, i-z -> (N, 5) ugriz magnitudes."""
    r = np.asarray(r_mag, float)
    c = np.asarray(colours, float)
    g = r + c[:, 1]
    u = g + c[:, 0]
    i = r - c[:, 2]
    z = i - c[:, 3]
    return np.stack([u, g, r, i, z], axis=1)


def sky_nmgy_per_pixel(sky_mag_arcsec2, pixel_scale: float) -> np.ndarray:
    """Sky surface brightness (mag/arcsec^2) -> sky flux per pixel in nanomaggies."""
    return mag_to_nmgy(sky_mag_arcsec2) * pixel_scale**2


# --------------------------------------------------------------------------- parameters
class RowRNG:
    """A stand-in for ``numpy.random.Generator`` whose draws of size n (or (n, k)) come one row at a
    time from each row's own generator, seeded with (seed, crc32(dataset), shard, row, stream).

    Row i then depends only on (seed, dataset, shard, i): growing ``per_shard`` appends stamps and
    leaves the existing ones unchanged.  Every call draws for every row (``np.where`` branches
    included), so each row's generator sees the same sequence of calls whatever the shard size.
    """

    def __init__(self, seed: int, dataset: str, shard: int, rows, stream: int):
        key = dataset_key(dataset)
        self.gens = [np.random.default_rng(np.random.SeedSequence([seed, key, shard, int(i), stream])) for i in rows]

    def _draw(self, method: str, size, *args) -> np.ndarray:
        n = len(self.gens)
        shape = tuple(size) if isinstance(size, tuple) else (n if size is None else int(size),)
        if shape[0] != n:
            raise ValueError(f"RowRNG draws one row per generator ({n}), asked for {shape}")
        k = shape[1:] or None
        return np.array([getattr(g, method)(*args, size=k) for g in self.gens], dtype=float).reshape(shape)

    def uniform(self, low=0.0, high=1.0, size=None) -> np.ndarray:
        return self._draw("uniform", size, low, high)

    def normal(self, loc=0.0, scale=1.0, size=None) -> np.ndarray:
        return self._draw("normal", size, loc, scale)


def power_law_mags(rng: np.random.Generator, lo: float, hi: float, slope: float, size: int) -> np.ndarray:
    """Magnitudes with number counts dN/dm ~ 10**(slope m) on [lo, hi] (inverse-CDF draw)."""
    u = rng.uniform(0.0, 1.0, size)
    if abs(slope) < 1e-9:
        return lo + (hi - lo) * u
    k = slope * np.log(10.0)
    return np.log(np.exp(k * lo) + u * (np.exp(k * hi) - np.exp(k * lo))) / k


def stellar_colours(rng: np.random.Generator, size: int, scatter: float) -> np.ndarray:
    """(size, 4) colours along the stellar locus: 55% near the F/G turn-off, 45% K/M dwarfs."""
    t = np.where(rng.uniform(size=size) < 0.55, rng.normal(0.3, 0.1, size), rng.uniform(0.4, 1.0, size))
    t = np.clip(t, 0.0, 1.0)
    grid = np.linspace(0.0, 1.0, len(STELLAR_LOCUS))
    cols = np.stack([np.interp(t, grid, STELLAR_LOCUS[:, j]) for j in range(4)], axis=1)
    return cols + rng.normal(0.0, scatter, (size, 4))


def draw_fields(recipe: dict, rng, n_fields: int) -> pd.DataFrame:
    """Observing conditions of each field: seeing (arcsec), PSF shear, sky (mag/arcsec^2) per band."""
    see = recipe["seeing"]
    fwhm = np.clip(see["median"] * np.exp(rng.normal(0.0, see["sigma_ln"], n_fields)), see["min"], see["max"])
    g1 = rng.normal(0.0, recipe["psf_shear"], n_fields)
    g2 = rng.normal(0.0, recipe["psf_shear"], n_fields)
    out = {"fwhm_r": fwhm, "psf_g1": g1, "psf_g2": g2}
    jitter = rng.normal(0.0, recipe["sky_jitter_mag"], n_fields)  # moon / airmass: all bands together
    for b in BANDS:
        out[f"sky_{b}"] = recipe["sky_mag"][b] + jitter + rng.normal(0.0, 0.05, n_fields)
    return pd.DataFrame(out)


def field_psfs(recipe: dict, field: pd.Series) -> list[galsim.GSObject]:
    """The five band PSFs of one field (Kolmogorov, chromatic FWHM, common small shear)."""
    out = []
    for b in BANDS:
        fwhm = float(field["fwhm_r"]) * (WAVELENGTH_NM[b] / WAVELENGTH_NM["r"]) ** recipe["chromatic_index"]
        out.append(galsim.Kolmogorov(fwhm=fwhm).shear(g1=float(field["psf_g1"]), g2=float(field["psf_g2"])))
    return out


def draw_stargal_params(recipe: dict, seed: int, dataset: str, shard: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(object table, field table) of one shard: truth parameters, observing conditions, fake ids."""
    n = int(recipe["per_shard"])
    per_field = int(recipe["per_field"])
    n_fields = -(-n // per_field)
    field_rng = RowRNG(seed, dataset, shard, range(n_fields), stream=2)
    fields = draw_fields(recipe, field_rng, n_fields)
    ra0 = field_rng.uniform(120.0, 240.0, n_fields)
    dec0 = field_rng.uniform(-5.0, 60.0, n_fields)
    rng = RowRNG(seed, dataset, shard, range(n), stream=1)
    field_idx = np.arange(n) // per_field

    is_star = rng.uniform(size=n) < recipe["star_fraction"]
    lo, hi = recipe["r_mag"]["min"], recipe["r_mag"]["max"]
    r_star = power_law_mags(rng, lo, hi, recipe["count_slope"]["star"], n)
    r_gal = power_law_mags(rng, lo, hi, recipe["count_slope"]["galaxy"], n)
    r_mag = np.where(is_star, r_star, r_gal)

    # stars: stellar locus colours
    star_col = stellar_colours(rng, n, recipe["colour_scatter"])
    # galaxies: bulge + disk
    g = recipe["galaxy"]
    pure_disk = rng.uniform(size=n) < g["pure_disk_fraction"]
    bt = np.where(pure_disk, 0.0, rng.uniform(g["bulge_fraction"]["min"], g["bulge_fraction"]["max"], n))
    med = g["size"]["median_arcsec"] * 10.0 ** (-g["size"]["slope_dex_per_mag"] * (r_mag - g["size"]["ref_mag"]))
    r_disk = np.clip(med * 10.0 ** rng.normal(0.0, g["size"]["scatter_dex"], n), g["size"]["min_arcsec"],
                     g["size"]["max_arcsec"])
    r_bulge = np.maximum(r_disk * rng.uniform(0.3, 0.7, n), g["size"]["min_arcsec"])
    # a pure bulge (B/T = 1) keeps the drawn size as its own
    r_bulge = np.where(bt >= 0.999, r_disk, r_bulge)
    q_disk = rng.uniform(g["q_disk"]["min"], g["q_disk"]["max"], n)
    q_bulge = rng.uniform(0.6, 1.0, n)
    pa = rng.uniform(0.0, 180.0, n)
    redden = rng.uniform(0.0, 1.0, n)[:, None] * np.array([0.3, 0.35, 0.15, 0.1])  # redshift-like shift
    bulge_col = BULGE_COLOURS + redden + rng.normal(0.0, recipe["colour_scatter"], (n, 4))
    disk_col = DISK_COLOURS + redden + rng.normal(0.0, 2 * recipe["colour_scatter"], (n, 4))
    off = float(recipe["offset_px"])
    dx, dy = rng.uniform(-off, off, n), rng.uniform(-off, off, n)

    # total magnitudes per band (component fluxes set B/T in r)
    mags_star = colours_to_mags(r_mag, star_col)
    f_r = mag_to_nmgy(r_mag)
    bulge_mag = colours_to_mags(r_mag, bulge_col)  # band fluxes of a unit-r-flux bulge/disk
    disk_mag = colours_to_mags(r_mag, disk_col)
    f_bulge = bt[:, None] * mag_to_nmgy(bulge_mag)
    f_disk = (1.0 - bt)[:, None] * mag_to_nmgy(disk_mag)
    f_gal = f_bulge + f_disk
    flux_true = np.where(is_star[:, None], mag_to_nmgy(mags_star), f_gal)

    # fake SDSS ids: one run per shard, fields walk along 6 camera columns
    run = 100 + shard
    camcol = 1 + field_idx % 6
    field_no = 11 + field_idx // 6
    obj = np.arange(n) % per_field + 1
    objid = ((np.int64(1) << 59) | (np.int64(301) << 48) | (np.int64(run) << 32)
             | (camcol.astype(np.int64) << 29) | (field_no.astype(np.int64) << 16) | obj.astype(np.int64))
    ra = ra0[field_idx] + rng.uniform(-0.1, 0.1, n) / np.cos(np.radians(dec0[field_idx]))
    dec = dec0[field_idx] + rng.uniform(-0.07, 0.07, n)

    cat = pd.DataFrame({
        **stamp_identity(dataset, shard, n),
        "objID": objid,
        "ra": ra, "dec": dec,
        "run": np.full(n, run, dtype=np.int32), "rerun": np.full(n, 301, dtype=np.int32),
        "camcol": camcol.astype(np.int32), "field": field_no.astype(np.int32),
        "field_index": field_idx.astype(np.int32),
        "is_star": is_star,
        "class": np.where(is_star, "STAR", "GALAXY"),
        "r_mag_true": r_mag,
        **{f"flux_true_{b}": flux_true[:, j] for j, b in enumerate(BANDS)},
        "bulge_frac": np.where(is_star, 0.0, bt),
        "r_disk_arcsec": np.where(is_star, 0.0, r_disk),
        "r_bulge_arcsec": np.where(is_star, 0.0, r_bulge),
        "q_disk": q_disk, "q_bulge": q_bulge, "pa_deg": pa,
        "dx_px": dx, "dy_px": dy,
        **{f"_fb_{b}": f_bulge[:, j] for j, b in enumerate(BANDS)},
        **{f"_fd_{b}": f_disk[:, j] for j, b in enumerate(BANDS)},
    })
    cat["psf_fwhm_arcsec"] = fields["fwhm_r"].to_numpy()[field_idx]
    for b in BANDS:  # as SDSS PhotoObj's psfFWHM_<band> (arcsec)
        chromatic = (WAVELENGTH_NM[b] / WAVELENGTH_NM["r"]) ** recipe["chromatic_index"]
        cat[f"psfFWHM_{b}"] = cat["psf_fwhm_arcsec"] * chromatic
    for b in BANDS:
        cat[f"sky_{b}"] = fields[f"sky_{b}"].to_numpy()[field_idx]
    cat["pixel_scale"] = float(recipe["pixel_scale"])
    cat["seed"] = np.int64(seed)
    del f_r
    return cat, fields


# --------------------------------------------------------------------------- rendering
def galaxy_profile(row, band_j: int, f_bulge: float, f_disk: float) -> galsim.GSObject:
    """Bulge + disk of one galaxy in one band (fluxes in nanomaggies, sizes in arcsec)."""
    parts = []
    beta = float(row["pa_deg"]) * galsim.degrees
    if f_disk > 0:
        parts.append(galsim.Exponential(half_light_radius=float(row["r_disk_arcsec"]), flux=f_disk)
                     .shear(q=float(row["q_disk"]), beta=beta))
    if f_bulge > 0:
        parts.append(galsim.DeVaucouleurs(half_light_radius=float(row["r_bulge_arcsec"]), flux=f_bulge)
                     .shear(q=float(row["q_bulge"]), beta=beta))
    return parts[0] if len(parts) == 1 else galsim.Add(parts)


def render_stamp(row: dict, psfs: list[galsim.GSObject], stamp: int, scale: float,
                 gsparams: galsim.GSParams) -> np.ndarray:
    """Noiseless (5, stamp, stamp) model of one object in nanomaggies per pixel."""
    out = np.empty((len(BANDS), stamp, stamp), dtype=np.float64)
    image = galsim.ImageD(stamp, stamp, scale=scale)
    for j, b in enumerate(BANDS):
        if row["is_star"]:
            obj = psfs[j].withFlux(float(row[f"flux_true_{b}"]))
        else:
            obj = galsim.Convolve(galaxy_profile(row, j, row[f"_fb_{b}"], row[f"_fd_{b}"]), psfs[j],
                                  gsparams=gsparams)
        obj.drawImage(image, offset=(row["dx_px"], row["dy_px"]))
        out[j] = image.array
    return out


def add_noise(model: np.ndarray, sky: np.ndarray, e_per_nmgy: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Gaussian approximation of the Poisson noise of sky + source, in nanomaggies.

    ``model`` (5, H, W) nmgy/px; ``sky`` (5,) sky nmgy/px; ``e_per_nmgy`` (5,) electrons per nmgy.
    Pixel variance = (sky + max(model, 0)) / e_per_nmgy (nmgy^2).
    """
    var = (sky[:, None, None] + np.clip(model, 0.0, None)) / e_per_nmgy[:, None, None]
    return model + rng.standard_normal(model.shape) * np.sqrt(var)


# --------------------------------------------------------------------------- measurement
def fourier_shift(stack_fft: np.ndarray, shape: tuple[int, int], dy: float, dx: float) -> np.ndarray:
    """Shift images given by their rfft2 by (dy, dx) pixels (periodic, band-limited)."""
    h, w = shape
    ky = np.fft.fftfreq(h)[:, None]
    kx = np.fft.rfftfreq(w)[None, :]
    phase = np.exp(-2j * np.pi * (ky * dy + kx * dx))
    return np.fft.irfft2(stack_fft * phase, s=shape)


def centroid(image: np.ndarray, sigma_px: float, iterations: int = 5, max_shift: float = 2.0) -> tuple[float, float]:
    """Gaussian-weighted first moments (y, x) in pixels relative to the stamp centre.

    Iterates from the centre with a circular Gaussian weight of ``sigma_px``; shifts are capped at
    ``max_shift`` pixels (stamps are centred on their object to within a pixel).
    """
    h, w = image.shape
    yy, xx = np.mgrid[0:h, 0:w]
    yy = yy - (h - 1) / 2.0
    xx = xx - (w - 1) / 2.0
    cy = cx = 0.0
    for _ in range(iterations):
        wgt = np.exp(-0.5 * ((yy - cy) ** 2 + (xx - cx) ** 2) / sigma_px**2) * image
        s = wgt.sum()
        if not s > 0:
            return 0.0, 0.0
        cy = float(np.clip((wgt * yy).sum() / s, -max_shift, max_shift))
        cx = float(np.clip((wgt * xx).sum() / s, -max_shift, max_shift))
    return cy, cx


def template_radii(recipe: dict) -> np.ndarray:
    """Half-light radii (arcsec) of the exp / deV model templates."""
    m = recipe["model_fit"]
    return np.geomspace(m["r_min_arcsec"], m["r_max_arcsec"], int(m["n_radii"]))


def profile_kimages(radii, stamp: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Fourier transforms of unit-flux circular exponential and de Vaucouleurs profiles.

    Returns two (K, stamp, stamp//2+1) real arrays on the ``numpy.fft.rfft2`` grid of a
    ``stamp`` x ``stamp`` image with ``scale`` arcsec/px, one row per half-light radius (arcsec).
    Multiplying a PSF image's rfft2 by one of them gives that profile convolved with the PSF and
    the pixel (what GalSim would draw), without a GalSim convolution per field.
    """
    dk = 2.0 * np.pi / (stamp * scale)
    half = stamp // 2 + 1

    def kimage(prof):
        k = prof.drawKImage(nx=stamp, ny=stamp, scale=dk).array.real
        return np.fft.ifftshift(k)[:, :half]

    exp_k = np.stack([kimage(galsim.Exponential(half_light_radius=float(r))) for r in radii])
    dev_k = np.stack([kimage(galsim.DeVaucouleurs(half_light_radius=float(r))) for r in radii])
    return exp_k, dev_k


class FieldTemplates:
    """Unit-flux PSF, exponential and de Vaucouleurs templates of one field, centred, as rfft2 stacks.

    ``psf_fft[j]``: PSF of band j (drawn by GalSim, pixel included); ``exp_fft[j, k]`` /
    ``dev_fft[j, k]``: the k-th radius of ``template_radii`` convolved with band j's PSF.  The
    convolution is done on a grid padded ``pad`` times and cropped to the stamp, so a template
    holds exactly the light that falls inside the stamp (a periodic convolution on the stamp itself
    would fold the wings of large profiles back in and bias model fluxes low); ``profile_k`` must
    come from ``profile_kimages(radii, pad * stamp, scale)``.
    """

    def __init__(self, psfs, radii, stamp: int, scale: float, profile_k: tuple[np.ndarray, np.ndarray],
                 pad: int = 2):
        big = pad * stamp
        lo = (big - stamp) // 2
        self.shape = (stamp, stamp)
        self.radii = radii
        psf_big = np.stack([p.drawImage(galsim.ImageD(big, big, scale=scale)).array.copy() for p in psfs])
        self.psf_fft = np.fft.rfft2(psf_big[:, lo:lo + stamp, lo:lo + stamp])
        psf_big_fft = np.fft.rfft2(psf_big)
        exp_k, dev_k = profile_k

        def crop_fft(prof_k):
            full = np.fft.irfft2(psf_big_fft[:, None] * prof_k[None], s=(big, big))
            return np.fft.rfft2(full[..., lo:lo + stamp, lo:lo + stamp])

        self.exp_fft = crop_fft(exp_k)
        self.dev_fft = crop_fft(dev_k)


def linear_flux(template: np.ndarray, image: np.ndarray) -> np.ndarray:
    """Least-squares amplitude(s) of unit-flux template(s) (..., H, W) in ``image`` (H, W), uniform weights."""
    num = (template * image).sum(axis=(-2, -1))
    den = (template * template).sum(axis=(-2, -1))
    return num / den


def best_template(templates: np.ndarray, image: np.ndarray) -> np.ndarray:
    """Weights (K,) of the best-fitting member of a one-parameter template family (K, H, W).

    The family is ordered by a parameter on a uniform grid (here log radius).  The grid point with
    the lowest chi^2 at its best non-negative amplitude is refined by a parabola through the chi^2
    of it and its neighbours; the template at the refined parameter is approximated by linear
    interpolation between the two nearest grid members, whose weights are returned (they sum to 1).
    """
    num = (templates * image).sum(axis=(1, 2))
    den = (templates * templates).sum(axis=(1, 2))
    gain = np.where(num > 0, num**2 / den, 0.0)  # chi2 = sum(I^2) - gain
    k = int(np.argmax(gain))
    w = np.zeros(len(templates))
    t = 0.0
    if 0 < k < len(templates) - 1:
        g0, g1, g2 = gain[k - 1], gain[k], gain[k + 1]
        curv = g0 - 2.0 * g1 + g2
        if curv < 0:
            t = float(np.clip(0.5 * (g0 - g2) / curv, -0.5, 0.5))
    j = k + (1 if t > 0 else -1)
    w[k] = 1.0 - abs(t)
    if t != 0.0:
        w[j] = abs(t)
    return w


def measure(image: np.ndarray, tpl: FieldTemplates, sigma_px: float) -> dict:
    """SDSS-style photometry of one (5, H, W) stamp in nanomaggies.

    * centroid: Gaussian-weighted moments of the g+r+i image;
    * PSF flux per band: linear fit of the band's unit-flux PSF at that centroid;
    * cModel (as SDSS photo): in r, the best exponential and the best de Vaucouleurs model over a
      grid of half-light radii (circular, PSF-convolved), then ``fracDeV`` from the non-negative
      linear combination of the two; in each band, exp and deV fluxes from the r-band shapes and
      ``cModel = fracDeV F_deV + (1 - fracDeV) F_exp``;
    * ``petroRad_r``: Petrosian radius (ratio 0.2) of the r image about the centroid, arcsec.
    """
    r = BANDS.index("r")
    cy, cx = centroid(image[1] + image[2] + image[3], sigma_px)
    shape = tpl.shape
    psf = fourier_shift(tpl.psf_fft, shape, cy, cx)  # (5, H, W)
    psf_flux = linear_flux(psf, image)
    exp_r = fourier_shift(tpl.exp_fft[r], shape, cy, cx)
    dev_r = fourier_shift(tpl.dev_fft[r], shape, cy, cx)
    we, wd = best_template(exp_r, image[r]), best_template(dev_r, image[r])
    e, d = np.tensordot(we, exp_r, axes=1), np.tensordot(wd, dev_r, axes=1)
    a = np.array([[np.sum(e * e), np.sum(e * d)], [np.sum(e * d), np.sum(d * d)]])
    rhs = np.array([np.sum(e * image[r]), np.sum(d * image[r])])
    try:
        ae, ad = np.linalg.solve(a, rhs)
    except np.linalg.LinAlgError:
        ae, ad = rhs[0] / a[0, 0], 0.0
    if ae < 0 or ad < 0:  # non-negative combination: one of the two alone
        if rhs[0] ** 2 / a[0, 0] >= rhs[1] ** 2 / a[1, 1]:
            ae, ad = max(rhs[0] / a[0, 0], 0.0), 0.0
        else:
            ae, ad = 0.0, max(rhs[1] / a[1, 1], 0.0)
    frac_dev = float(ad / (ae + ad)) if ae + ad > 0 else 0.0
    exp_all = fourier_shift(np.tensordot(tpl.exp_fft, we, axes=([1], [0])), shape, cy, cx)
    dev_all = fourier_shift(np.tensordot(tpl.dev_fft, wd, axes=([1], [0])), shape, cy, cx)
    log_r = np.log(tpl.radii)
    f_exp, f_dev = linear_flux(exp_all, image), linear_flux(dev_all, image)
    cmodel = frac_dev * f_dev + (1.0 - frac_dev) * f_exp
    return {"psf_flux": psf_flux, "cmodel_flux": cmodel, "exp_flux": f_exp, "dev_flux": f_dev,
            "frac_dev_r": frac_dev, "exp_rad_r": float(np.exp(we @ log_r)), "dev_rad_r": float(np.exp(wd @ log_r)),
            "cy": cy, "cx": cx}


def petrosian_radius(image: np.ndarray, cy: float, cx: float, scale: float, ratio: float = 0.2) -> float:
    """Petrosian radius (arcsec) of a single-band image: first radius where the surface brightness
    in the annulus [0.8 r, 1.25 r] falls below ``ratio`` times the mean inside r.

    Returns the largest radius tried when the ratio never drops (noise-dominated outskirts).
    """
    h, w = image.shape
    yy, xx = np.mgrid[0:h, 0:w]
    rad = np.hypot(yy - (h - 1) / 2.0 - cy, xx - (w - 1) / 2.0 - cx).ravel()
    order = np.argsort(rad)
    rs, vs = rad[order], image.ravel()[order]
    csum = np.concatenate([[0.0], np.cumsum(vs)])
    radii = np.geomspace(1.0, 0.5 * min(h, w) / 1.25, 30)

    def inside(r):
        return np.searchsorted(rs, r, side="right")

    prev = None
    for rr in radii:
        n_in = inside(rr)
        lo, hi = inside(0.8 * rr), inside(1.25 * rr)
        if n_in == 0 or hi <= lo:
            continue
        mean_in = csum[n_in] / n_in
        annulus = (csum[hi] - csum[lo]) / (hi - lo)
        eta = annulus / mean_in if mean_in > 0 else 0.0
        if eta < ratio:
            if prev is None:
                return float(rr * scale)
            (r0, e0) = prev  # interpolate between the last two radii
            t = (e0 - ratio) / (e0 - eta) if e0 != eta else 1.0
            return float((r0 + t * (rr - r0)) * scale)
        prev = (rr, eta)
    return float(radii[-1] * scale)


# --------------------------------------------------------------------------- shard
def simulate_shard(recipe: dict, seed: int, dataset: str, shard: int,
                   progress: Callable[[int, int], None] | None = None):
    """One shard of ugriz star/galaxy stamps (nanomaggies) and its measured catalogue."""
    cat, fields = draw_stargal_params(recipe, seed, dataset, shard)
    stamp, scale = int(recipe["stamp"]), float(recipe["pixel_scale"])
    gsparams = galsim.GSParams(maximum_fft_size=8192)
    e_per_nmgy = np.array([recipe["e_per_nmgy"][b] for b in BANDS], float)
    radii = template_radii(recipe)
    profile_k = profile_kimages(radii, 2 * stamp, scale)  # padded: see FieldTemplates
    images = np.zeros((len(cat), len(BANDS), stamp, stamp), dtype=np.float32)
    rows = cat.to_dict("records")
    meas = []
    for f, field in fields.iterrows():
        sel = np.flatnonzero(cat["field_index"].to_numpy() == f)
        if sel.size == 0:
            continue
        psfs = field_psfs(recipe, field)
        tpl = FieldTemplates(psfs, radii, stamp, scale, profile_k)
        sky = sky_nmgy_per_pixel(np.array([field[f"sky_{b}"] for b in BANDS]), scale)
        sigma_px = float(field["fwhm_r"]) / 2.3548 / scale
        for i in sel:
            rng = np.random.default_rng(stamp_seed(seed, dataset, shard, int(i)))
            model = render_stamp(rows[i], psfs, stamp, scale, gsparams)
            img = add_noise(model, sky, e_per_nmgy, rng)
            images[i] = img.astype(np.float32)
            m = measure(images[i].astype(np.float64), tpl, sigma_px)
            m["petro"] = petrosian_radius(images[i, 2].astype(np.float64), m["cy"], m["cx"], scale)
            m["sky_sigma"] = np.sqrt(sky / e_per_nmgy)
            meas.append((i, m))
            if progress is not None:
                progress(len(meas), len(cat))
    meas.sort(key=lambda t: t[0])
    ms = [m for _, m in meas]
    psf_flux = np.stack([m["psf_flux"] for m in ms])
    cm_flux = np.stack([m["cmodel_flux"] for m in ms])
    out = cat.drop(columns=[c for c in cat.columns if c.startswith("_")])
    for j, b in enumerate(BANDS):
        out[f"psfFlux_{b}"] = psf_flux[:, j]
        out[f"cModelFlux_{b}"] = cm_flux[:, j]
    for j, b in enumerate(BANDS):
        out[f"psfMag_{b}"] = luptitude(psf_flux[:, j], b)
    for j, b in enumerate(BANDS):
        out[f"cModelMag_{b}"] = luptitude(cm_flux[:, j], b)
    out["fracDeV_r"] = [m["frac_dev_r"] for m in ms]
    out["expRad_r"] = [m["exp_rad_r"] for m in ms]
    out["deVRad_r"] = [m["dev_rad_r"] for m in ms]
    out["petroRad_r"] = [m["petro"] for m in ms]
    sky_sigma = np.stack([m["sky_sigma"] for m in ms])
    for j, b in enumerate(BANDS):
        out[f"sky_sigma_{b}"] = sky_sigma[:, j]
    diff = out["psfMag_r"] - out["cModelMag_r"]
    out["type"] = np.where(diff > SDSS_EXTENDED_CUT, TYPE_GALAXY, TYPE_STAR).astype(np.int32)
    return images, out

