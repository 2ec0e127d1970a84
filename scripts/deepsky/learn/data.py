"""Splits, preprocessing, target transforms and augmentation (numpy only, deterministic).

Preprocessing is described by a small JSON-able dict saved with every model, so that prediction on
new images repeats exactly what training did:

``{"layout": "fovea"|"full", "norm": "flux"|"noise"|"sky"|"none", "stretch": "asinh"|"linear",
   "stamp": 64, "bands": 1, "pixel_scale": 0.06, "band_names": [...], "flux_scale": ...}``

* ``norm='flux'`` divides each stamp by its own summed flux (sizes do not depend on brightness),
  then multiplies by ``flux_scale`` (so a typical peak is of order one);
* ``norm='noise'`` divides each band by its own pixel noise (robust sigma of the stamp border),
  then multiplies by ``flux_scale``: colours and signal-to-noise survive, calibration does not matter;
* ``norm='ref'`` divides every band by one number per stamp, the flux of band ``ref_band`` in a
  central aperture of ``aperture_px`` pixels (floored at 3 sigma), times ``flux_scale``: shapes and
  colours no longer depend on brightness, the noise level tells how faint the object is;
* ``psf_channel=True`` appends the seeing as an image (see ``preprocess``);
* ``stretch='asinh'`` compresses bright cores while staying linear near zero;
* ``layout='fovea'`` turns an (S, S) stamp into two (S/2, S/2) channels: the central crop at full
  resolution and the whole stamp binned 2x2.  Small galaxies keep every pixel, large ones keep
  their wings, and the network sees 2x fewer pixels (4x fewer multiply-adds per layer).
"""

from __future__ import annotations

import numpy as np
import pandas as pd


# --------------------------------------------------------------------------- splits
def split_labels(n: int, fractions: dict, seed: int) -> np.ndarray:
    """Deterministic split labels ('train'/'val'/'test') for n items from their fractions.

    The permutation is seeded; each item's split depends only on (seed, n), never on time or order
    of processing.  ``fractions`` must hold 'val' and 'test' (train gets the rest).
    """
    val, test = float(fractions["val"]), float(fractions["test"])
    if not (0 < val < 1 and 0 < test < 1 and val + test < 1):
        raise ValueError(f"split fractions val={val}, test={test} must be in (0, 1) and sum below 1")
    perm = np.random.default_rng(np.random.SeedSequence([seed, 0x5917])).permutation(n)
    n_test, n_val = int(round(test * n)), int(round(val * n))
    labels = np.empty(n, dtype=object)
    labels[perm[:n_test]] = "test"
    labels[perm[n_test:n_test + n_val]] = "val"
    labels[perm[n_test + n_val:]] = "train"
    return labels


