"""`snakemake transfer` end to end on a tiny config: one budget, all four strategies, the summary."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.workflow
def test_transfer_workflow_tiny(tmp_path):
    if shutil.which("snakemake") is None:
        pytest.fail("snakemake is not installed (pip install -e '.[test]')")
    cmd = [sys.executable, "-m", "snakemake", "--cores", "2", "-s", str(REPO / "workflow" / "Snakefile"),
           "-d", str(tmp_path), "--configfile", str(REPO / "tests" / "configs" / "transfer_tiny.yaml"), "--", "transfer"]
    run = subprocess.run(cmd, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-4000:]
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
    dry = subprocess.run(cmd[:3] + ["-n"] + cmd[3:], capture_output=True, text=True)
    assert dry.returncode == 0 and "Nothing to be done" in dry.stdout + dry.stderr
