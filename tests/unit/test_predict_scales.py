"""`deepsky predict` on NPZ stamps finer, equal to and coarser than the model's grid: the `edge` flag
marks only stamps whose footprint on the sky is narrower than the model's; every other stamp gets a
finite prediction, and block-summed fine stamps predict what stamps drawn on the model's grid do."""

from __future__ import annotations

import galsim
import numpy as np
import pytest

from deepsky import cutouts, io, predict


@pytest.fixture(scope="module")
def model_path(model_file):
    """The shared tiny size model (tests/tiny_model.py: 32 px at 0.06"/px, saved as training saves it)."""
    return model_file[0]


def galaxies(scale: float, n: int) -> np.ndarray:
    """Three PSF-convolved Sersic galaxies drawn by GalSim on an n x n grid of ``scale`` "/px (N, 1, n, n)."""
    psf = galsim.Moffat(beta=2.5, fwhm=0.18)
    gsp = galsim.GSParams(folding_threshold=1e-4, maxk_threshold=1e-4)
    out = []
    for hlr, nn, q in [(0.15, 1.0, 0.8), (0.3, 2.5, 0.6), (0.45, 1.5, 0.9)]:
        gal = galsim.Sersic(n=nn, half_light_radius=hlr, flux=2000.0).shear(q=q, beta=20 * galsim.degrees)
        out.append(galsim.Convolve(gal, psf, gsparams=gsp).drawImage(nx=n, ny=n, scale=scale).array)
    return np.asarray(out, np.float32)[:, None]


@pytest.mark.parametrize("scale,width,fits", [
    (0.03, 64, True),    # finer, same 1.92" footprint: the case every stamp was wrongly flagged in
    (0.03, 80, True),    # finer and wider
    (0.03, 60, False),   # finer but 1.8" wide: the model would see beyond the stamp
    (0.06, 32, True),    # the model's own grid
    (0.06, 40, True),    # same scale, wider: centred onto the model's grid
    (0.06, 30, False),   # same scale, narrower
    (0.12, 16, True),    # coarser, same footprint
    (0.12, 15, False),   # coarser, 1.8" wide
])
def test_edge_only_where_the_models_footprint_leaves_the_stamps(tmp_path, model_path, scale, width, fits):
    npz = tmp_path / "cube.npz"
    io.write_npz(npz, {"images": galaxies(scale, width)})
    msgs = []
    t = predict.run(model_path, tmp_path / "p.parquet", stamps=npz, stamps_pixel_scale=scale, log=msgs.append)
    if fits:
        assert (t["flag"] == cutouts.OK).all(), msgs
        assert np.isfinite(t["pred"]).all() and (t["pred"] > 0).all()
    else:
        assert (t["flag"] == cutouts.EDGE).all() and (t["flag_names"] == "edge").all()
        assert t["pred"].isna().all()
        assert any("flagged 'edge'" in m for m in msgs), msgs


def test_block_summed_fine_stamps_predict_as_the_models_grid(tmp_path, model_path):
    """GalSim's pixels integrate the light, so 2x2 block sums of a 0.03"/px drawing are the 0.06"/px
    drawing: resampled fine stamps must give the model the same input, hence the same sizes."""
    for scale, width in [(0.03, 64), (0.06, 32)]:
        io.write_npz(tmp_path / f"{scale}.npz", {"images": galaxies(scale, width)})
    fine = predict.run(model_path, tmp_path / "f.parquet", stamps=tmp_path / "0.03.npz", stamps_pixel_scale=0.03,
                       log=lambda m: None)
    native = predict.run(model_path, tmp_path / "n.parquet", stamps=tmp_path / "0.06.npz", log=lambda m: None)
    np.testing.assert_allclose(fine["pred"], native["pred"], rtol=2e-3)
