"""Workflow tests of the model study on the tiny config: Paramspace expansion, the leaderboard, the
Snakemake HTML report (every declared figure embedded, every caption renders)."""
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEFILE = REPO / "workflow" / "Snakefile"
TINY = REPO / "tests" / "configs" / "tiny.yaml"
pytestmark = pytest.mark.workflow


def snakemake(workdir, *args, configfiles=(TINY,), check=True):
    cmd = [sys.executable, "-m", "snakemake", "-s", str(SNAKEFILE), "-d", str(workdir), "--cores", "2", *args,
           "--configfile", *map(str, configfiles)]  # --configfile takes several values: keep it last
    res = subprocess.run(cmd, capture_output=True, text=True)
    if check and res.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{res.stdout[-3000:]}\n{res.stderr[-6000:]}")
    return res


def job_counts(output: str) -> dict:
    block = output.split("Job stats:", 1)[1]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", block, re.M)}


def test_adding_a_variant_row_adds_its_jobs(tmp_path):
    base = job_counts(snakemake(tmp_path, "-n", "study").stdout)
    tiny = yaml.safe_load(TINY.read_text())
    extra = tmp_path / "extra.yaml"
    extra.write_text(yaml.safe_dump({"study": {"variants": {"cnn_new": {"arch": "cnn", "dropout": 0.2}}}}))
    more = job_counts(snakemake(tmp_path, "-n", "study", configfiles=(TINY, extra)).stdout)
    n_fractions = len(tiny["study"]["fractions"])
    assert more["train"] == base["train"] + n_fractions
    assert more["evaluate"] == base["evaluate"] + n_fractions
    # one row per variant x fraction (cnn_gauss runs at one fraction only)
    assert base["train"] == sum(len(v.get("fractions", tiny["study"]["fractions"])) for v in tiny["study"]["variants"].values())
    assert base["sersic_baseline"] == 1 and base["calibration"] == 1


def test_bad_variant_names_the_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"study": {"variants": {"x": {"arch": "resnet"}}}}))
    res = snakemake(tmp_path, "-n", "study", configfiles=(TINY, bad), check=False)
    assert res.returncode != 0 and "resnet" in res.stdout + res.stderr


@pytest.fixture(scope="module")
def study_run(tmp_path_factory):
    wd = tmp_path_factory.mktemp("study")
    snakemake(wd, "study")
    snakemake(wd, "study", "--report", str(wd / "report.html"))
    return wd


def test_leaderboard_holds_every_variant_and_fraction(study_run):
    tiny = yaml.safe_load(TINY.read_text())["study"]
    table = pd.read_parquet(study_run / "results/study/leaderboard.parquet")
    expected = {(v, f) for v, o in tiny["variants"].items() for f in o.get("fractions", tiny["fractions"])}
    assert set(zip(table["variant"], table["fraction"])) == expected and len(table) == len(expected)
    assert (table["params"] > 0).all() and (table["stamps_per_s"] > 0).all() and (table["train_seconds"] > 0).all()
    assert table["median_abs_rel"].between(0, 10).all()
    d = table[table["variant"] == "dense2"].set_index("fraction")["n_train"]
    assert d[1.0] == pytest.approx(2 * d[0.5], abs=1)
    for v, f in expected:  # the leaderboard repeats the per-model metrics, not something else
        m = json.loads((study_run / f"results/size/metrics/study/variant~{v}/fraction~{f}.json").read_text())
        row = table[(table["variant"] == v) & (table["fraction"] == f)].iloc[0]
        assert row["median_abs_rel"] == m["overall"]["median_abs_rel"] and row["params"] == m["params"]
    md = (study_run / "results/study/leaderboard.md").read_text()
    assert "| dense2 | 0.5 |" in md and "Classic baseline" in md and "cnn_gauss | all" in md
    comp = json.loads((study_run / "results/study/baseline/comparison.json").read_text())
    assert comp["n"] == tiny["baseline"]["n"] and comp["speedup"] > 0
    pred = pd.read_parquet(study_run / "results/size/predictions/study/variant~cnn_gauss/fraction~1.0.parquet")
    assert {"sigma_ln", "lo68", "hi68", "lo95", "hi95"} <= set(pred.columns)
    assert ((pred["lo68"] <= pred["pred"]) & (pred["pred"] <= pred["hi68"])).all()


def test_report_embeds_every_declared_figure(study_run):
    html = (study_run / "report.html").read_text()
    results = json.loads(re.search(r"var results = (\{.*?\});\n", html, re.S).group(1))
    declared = {p.relative_to(study_run).as_posix() for p in (study_run / "results").rglob("*.png")}
    tiny = yaml.safe_load(TINY.read_text())["study"]
    n_models = sum(len(v.get("fractions", tiny["fractions"])) for v in tiny["variants"].values())
    assert len(declared) == 4 * n_models + 2 + 1  # evaluate x4 per model, accuracy + baseline, 1 calibration
    assert declared == set(results)
    for path, entry in results.items():
        assert entry["data_uri"].startswith("data:image/png") and len(entry["data_uri"]) > 1000, path
        assert "System Message" not in entry["caption"] and "Config" in entry["caption"], path
