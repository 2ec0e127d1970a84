"""PSF models of the simulation recipes (sizes in arcsec)."""

from __future__ import annotations

import galsim

# An FFT bigger than maximum_fft_size would otherwise only warn and then allocate many GB.
galsim.errors.raise_fft_size_error = True


def make_psf(psf_cfg: dict) -> galsim.GSObject:
    """Build the PSF from its config (FWHM and diameters in arcsec / metres, wavelength in nm)."""
    kind = psf_cfg["profile"]
    if kind == "moffat":
        return galsim.Moffat(beta=psf_cfg["beta"], fwhm=psf_cfg["fwhm"])
    if kind == "gaussian":
        return galsim.Gaussian(fwhm=psf_cfg["fwhm"])
    if kind == "kolmogorov":
        return galsim.Kolmogorov(fwhm=psf_cfg["fwhm"])
    if kind == "airy":
        # Diffraction-limited space telescope: lam/D in arcsec, central obscuration, struts.
        lam_over_diam = psf_cfg["lam_nm"] * 1e-9 / psf_cfg["diam_m"] * 206264.80624709636
        return galsim.OpticalPSF(
            lam_over_diam=lam_over_diam,
            obscuration=psf_cfg.get("obscuration", 0.0),
            nstruts=psf_cfg.get("nstruts", 0),
            strut_thick=psf_cfg.get("strut_thick", 0.05),
            strut_angle=psf_cfg.get("strut_angle_deg", 0.0) * galsim.degrees,
            defocus=psf_cfg.get("defocus", 0.0),
        )
    raise ValueError(f"unknown PSF profile {kind!r} (expected moffat, gaussian, kolmogorov or airy)")


def psf_half_light_radius(psf: galsim.GSObject) -> float:
    """Half-light radius of a PSF in arcsec (analytic where GalSim has it, else measured)."""
    try:
        return float(psf.half_light_radius)
    except AttributeError:
        return float(psf.calculateHLR(scale=0.005, size=512))
