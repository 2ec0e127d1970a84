"""The workflow end to end on the tiny config, and 'only stale stages rerun'."""

from __future__ import annotations

import contextlib
import json
import os

import pandas as pd
import pytest
import yaml

import snakerun
from snakerun import planned_jobs


def run(wf, *args, configfiles=(snakerun.TINY,)):
    """snakemake on the copy ``wf`` of the workflow (tests edit its library modules)."""
    return snakerun.run(wf, *args, configfiles=configfiles, snakefile=wf / "workflow" / "Snakefile")


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    wf = snakerun.copy_workflow(tmp_path_factory.mktemp("wf"))
    run(wf)
    return wf


@contextlib.contextmanager
def edited(lib):
    """Append a comment to a library file; put back its text and mtime afterwards."""
    before, st = lib.read_text(), lib.stat()
    try:
        lib.write_text(before + "\n# edited\n")
        yield
    finally:
        lib.write_text(before)
        os.utime(lib, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_run_writes_metrics_model_and_plots(finished):
    res = finished / "results" / "size"
    m = json.loads((res / "metrics" / "cnn.json").read_text())
    for key in ("r2_log", "median_abs_rel", "nmad", "bias", "outlier_frac", "count"):
        assert key in m["overall"]
    assert set(m["binned"]) == {"snr", "sersic_n", "r_e_arcsec"}
    split = pd.read_parquet(res / "split.parquet")
    assert m["overall"]["count"] == (split["split"] == "test").sum() == m["n_test"] > 0
    meta = json.loads((res / "models" / "cnn.json").read_text())
    assert meta["preprocess"]["pixel_scale"] == 0.06 and meta["preprocess"]["stamp"] == 32
    for plot in ("pred_vs_true", "residuals", "learning_curves", "gallery"):
        assert (res / "plots" / "cnn" / f"{plot}.png").stat().st_size > 5000
    pred = pd.read_parquet(res / "predictions" / "cnn.parquet")
    assert (pred["split"] == "test").all() and (pred["pred"] > 0).all()
    assert not (finished / "results" / ".scratch" / "train" / "size" / "cnn").exists()


def test_second_run_does_nothing(finished):
    proc = run(finished, "-n")
    assert planned_jobs(proc) == {}
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_editing_training_module_reruns_training_and_evaluation_only(finished):
    with edited(finished / "scripts" / "deepsky" / "learn" / "train.py"):
        jobs = planned_jobs(run(finished, "-n"))
    # both tasks of the tiny config (size, stargal) train; nothing is simulated again
    assert jobs == {"train": 2, "evaluate": 1, "evaluate_stargal": 1, "all": 1}


def test_editing_a_module_imported_only_inside_a_function_reruns_its_users(finished):
    # learn/uncertainty.py is imported inside inference.predict_task: evaluation runs it, training too
    # (train -> inference); the simulations never import it
    with edited(finished / "scripts" / "deepsky" / "learn" / "uncertainty.py"):
        jobs = planned_jobs(run(finished, "-n"))
    assert jobs == {"train": 2, "evaluate": 1, "evaluate_stargal": 1, "all": 1}


def test_editing_one_recipe_reruns_only_its_own_simulations(finished):
    with edited(finished / "scripts" / "deepsky" / "sims" / "stargal.py"):
        jobs = planned_jobs(run(finished, "-n"))
    # the two stargal shards and everything after them; the size shards and models stay
    assert jobs == {"simulate": 2, "split": 1, "train": 1, "evaluate_stargal": 1, "all": 1}


def test_editing_a_report_module_reruns_only_reports(finished):
    with edited(finished / "scripts" / "deepsky" / "reports" / "plots.py"):
        jobs = planned_jobs(run(finished, "-n"))
    assert jobs == {"evaluate": 1, "evaluate_stargal": 1, "all": 1}


def test_changing_a_simulation_parameter_reruns_everything_after_it(finished, tmp_path):
    cfg = yaml.safe_load(snakerun.TINY.read_text())
    cfg["sims"]["size"]["sky"] = 120.0
    path = tmp_path / "changed.yaml"
    path.write_text(yaml.safe_dump(cfg))
    jobs = planned_jobs(run(finished, "-n", configfiles=(path,)))
    assert jobs == {"simulate": 2, "split": 1, "train": 1, "evaluate": 1, "all": 1}


def test_changing_a_training_parameter_keeps_the_simulations(finished, tmp_path):
    cfg = yaml.safe_load(snakerun.TINY.read_text())
    cfg["train"]["batch_size"] = 16
    path = tmp_path / "changed.yaml"
    path.write_text(yaml.safe_dump(cfg))
    jobs = planned_jobs(run(finished, "-n", configfiles=(path,)))
    assert jobs == {"train": 2, "evaluate": 1, "evaluate_stargal": 1, "all": 1}  # size and stargal
