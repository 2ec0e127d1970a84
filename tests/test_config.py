"""Config validation: bad values stop the run before any job, naming the key and the value."""

from __future__ import annotations

import copy

import pytest
import yaml

from conftest import ROOT, copy_workflow, run_snakemake, tiny_config


@pytest.fixture(scope="module")
def wf(tmp_path_factory):
    return copy_workflow(tmp_path_factory.mktemp("cfg"))


def dry_run_with(wf, tmp_path, mutate):
    cfg = copy.deepcopy(tiny_config())
    mutate(cfg)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return run_snakemake(wf, "-n", "--configfile", str(path), check=False)


@pytest.mark.parametrize(
    "mutate, key, value",
    [
        (lambda c: c["sims"]["size"]["r_e"].update(min=-0.2), "min", "-0.2"),
        (lambda c: c["size"].update(models=["cnn", "resnet999"]), "models", "resnet999"),
        (lambda c: c["sims"]["size"]["sersic_n"].update(max=7.5), "sersic_n", "7.5"),
        (lambda c: c["sims"]["size"]["sersic_n"].update(min=0.1), "sersic_n", "0.1"),
        (lambda c: c["sims"]["size"].update(stamp="big"), "stamp", "big"),
        (lambda c: c["train"].update(epochs=0), "epochs", "0"),
    ],
)
def test_bad_value_stops_before_any_job(wf, tmp_path, mutate, key, value):
    proc = dry_run_with(wf, tmp_path, mutate)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert key in out and value in out, out[-3000:]
    assert "Job stats" not in out and not (wf / "results").exists()


def test_defaults_are_filled(wf, tmp_path):
    proc = dry_run_with(wf, tmp_path, lambda c: c["train"].pop("patience"))
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_default_config_plans(wf):
    proc = run_snakemake(wf, "-n")
    assert "train" in proc.stdout and "simulate" in proc.stdout
