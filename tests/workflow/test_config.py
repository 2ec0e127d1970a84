"""Config validation: bad values stop the run before any job, naming the key and the value."""

from __future__ import annotations

import pytest
import yaml

import snakerun


@pytest.fixture(scope="module")
def wf(tmp_path_factory):
    return tmp_path_factory.mktemp("cfg")


def test_default_config_plans(tmp_path):
    # the Snakefile's configfile: config/config.yaml is read from the working directory
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text((snakerun.REPO / "config" / "config.yaml").read_text())
    proc = snakerun.run(tmp_path, "-n")
    assert "train" in proc.stdout and "simulate" in proc.stdout


def dry_run_with(wf, tmp_path, mutate):
    cfg = yaml.safe_load(snakerun.TINY.read_text())
    mutate(cfg)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return snakerun.run(wf, "-n", configfiles=(path,), check=False)


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
