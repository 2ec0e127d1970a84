"""Fault injection: configurations that pass a per-value schema but mean nothing (issue 16, item 2).

Inverted ranges, integers written as floats, PSF profiles without their keys, stamps the layout
cannot use, tasks on data without their label, columns that do not exist, duplicate YAML keys,
unphysical pixel scales and plans too big to run stop before any job, each with the key and value.
The semantic checks (deepsky.configcheck) are tested on their own first, then through snakemake.
"""

from __future__ import annotations

import copy

import jsonschema
import numpy as np
import pytest
import yaml
from snakemake.utils import validate

import snakerun
from deepsky import configcheck, sims

SCHEMA_PATH = snakerun.REPO / "workflow" / "schemas" / "config.schema.yaml"
SCHEMA = yaml.safe_load(SCHEMA_PATH.read_text())


def filled(cfg: dict) -> dict:
    cfg = copy.deepcopy(cfg)
    validate(cfg, str(SCHEMA_PATH), set_default=True)
    return cfg


def tiny() -> dict:
    return yaml.safe_load(snakerun.TINY.read_text())


def problems_after(mutate) -> list[str]:
    cfg = tiny()
    mutate(cfg)
    return configcheck.problems(filled(cfg), SCHEMA)


@pytest.mark.parametrize("config", sorted(snakerun.CONFIGS.glob("*.yaml")) + [snakerun.REPO / "config/config.yaml"],
                         ids=lambda p: p.name)
def test_shipped_configs_have_no_problems(config):
    assert configcheck.problems(filled(yaml.safe_load(config.read_text())), SCHEMA) == []


def _set(path, value):
    def mutate(cfg):
        d = cfg
        for k in path[:-1]:
            d = d.setdefault(k, {})
        d[path[-1]] = value
    return mutate


@pytest.mark.parametrize("mutate, expected", [
    # inverted or empty ranges
    (_set(["sims", "size", "sersic_n"], {"min": 4.0, "max": 1.0}), "sims.size.sersic_n.min: 4.0 is not below"),
    (_set(["sims", "size", "r_e"], {"min": 0.3, "max": 0.3}), "sims.size.r_e.min: 0.3 is not below"),
    (_set(["stargal", "mag_bins"], {"min": 22.5, "max": 15.0, "width": 0.5}), "stargal.mag_bins.min: 22.5"),
    (_set(["stargal", "mag_bins"], {"min": 15.0, "max": 16.0, "width": 2.0}), "stargal.mag_bins.width: 2.0"),
    (_set(["sdss", "cuts", "mag_min"], 22.0), "sdss.cuts.mag_min: 22.0 is not below sdss.cuts.mag_max: 21.0"),
    (_set(["sims", "stargal", "seeing"], {"median": 3.0, "min": 0.9, "max": 2.2}), "sims.stargal.seeing.median: 3.0"),
    # integers written as floats (JSON Schema calls 7.0 an integer)
    (_set(["seed"], 7.0), "seed: 7.0 is not an integer (write 7)"),
    (_set(["sims", "size", "shards"], 2.0), "sims.size.shards: 2.0 is not an integer"),
    (_set(["train", "epochs"], 3.0), "train.epochs: 3.0 is not an integer"),
    # stamps the layout needs
    (_set(["sims", "size", "stamp"], 30), "sims.size.stamp: 30 is not divisible by 4"),
    # task / data compatibility, catalogue columns
    (_set(["stargal", "dataset"], "size"),
     "stargal.dataset: sims.size is a sersic recipe, whose catalogue has no 'is_star'"),
    (_set(["size", "dataset"], "stargal"),
     "size.dataset: sims.stargal is a stargal recipe, whose catalogue has no 'r_e_arcsec'"),
    (_set(["stargal", "preprocess"], {"psf_column": "seeing_fwhm"}), "stargal.preprocess.psf_column: 'seeing_fwhm'"),
    # physical bounds: the galaxy must fit in the stamp
    (_set(["sims", "size", "r_e"], {"min": 0.1, "max": 5.0}), "sims.size.r_e.max: 5.0 arcsec does not fit"),
    (_set(["sims", "size", "pixel_scale"], 0.001), "sims.size.r_e.max: 0.4 arcsec does not fit"),
])
def test_semantic_problem_names_key_and_value(mutate, expected):
    found = problems_after(mutate)
    assert any(expected in p for p in found), found