# --------------------------------------------------------------------------- preprocessing
def fovea(x: np.ndarray) -> np.ndarray:
    """(N, C, S, S) -> (N, 2C, S/2, S/2): central crop at full resolution + whole stamp binned 2x2."""
    n, c, s, s2 = x.shape
    if s != s2 or s % 4:
        raise ValueError(f"fovea layout needs square stamps with a side divisible by 4, got {s}x{s2}")
    h = s // 2
    crop = x[:, :, s // 4: s // 4 + h, s // 4: s // 4 + h]
    binned = x.reshape(n, c, h, 2, h, 2).mean(axis=(3, 5))
    return np.concatenate([crop, binned], axis=1)


def preprocess(images: np.ndarray, spec: dict, psf_fwhm=None) -> np.ndarray:
    """Images (N, bands, H, W) in physical units -> network input (N, H', W', C') float32.

    With ``spec['psf_channel']`` true, ``psf_fwhm`` (N,) gives each stamp's PSF FWHM in arcsec and
    one more channel is appended: a unit-peak circular Gaussian of that FWHM (``psf_image``), so
    the network can compare the object with the seeing it was observed in.

    Raises ValueError naming the mismatch when the images do not have the band count or stamp size
    the spec was made for, or hold non-finite pixels.
    """
    x = np.asarray(images, dtype=np.float32)
    if x.ndim != 4:
        raise ValueError(f"images must be (N, bands, H, W), got shape {x.shape}")
    if x.shape[1] != spec["bands"]:
        raise ValueError(f"model expects {spec['bands']} bands, images have {x.shape[1]}")
    if x.shape[2] != spec["stamp"] or x.shape[3] != spec["stamp"]:
        raise ValueError(f"model expects {spec['stamp']}x{spec['stamp']} stamps, images are {x.shape[2]}x{x.shape[3]}")
    if not np.isfinite(x).all():
        bad = int((~np.isfinite(x)).any(axis=(1, 2, 3)).sum())
        raise ValueError(f"{bad} stamp(s) hold NaN or infinite pixels")
    norm = spec.get("norm", "flux")
    if norm == "flux":
        # per-stamp, per-band total flux, floored so that a blank stamp does not blow up
        tot = x.sum(axis=(2, 3), keepdims=True)
        floor = spec.get("flux_floor", 1e-3) * np.abs(tot).max(axis=(1, 2, 3), keepdims=True).clip(1e-12)
        x = x / np.maximum(tot, floor) * spec.get("flux_scale", 1.0)
    elif norm == "sky":
        x = x / spec["sky_sigma"]
    elif norm == "noise":
        # each band in units of its own pixel noise (robust sigma of the stamp's border), so that
        # the network sees signal-to-noise per pixel in every band, whatever the calibration
        x = x / border_sigma(x, spec.get("border", 4))[:, :, None, None] * spec.get("flux_scale", 1.0)
    elif norm == "ref":
        # every band divided by one number per stamp: the reference band's flux in a central
        # aperture (floored at 3 sigma of its noise), so colours and shape are kept and the input
        # no longer depends on brightness; the noise level shows how faint the object is
        x = x / reference_flux(x, spec.get("ref_band", 0), spec.get("aperture_px", 6.0),
                               spec.get("border", 4))[:, None, None, None] * spec.get("flux_scale", 1.0)
    elif norm != "none":
        raise ValueError(f"unknown normalisation {norm!r}")
    if spec.get("stretch", "asinh") == "asinh":
        x = np.arcsinh(x)
    if spec.get("psf_channel", False):
        if psf_fwhm is None:
            raise ValueError("this preprocessing has psf_channel: true but no PSF FWHM was given "
                             f"(catalogue column {spec.get('psf_column', 'psfFWHM_r')!r})")
        psf = psf_image(psf_fwhm, x.shape[2], spec["pixel_scale"])
        x = np.concatenate([x, psf[:, None]], axis=1)
    if spec.get("layout", "full") == "fovea":
        x = fovea(x)
    return np.ascontiguousarray(np.transpose(x, (0, 2, 3, 1)), dtype=np.float32)


def psf_image(fwhm_arcsec, stamp: int, pixel_scale: float) -> np.ndarray:
    """(N, stamp, stamp) unit-peak circular Gaussians of the given FWHMs (arcsec), centred like the
    stamps ((stamp - 1) / 2), float32.  Raises ValueError on non-finite or non-positive FWHMs."""
    fwhm = np.asarray(fwhm_arcsec, dtype=float)
    if not (np.isfinite(fwhm).all() and (fwhm > 0).all()):
        bad = fwhm[~(np.isfinite(fwhm) & (fwhm > 0))][:5]
        raise ValueError(f"PSF FWHM must be finite and positive (arcsec), got {bad}")
    sigma = fwhm / (2.0 * np.sqrt(2.0 * np.log(2.0))) / pixel_scale
    c = np.arange(stamp) - (stamp - 1) / 2.0
    r2 = c[None, :, None] ** 2 + c[None, None, :] ** 2
    return np.exp(-0.5 * r2 / sigma[:, None, None] ** 2).astype(np.float32)


def border_sigma(x: np.ndarray, width: int = 4) -> np.ndarray:
    """Robust per-stamp, per-band noise sigma (N, C) from the outer ``width`` pixels of each stamp.

    1.4826 x the median absolute deviation about the median, floored at a tiny positive value so
    that a noiseless stamp does not divide by zero.  Objects are centred, so the border is sky.
    """
    n, c, h, w = x.shape
    mask = np.ones((h, w), dtype=bool)
    mask[width:h - width, width:w - width] = False
    ring = x[:, :, mask]
    med = np.median(ring, axis=2, keepdims=True)
    sigma = 1.4826 * np.median(np.abs(ring - med), axis=2)
    return np.maximum(sigma, 1e-12)


def reference_flux(x: np.ndarray, band: int, radius_px: float, border: int = 4) -> np.ndarray:
    """Flux (N,) of band ``band`` inside a central circle of ``radius_px`` pixels, floored at 3 times
    its noise (border sigma x sqrt(aperture pixels)) so that a blank or negative stamp stays finite."""
    n, c, h, w = x.shape
    if not 0 <= band < c:
        raise ValueError(f"ref_band {band} is out of range for {c} band(s)")
    yy, xx = np.mgrid[0:h, 0:w]
    ap = np.hypot(yy - (h - 1) / 2.0, xx - (w - 1) / 2.0) <= radius_px
    flux = x[:, band][:, ap].sum(axis=1)
    floor = 3.0 * border_sigma(x[:, band:band + 1], border)[:, 0] * np.sqrt(ap.sum())
    return np.maximum(flux, floor)


def input_shape(spec: dict) -> tuple[int, int, int]:
    """(H, W, C) of the network input made by ``preprocess`` for this spec."""
    s, c = spec["stamp"], spec["bands"] + (1 if spec.get("psf_channel", False) else 0)
    return (s // 2, s // 2, 2 * c) if spec.get("layout", "full") == "fovea" else (s, s, c)


# --------------------------------------------------------------------------- targets
def fit_log_target(values: np.ndarray) -> dict:
    """Standardisation of ln(value) fitted on training values: {'kind': 'log', 'mean', 'std'}."""
    v = np.log(np.asarray(values, dtype=float))
    return {"kind": "log", "mean": float(v.mean()), "std": float(v.std() or 1.0)}


def encode_target(values: np.ndarray, t: dict) -> np.ndarray:
    if t["kind"] != "log":
        raise ValueError(f"unknown target transform {t['kind']!r}")
    return ((np.log(np.asarray(values, dtype=float)) - t["mean"]) / t["std"]).astype(np.float32)


def decode_target(z: np.ndarray, t: dict) -> np.ndarray:
    """Network output (standardised ln) -> physical value (e.g. arcsec)."""
    return np.exp(np.asarray(z, dtype=float) * t["std"] + t["mean"])


# --------------------------------------------------------------------------- augmentation
def dihedral(x: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Apply one of the 8 flips/90-degree rotations (k in 0..7) to each (H, W, C) stamp.

    Sizes, shapes and classes are invariant under these for a symmetric PSF, so labels are kept.
    """
    out = np.empty_like(x)
    for code in range(8):
        sel = np.flatnonzero(k == code)
        if sel.size == 0:
            continue
        y = np.rot90(x[sel], code % 4, axes=(1, 2))
        if code >= 4:
            y = y[:, :, ::-1]
        out[sel] = y
    return out


def train_subset(train_mask: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Keep a seeded ``fraction`` of the True entries of ``train_mask`` (for training-set-size studies).

    The kept items are the first round(fraction * n) of one seeded permutation, so the subsets are
    nested: the 25% subset lies inside the 50% one, which lies inside the full set.
    """
    train_mask = np.asarray(train_mask, bool)
    if not 0 < fraction <= 1:
        raise ValueError(f"training-set fraction {fraction} must be in (0, 1]")
    if fraction == 1:
        return train_mask
    idx = np.flatnonzero(train_mask)
    perm = np.random.default_rng(np.random.SeedSequence([seed, 0xF4AC])).permutation(idx.size)
    keep = idx[np.sort(perm[: max(1, int(round(fraction * idx.size)))])]
    out = np.zeros_like(train_mask)
    out[keep] = True
    return out


def split_frame(cat: pd.DataFrame, split: pd.DataFrame) -> pd.DataFrame:
    """Join the split table (id, split) onto a catalogue, checking every id has a split."""
    merged = cat.merge(split[["id", "split"]], on="id", how="left", validate="one_to_one")
    if merged["split"].isna().any():
        raise ValueError(f"{int(merged['split'].isna().sum())} stamps have no split assignment")
    return merged
