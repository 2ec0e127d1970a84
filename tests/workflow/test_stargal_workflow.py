"""Workflow: the star/galaxy task end to end on the tiny config, and the sdss source's config check."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import yaml

import snakerun

REPO = snakerun.REPO
TINY = snakerun.TINY


def snakemake(workdir: Path, *args: str, configfile: Path = TINY) -> subprocess.CompletedProcess:
    return snakerun.run(workdir, *args, configfiles=(configfile,), check=False)


def test_tiny_stargal_run_to_metrics(tmp_path):
    target = "results/stargal/metrics/cnn.json"
    run = snakemake(tmp_path, target)
    assert run.returncode == 0, run.stderr[-4000:]
    rep = json.loads((tmp_path / target).read_text())
    assert rep["task"] == "stargal" and rep["model"] == "cnn"
    # tiny config: 2 shards x 150 stamps, 30% test
    assert rep["n_test"] == 90
    for part in ("overall", "faint"):
        for method in ("cnn", "baseline"):
            m = rep[part][method]
            assert {"auc", "star_purity", "star_completeness", "galaxy_purity", "galaxy_completeness"} <= set(m)
    assert 0.0 <= rep["overall"]["cnn"]["auc"] <= 1.0
    assert rep["overall"]["baseline"]["auc"] > 0.8  # the catalogue cut works on measured magnitudes
    assert rep["overall"]["cnn"]["count"] == rep["n_test"]
    assert 0.0 <= rep["overall"]["cnn"]["brier"] <= 1.0 and rep["overall"]["cnn"]["ece"] >= 0.0
    assert sum(r["count"] for r in rep["reliability"]) == rep["n_test"]
    for plot in ("roc", "purity_completeness", "reliability", "misclassified", "learning_curves"):
        assert (tmp_path / f"results/stargal/plots/cnn/{plot}.png").stat().st_size > 1000, plot
    # the shard catalogue carries the live path's columns, measured on the stamps
    import pandas as pd

    cat = pd.read_parquet(tmp_path / "results/sims/stargal/shard0000.parquet")
    assert {"objID", "psfMag_r", "cModelMag_r", "petroRad_r", "type", "class", "is_star"} <= set(cat.columns)
    # nothing is stale: a second dry run has nothing to do
    again = snakemake(tmp_path, target, "-n")
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr


def test_sdss_source_reads_the_live_cutout_shards(tmp_path):
    """stargal.source: sdss trains on results/sims/sdss/shard{i} for i < sdss.shards (made by sdss.smk)."""
    cfg = yaml.safe_load(TINY.read_text())
    cfg["stargal"]["source"] = "sdss"
    cfg["sdss"] = {"shards": 3}
    path = tmp_path / "sdss.yaml"
    path.write_text(yaml.safe_dump(cfg))
    run = snakemake(tmp_path, "results/stargal/metrics/cnn.json", "-n", configfile=path)
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-3000:]
    for i in range(3):
        assert f"results/sims/sdss/shard{i:04d}.npz" in out
    assert "results/sims/sdss/shard0003.npz" not in out
    assert "results/sims/stargal/" not in out  # the simulated stand-in is not touched
    assert "rule simulate:" not in out and "sdss_cutouts" in out


def test_default_and_tiny_dry_runs_include_stargal(tmp_path):
    for cfg in (REPO / "config" / "config.yaml", TINY):
        run = snakemake(tmp_path, "-n", configfile=cfg)
        assert run.returncode == 0, run.stderr[-3000:]
        out = run.stdout + run.stderr
        assert "results/stargal/metrics/cnn.json" in out and "evaluate_stargal" in out
