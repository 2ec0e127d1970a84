"""Rule predict end to end on a tiny trained model."""

from __future__ import annotations

import json

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


def test_predict_scatter_over_sky_tiles(tmp_path, model_file):
    """results/predict/{name}/manifest.json: the catalogue split into sky tiles (3 here), one job per
    tile writing Parquet parts, a gather that checks every row; the same numbers as one job."""
    import candels_fixtures as cf

    path, _ = model_file
    rows = cf.make_mosaic(tmp_path / "m.fits", noise=0.05)
    pick = [rows[i % len(rows)] for i in range(20)]
    pd.DataFrame({"id": range(20), "ra": [g["ra"] for g in pick], "dec": [g["dec"] for g in pick]}).to_csv(
        tmp_path / "cat.csv", index=False)
    cfg = yaml.safe_load(snakerun.TINY.read_text())
    cfg["predict"] = {"sky": {"model": str(path), "images": [str(tmp_path / "m.fits")],
                              "catalogue": str(tmp_path / "cat.csv")}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    run = tmp_path / "run"
    snakerun.run(run, "results/predict/sky/manifest.json", "results/predict/sky.parquet", "--set-scatter",
                 "predict_tile=3", configfiles=(tmp_path / "c.yaml",), timeout=600)
    res = run / "results" / "predict"
    summary = json.loads((res / "sky" / "manifest.json").read_text())
    assert summary["complete"] and summary["rows"] == 20 and len(summary["tiles"]) == 3
    assert sorted(p.name for p in (res / "sky" / "parts").iterdir()) == ["1-of-3", "2-of-3", "3-of-3"]
    got = pd.read_parquet(res / "sky" / "parts").sort_values("catalogue_row")
    whole = pd.read_parquet(res / "sky.parquet")
    assert got["id"].tolist() == whole["id"].tolist() == list(range(20))
    np.testing.assert_allclose(got["pred"].to_numpy(), whole["pred"].to_numpy(), rtol=1e-5)
    assert not (res / "sky" / ".scratch").exists(), "scratch parts are moved into the outputs"
