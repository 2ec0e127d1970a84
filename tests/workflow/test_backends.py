"""The workflow trains with the JAX backend too (KERAS_BACKEND=jax, CPU): model code is backend-agnostic."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import snakerun
from deepsky import manifest

pytestmark = pytest.mark.workflow


def test_tiny_workflow_trains_with_jax_backend(tmp_path, tmp_path_factory):
    ref = snakerun.reference_run(tmp_path_factory)
    snakerun.run(tmp_path, "manifest", configfiles=[snakerun.RERUN],
                 environ=snakerun.env(KERAS_BACKEND="jax", JAX_PLATFORMS="cpu"))
    log = (tmp_path / "results/logs/train/size/cnn.log").read_text()
    assert "keras backend jax, devices cpu" in log, log[-2000:]
    hist = pd.read_parquet(tmp_path / "results/size/models/cnn.history.parquet")
    assert list(hist["epoch"]) == [1, 2, 3, 4, 5, 6] and np.isfinite(hist[["loss", "val_loss"]]).all().all()
    metrics = json.loads((tmp_path / "results/size/metrics/cnn.json").read_text())
    assert np.isfinite(metrics["overall"]["r2_log"]) and metrics["n_test"] == 80
    # simulations and the split do not depend on the Keras backend: byte-identical to the TF run
    a, b = (manifest.read(d / "results" / "manifest.tsv") for d in (ref, tmp_path))
    same = a.merge(b, on="path")
    same = same[same["path"].str.startswith(("sims/", "size/split"))]
    assert len(same) == 5 and (same["digest_x"] == same["digest_y"]).all()
