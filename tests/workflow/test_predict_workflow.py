"""Rule predict end to end on a tiny trained model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import yaml

import snakerun
from deepsky.learn import inference, modelfile


def test_predict_rule(tmp_path, model_file):
    """Rule predict: a job named in config -> results/predict/{name}.parquet, same numbers as the CLI."""
    path, stamps = model_file
    cfg = yaml.safe_load(snakerun.TINY.read_text())
    cfg["predict"] = {"mine": {"model": str(path), "stamps": str(path.parent / "stamps.npz")}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    snakerun.run(tmp_path / "run", "results/predict/mine.parquet", configfiles=(tmp_path / "c.yaml",), cores=1,
                 timeout=300)

    model, meta = modelfile.load_model(path)
    got = pd.read_parquet(tmp_path / "run" / "results" / "predict" / "mine.parquet")
    np.testing.assert_allclose(got["pred"], inference.predict_task(model, meta, stamps)["pred"], rtol=1e-6)