def test_transfer_target_must_match_the_size_model():
    cfg = filled(yaml.safe_load((snakerun.CONFIGS / "transfer_tiny.yaml").read_text()))
    assert configcheck.transfer_problems(cfg) == []
    cfg["sims"]["hst_target"]["stamp"] = 48
    cfg["transfer"]["budgets"] = [20, 60]
    assert configcheck.transfer_problems(cfg) == [
        "sims.hst_target.stamp: 48 differs from the size model's 32 (transfer.base_model is applied to the "
        "target's stamps as they are)",
        "transfer.test_size + the largest budget: 100 but sims.hst_target simulates 80 stamps"]
    assert configcheck.problems(cfg, SCHEMA) == []  # a run without transfer jobs is not stopped


def test_every_problem_is_reported_at_once():
    def mutate(cfg):
        cfg["seed"] = 7.0
        cfg["sims"]["size"]["sersic_n"] = {"min": 4.0, "max": 1.0}
        cfg["sims"]["size"]["stamp"] = 30
    assert len(problems_after(mutate)) == 3


@pytest.mark.parametrize("psf, missing", [
    ({"profile": "gaussian"}, "fwhm"),
    ({"profile": "moffat", "beta": 3.0}, "fwhm"),
    ({"fwhm": 0.2, "profile": "airy"}, "lam_nm"),
    ({"profile": "airy", "lam_nm": 1500.0}, "diam_m"),
])
def test_psf_profile_needs_its_keys(psf, missing):
    cfg = tiny()
    cfg["sims"]["size"]["psf"] = psf
    with pytest.raises(Exception, match=missing):
        validate(cfg, str(SCHEMA_PATH), set_default=True)


@pytest.mark.parametrize("psf", [{"profile": "kolmogorov", "fwhm": 0.3},
                                 {"profile": "airy", "lam_nm": 1545.0, "diam_m": 2.4}])
def test_complete_psf_profiles_pass(psf):
    cfg = tiny()
    cfg["sims"]["size"]["psf"] = psf
    assert configcheck.problems(filled(cfg), SCHEMA) == []


def test_pixel_scale_has_a_physical_lower_bound():
    cfg = tiny()
    cfg["sims"]["size"]["pixel_scale"] = 1e-6
    with pytest.raises(jsonschema.ValidationError, match="1e-06"):
        jsonschema.validate(cfg, SCHEMA)


def test_plan_estimate_and_cap():
    p = configcheck.plan(filled(tiny()))
    assert p["stamps"] == 2 * 120 + 2 * 150
    assert p["bytes"] == 240 * (32 * 32 * 4 + 400) + 300 * (5 * 32 * 32 * 4 + 400)
    assert "540 stamps" in configcheck.describe_plan(p)

    def huge(cfg):
        cfg["sims"]["size"].update(shards=100000, per_shard=10000, stamp=64)  # 10^9 stamps
    found = problems_after(huge)
    assert len(found) == 1 and found[0].startswith("plan size: 1,000,000,300 stamps, ~16.8 TB"), found
    assert "limits.max_stamps" in found[0]

    def huge_on_purpose(cfg):
        huge(cfg)
        cfg["limits"] = {"max_stamps": 2 * 10**9, "max_disk_gb": 20000}
    assert problems_after(huge_on_purpose) == []


