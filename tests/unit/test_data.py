"""Splits, preprocessing and augmentation."""

from __future__ import annotations

import numpy as np
import pytest

from deepsky.learn import data


def test_split_is_deterministic_and_disjoint():
    a = data.split_labels(1000, {"val": 0.1, "test": 0.2}, 5)
    b = data.split_labels(1000, {"val": 0.1, "test": 0.2}, 5)
    assert (a == b).all()
    assert (a == "test").sum() == 200 and (a == "val").sum() == 100 and (a == "train").sum() == 700
    assert not (a == data.split_labels(1000, {"val": 0.1, "test": 0.2}, 6)).all()


def test_split_rejects_bad_fractions():
    with pytest.raises(ValueError, match="val=0.6, test=0.5"):
        data.split_labels(10, {"val": 0.6, "test": 0.5}, 1)


def test_fovea_keeps_centre_and_bins_whole_stamp():
    x = np.arange(2 * 1 * 8 * 8, dtype=np.float32).reshape(2, 1, 8, 8)
    f = data.fovea(x)
    assert f.shape == (2, 2, 4, 4)
    np.testing.assert_array_equal(f[:, 0], x[:, 0, 2:6, 2:6])
    np.testing.assert_allclose(f[0, 1, 0, 0], x[0, 0, :2, :2].mean())


def test_preprocess_shapes_and_errors():
    spec = {"layout": "fovea", "norm": "flux", "stretch": "asinh", "flux_scale": 20.0, "stamp": 8, "bands": 1}
    x = np.random.default_rng(0).normal(size=(3, 1, 8, 8)).astype(np.float32) + 1.0
    out = data.preprocess(x, spec)
    assert out.shape == (3, 4, 4, 2) == (3, *data.input_shape(spec))
    # flux normalisation: a brighter copy of the same stamp gives the same input
    np.testing.assert_allclose(data.preprocess(10 * x, spec), out, rtol=1e-5)
    with pytest.raises(ValueError, match="expects 1 bands, images have 2"):
        data.preprocess(np.ones((1, 2, 8, 8)), spec)
    with pytest.raises(ValueError, match="8x8 stamps, images are 6x6"):
        data.preprocess(np.ones((1, 1, 6, 6)), spec)
    bad = x.copy()
    bad[1, 0, 3, 3] = np.nan
    with pytest.raises(ValueError, match="1 stamp"):
        data.preprocess(bad, spec)


def test_dihedral_covers_the_group_and_keeps_content():
    x = np.random.default_rng(1).normal(size=(8, 5, 5, 2)).astype(np.float32)
    y = data.dihedral(x, np.arange(8))
    for k in range(8):
        assert np.isclose(np.sort(y[k].ravel()), np.sort(x[k].ravel())).all()
    # the 8 images of one stamp are all distinct
    same = np.repeat(x[:1], 8, axis=0)
    z = data.dihedral(same, np.arange(8)).reshape(8, -1)
    assert len({tuple(np.round(r, 5)) for r in z}) == 8


def test_log_target_roundtrip():
    v = np.array([0.1, 0.3, 1.0])
    t = data.fit_log_target(v)
    np.testing.assert_allclose(data.decode_target(data.encode_target(v, t), t), v, rtol=1e-6)
