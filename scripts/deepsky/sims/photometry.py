"""Sersic photometry and the aperture S/N -> flux conversion shared by the recipes."""

from __future__ import annotations

import numpy as np
from scipy import special


def sersic_b(n) -> np.ndarray:
    """b_n such that half the light of a Sersic profile of index n lies inside R_e."""
    return special.gammaincinv(2.0 * np.asarray(n, dtype=float), 0.5)


def sersic_enclosed_fraction(r, r_e, n) -> np.ndarray:
    """Fraction of a circular Sersic profile's total light inside radius r (same units as r_e)."""
    n = np.asarray(n, dtype=float)
    x = sersic_b(n) * (np.asarray(r, dtype=float) / np.asarray(r_e, dtype=float)) ** (1.0 / n)
    return special.gammainc(2.0 * n, x)


def flux_for_snr(snr, r_e, psf_hlr, pixel_scale, sky):
    """Total flux (electrons) that gives aperture signal-to-noise ``snr``.

    S/N is defined in the aperture of radius R_h = sqrt(r_e**2 + psf_hlr**2) (arcsec), an estimate
    of the observed half-light radius, which holds half the flux F:
    ``snr = (F/2) / sqrt(F/2 + A * sky)`` with A = pi R_h**2 in pixels and ``sky`` the sky level
    in electrons per pixel.  Solved exactly for F.
    """
    snr = np.asarray(snr, dtype=float)
    area = np.pi * (np.hypot(r_e, psf_hlr) / pixel_scale) ** 2
    s2 = snr**2
    half = 0.5 * (s2 + np.sqrt(s2**2 + 4.0 * s2 * area * sky))
    return 2.0 * half
