"""Fixture: a tiny size model trained and saved the way the train rule does (shared by unit and
workflow tests of ``deepsky predict``)."""

from __future__ import annotations

import pandas as pd
import pytest

from deepsky import io, sims
from deepsky.learn import data, tasks, train

STAMP = 32


@pytest.fixture(scope="session")
def model_file(tmp_path_factory):
    """A tiny cnn trained for 2 epochs on 96 Sersic stamps (32 px at 0.06"/px), saved as deepsky does."""
    from deepsky.learn import modelfile

    d = tmp_path_factory.mktemp("model")
    recipe = {"kind": "sersic", "shards": 1, "per_shard": 96, "stamp": STAMP, "pixel_scale": 0.06,
              "psf": {"profile": "moffat", "fwhm": 0.18, "beta": 2.5},
              "sersic_n": {"min": 0.5, "max": 4.0, "step": 0.5},
              "r_e": {"min": 0.1, "max": 0.5}, "q": {"min": 0.4, "max": 1.0}, "snr": {"min": 30, "max": 100},
              "sky": 50.0, "offset_px": 0.5, "method": "fft"}
    images, cat = sims.simulate_shard(recipe, 3, "size", 0)
    split = pd.DataFrame({"id": cat["id"], "split": data.split_labels(len(cat), {"val": 0.2, "test": 0.1}, 3)})
    task_cfg = {"preprocess": {"layout": "fovea", "norm": "flux", "stretch": "asinh", "flux_scale": 20.0}}
    spec = tasks.preprocess_spec(task_cfg, recipe, 1)
    train_cfg = {"epochs": 2, "batch_size": 16, "learning_rate": 0.002, "schedule": "constant", "patience": 2,
                 "augment": False}
    model, meta, _, _ = train.train_task("size", images, cat, split, spec, "cnn", {"width": 4}, train_cfg, 3,
                                         d / "scratch", log=lambda m: None)
    path = d / "cnn.keras"
    modelfile.save_model(model, path, meta)
    io.write_npz(d / "stamps.npz", {"images": images[:8]})
    return path, images[:8]
