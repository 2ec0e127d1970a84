"""`snakemake transfer` end to end on a tiny config: one budget, all four strategies, the summary."""
import json
from pathlib import Path

import pandas as pd

import snakerun

REPO = Path(__file__).resolve().parents[2]


def test_transfer_workflow_tiny(tmp_path):
    config = (snakerun.CONFIGS / "transfer_tiny.yaml",)
    snakerun.run(tmp_path, "transfer", configfiles=config)
    res = tmp_path / "results" / "transfer"
    table = pd.read_parquet(res / "summary.parquet")
    assert list(table["strategy"]) == ["zeroshot", "head", "full", "scratch"]
    assert list(table["budget"]) == [0, 20, 20, 20]
    assert (table["n_test"] == 40).all()  # one test set for every strategy
    assert table[["median_abs_rel", "bias"]].notna().all().all()
    assert list(table.loc[table["budget"] == 20, "n_val"]) == [4, 4, 4]
    # the labelled budget never touches the test set, and zero-shot is the base model's prediction
    split = pd.read_parquet(res / "split.parquet")
    test_ids = set(split.loc[split["split"] == "test", "id"])
    for s in ("zeroshot", "head", "full", "scratch"):
        n = 0 if s == "zeroshot" else 20
        pred = pd.read_parquet(res / s / f"n{n}" / "predictions.parquet")
        assert set(pred["id"]) == test_ids
        assert (res / s / f"n{n}" / "pred_vs_true.png").stat().st_size > 0
        meta = json.loads((res / s / f"n{n}" / "model.json").read_text())
        assert meta["strategy"] == s and meta["base_model_file"] == "results/size/models/cnn.keras"
    checks = json.loads((res / "checks.json").read_text())
    assert [c["budget"] for c in checks["budgets"]] == [20]
    assert (res / "plots" / "budget.png").stat().st_size > 0
    assert "| full | 20 |" in (res / "summary.md").read_text()
    # nothing to do on a second call: params and inputs are deterministic
    dry = snakerun.run(tmp_path, "transfer", "-n", configfiles=config)
    assert "Nothing to be done" in snakerun.output(dry)
