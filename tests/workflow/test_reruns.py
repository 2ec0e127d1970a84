"""Reproducible reruns and kill -9 recovery of the whole workflow (tests/configs/rerun.yaml).

* two runs in two fresh folders give identical manifests (every array, table, model and figure);
* kill -9 of snakemake and all its jobs during simulation, then rerun: completes, no partial shard
  is ever visible under its final name, results equal the uninterrupted run;
* kill -9 during training, then rerun: training resumes from its last epoch checkpoint and ends
  with the same model, history, metrics and plots as the uninterrupted run.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import snakerun
from deepsky import io, manifest

pytestmark = pytest.mark.workflow


def test_two_fresh_runs_have_identical_manifests(tmp_path, tmp_path_factory):
    ref = snakerun.reference_run(tmp_path_factory)
    snakerun.run(tmp_path, "manifest", configfiles=[snakerun.RERUN])
    a = manifest.read(ref / "results" / "manifest.tsv")
    b = manifest.read(tmp_path / "results" / "manifest.tsv")
    paths = set(a["path"])
    assert {"sims/size/shard0000.npz", "size/models/cnn.keras", "size/metrics/cnn.json",
            "size/plots/cnn/pred_vs_true.png", "size/predictions/cnn.parquet"} <= paths
    assert not any(p.startswith(("logs/", "benchmarks/")) for p in paths)
    diff = manifest.compare(a, b)
    assert diff.empty, diff.to_string()
    # the CLI agrees (exit 0 = identical)
    import subprocess

    cli = subprocess.run(["python", "-m", "deepsky.cli", "manifest", "--compare",
                          str(ref / "results" / "manifest.tsv"), str(tmp_path / "results" / "manifest.tsv")],
                         env=snakerun.env(), capture_output=True, text=True)
    assert cli.returncode == 0, cli.stdout + cli.stderr


def test_kill_during_simulation_then_rerun(tmp_path, tmp_path_factory):
    ref = snakerun.reference_run(tmp_path_factory)
    shards = [tmp_path / f"results/sims/size/shard{i:04d}.npz" for i in range(2)]
    logs = [tmp_path / f"results/logs/simulate/size/shard{i:04d}.log" for i in range(2)]
    proc = snakerun.start(tmp_path, "manifest")
    snakerun.wait_for(lambda: any(p.exists() for p in logs), proc, "a simulation job to start")
    snakerun.freeze_group(proc)
    present = [p.exists() for p in shards]
    snakerun.kill_group(proc)
    assert not all(present), "both shards were finished before the kill: the test did not kill a simulation"
    assert not snakerun.processes_mentioning(str(tmp_path)), "a job outlived kill -9 of its process group"
    # whatever is on disk under a final name is complete (atomic writes), never a truncated shard
    for npz in shards:
        if npz.exists():
            cat = pd.read_parquet(npz.with_suffix(".parquet"))
            assert io.read_npz(npz)["images"].shape[0] == len(cat) == 200
    # a killed snakemake leaves its lock, as it would for a user
    snakerun.run(tmp_path, "--unlock", configfiles=[snakerun.RERUN])
    snakerun.run(tmp_path, "manifest", configfiles=[snakerun.RERUN])
    snakerun.assert_same_results(ref, tmp_path)


def test_kill_during_training_resumes_from_checkpoint(tmp_path, tmp_path_factory):
    ref = snakerun.reference_run(tmp_path_factory)
    scratch = tmp_path / "results/.scratch/train/size/cnn"
    model = tmp_path / "results/size/models/cnn.keras"
    proc = snakerun.start(tmp_path, "manifest")
    # committed checkpoints are folders epoch-NNNNN/ (deepsky.learn.train.ResumableTraining)
    snakerun.wait_for(lambda: any(scratch.glob("epoch-*/state.json")), proc, "the first epoch checkpoint")
    snakerun.freeze_group(proc)
    state = json.loads(max(scratch.glob("epoch-*/state.json")).read_text())
    finished = model.exists()
    snakerun.kill_group(proc)
    assert not finished and state["epoch"] < 5, "training had finished before the kill"
    assert not snakerun.processes_mentioning(str(tmp_path)), "a job outlived kill -9 of its process group"
    snakerun.run(tmp_path, "--unlock", configfiles=[snakerun.RERUN])
    snakerun.run(tmp_path, "manifest", configfiles=[snakerun.RERUN])
    log = (tmp_path / "results/logs/train/size/cnn.log").read_text()
    assert "resuming from the checkpoint after epoch" in log, log[-2000:]
    resumed_at = int(log.split("resuming from the checkpoint after epoch")[1].split()[0])
    assert resumed_at >= state["epoch"] + 1
    assert not scratch.exists(), "the finished job should clear its checkpoint"
    # same model (weights + optimizer state digest), same history, metrics and figures
    snakerun.assert_same_results(ref, tmp_path)
    hist = pd.read_parquet(tmp_path / "results/size/models/cnn.history.parquet")
    assert list(hist["epoch"]) == [1, 2, 3, 4, 5, 6]
    assert np.isfinite(hist["val_loss"]).all()