def test_duplicate_keys_named_with_lines(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("seed: 1\nsims:\n  size:\n    kind: sersic\n    shards: 2\n    shards: 3\n"
                    "base: &b {epochs: 2}\ntrain:\n  <<: *b\n  epochs: 3\nlist:\n  - {a: 1, a: 2}\nseed: 2\n")
    found = configcheck.duplicate_keys(path)
    assert found == [f"{path}:6: duplicate key sims.size.shards (first at line 5); YAML would keep only the last value",
                     f"{path}:12: duplicate key list[0].a (first at line 12); YAML would keep only the last value",
                     f"{path}:13: duplicate key seed (first at line 1); YAML would keep only the last value"]
    with pytest.raises(configcheck.ConfigError, match="sims.size.shards"):
        configcheck.check_files([path])


@pytest.mark.parametrize("kind, recipe", [
    ("sersic", {"psf": {"profile": "moffat", "fwhm": 0.18}, "sersic_n": {"min": 0.5, "max": 4.0},
                "r_e": {"min": 0.1, "max": 0.4}}),
    ("hst_bulge_disk", {"neighbours": {"prob": 1.0, "max": 2, "sep_px": {"min": 6, "max": 8}}}),
    ("stargal", {"per_field": 2}),
])
def test_declared_catalogue_columns_are_the_real_ones(kind, recipe):
    """configcheck.RECIPES describes each kind's catalogue without simulating: check it against a shard."""
    cfg = filled({"seed": 1, "size": {}, "sims": {"d": {"kind": kind, "shards": 1, "per_shard": 3, "stamp": 24,
                                                        **recipe}}})
    images, cat = sims.simulate_shard(cfg["sims"]["d"], 1, "d", 0)
    known = configcheck.RECIPES[kind]
    assert images.shape[1] == known["bands"]
    assert all(configcheck._matches(c, known["columns"]) for c in cat.columns), [
        c for c in cat.columns if not configcheck._matches(c, known["columns"])]
    literal = [c for c in known["columns"] if c.replace("_", "").isalnum()]
    assert set(literal) <= set(cat.columns) and set(known["labels"]) <= set(cat.columns)
    assert np.isfinite(images).all()


# --------------------------------------------------------------------------- through snakemake
@pytest.fixture(scope="module")
def wf(tmp_path_factory):
    return tmp_path_factory.mktemp("cfg")


def dry_run(wf, tmp_path, text: str):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return snakerun.run(wf, "-n", configfiles=(path,), check=False)


@pytest.mark.workflow
@pytest.mark.parametrize("edit, says", [
    (lambda t: t.replace("sersic_n: {min: 0.5, max: 4.0, step: 0.1}", "sersic_n: {min: 4.0, max: 0.5}"),
     "sims.size.sersic_n.min: 4.0 is not below sims.size.sersic_n.max: 0.5"),
    (lambda t: t.replace("seed: 7", "seed: 7.0"), "seed: 7.0 is not an integer"),
    (lambda t: t.replace("    shards: 2\n    per_shard: 120", "    shards: 2\n    shards: 3\n    per_shard: 120"),
     "duplicate key sims.size.shards"),
    (lambda t: t.replace("psf: {profile: moffat, fwhm: 0.18, beta: 2.5}", "psf: {profile: airy}"), "lam_nm"),
    (lambda t: t.replace("    shards: 2\n    per_shard: 120", "    shards: 5000\n    per_shard: 200000"),
     "plan size: 1,000,000,300 stamps"),
])
def test_bad_config_stops_before_any_job(wf, tmp_path, edit, says):
    text = snakerun.TINY.read_text()
    bad = edit(text)
    assert bad != text
    proc = dry_run(wf, tmp_path, bad)
    out = snakerun.output(proc)
    assert proc.returncode != 0 and says in out, out[-3000:]
    assert "Job stats" not in out and not (wf / "results").exists()


@pytest.mark.workflow
def test_transfer_mismatch_stops_a_transfer_dry_run_only(wf, tmp_path):
    text = (snakerun.CONFIGS / "transfer_tiny.yaml").read_text()
    bad = text.replace("    per_shard: 80\n    stamp: 32", "    per_shard: 80\n    stamp: 48")
    assert bad != text
    path = tmp_path / "t.yaml"
    path.write_text(bad)
    proc = snakerun.run(wf, "-n", "transfer", configfiles=(path,), check=False)
    out = snakerun.output(proc)
    assert proc.returncode != 0 and "sims.hst_target.stamp: 48 differs from the size model's 32" in out, out[-3000:]
    assert "Job stats" not in out
    assert snakerun.run(wf, "-n", configfiles=(path,), check=False).returncode == 0  # no transfer asked for


@pytest.mark.workflow
def test_dry_run_prints_the_plan_and_a_raised_cap_lets_it_run(wf, tmp_path):
    proc = dry_run(wf, tmp_path, snakerun.TINY.read_text())
    assert proc.returncode == 0
    assert "deepsky plan: 540 stamps in 2 dataset(s)" in snakerun.output(proc)
    big = snakerun.TINY.read_text().replace("    shards: 2\n    per_shard: 120",
                                            "    shards: 600\n    per_shard: 200000")
    proc = dry_run(wf, tmp_path, big + "limits: {max_stamps: 200000000, max_disk_gb: 100000}\n")
    assert proc.returncode == 0, snakerun.output(proc)[-3000:]
    assert snakerun.planned_jobs(proc)["simulate"] == 602
