"""Model registry: shapes and names."""

from __future__ import annotations

import numpy as np
import pytest

from deepsky.learn import models


@pytest.mark.parametrize("name", sorted(models.REGISTRY))
@pytest.mark.parametrize("shape", [(32, 32, 2), (16, 16, 5)])
def test_models_build_and_predict(name, shape):
    m = models.build(name, shape, 1)
    out = m(np.zeros((3, *shape), dtype=np.float32))
    assert tuple(out.shape) == (3, 1)
    assert m.count_params() > 0


def test_dense_depths_match_the_lab():
    d2, d5 = models.build("dense2", (8, 8, 1)), models.build("dense5", (8, 8, 1))
    def hidden(m):
        return [layer for layer in m.layers if layer.name.startswith("dense_")]

    assert len(hidden(d2)) == 2 and len(hidden(d5)) == 5


def test_unknown_model_lists_known():
    with pytest.raises(ValueError, match="unknown model 'resnet999'.*sizenet"):
        models.build("resnet999", (8, 8, 1))
