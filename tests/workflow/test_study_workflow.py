"""Workflow tests of the model study on the tiny config: Paramspace expansion, the leaderboard, the
Snakemake HTML report (every declared figure embedded, every caption renders)."""
import json
import re

import numpy as np
import pandas as pd
import pytest
import yaml

import snakerun

REPO = snakerun.REPO
TINY = snakerun.TINY


def snakemake(workdir, *args, configfiles=(TINY,), check=True):
    return snakerun.run(workdir, *args, configfiles=configfiles, check=check, timeout=1800)


def test_adding_a_variant_row_adds_its_jobs(tmp_path):
    base = snakerun.planned_jobs(snakemake(tmp_path, "-n", "study"))
    tiny = yaml.safe_load(TINY.read_text())
    extra = tmp_path / "extra.yaml"
    extra.write_text(yaml.safe_dump({"study": {"variants": {"cnn_new": {"arch": "cnn", "dropout": 0.2}}}}))
    more = snakerun.planned_jobs(snakemake(tmp_path, "-n", "study", configfiles=(TINY, extra)))
    n_fractions = len(tiny["study"]["fractions"])
    assert more["train"] == base["train"] + n_fractions
    assert more["evaluate"] == base["evaluate"] + n_fractions
    # one row per variant x fraction (cnn_gauss runs at one fraction only)
    # plus the star/galaxy models, whose probability calibration the study reports
    per_variant = [len(v.get("fractions", tiny["study"]["fractions"])) for v in tiny["study"]["variants"].values()]
    assert base["train"] == sum(per_variant) + len(tiny["stargal"]["models"])
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
    sg = json.loads((study_run / "results/stargal/metrics/cnn.json").read_text())["overall"]
    assert (f"| cnn | {sg['cnn']['auc']:.4f} | {sg['cnn']['brier']:.4f} | {sg['cnn']['ece']:.4f} | "
            f"{sg['baseline']['auc']:.4f} |") in md.split("## Star/galaxy probability calibration")[1]
    speed = pd.read_parquet(study_run / "results/benchmarks/study/speed.parquet").set_index("model")
    names = {f"study/variant~{v}/fraction~{f}" for v, f in expected}
    assert set(speed.index) == names and (speed["threads"] == 1).all() and (speed["seconds_per_galaxy"] > 0).all()
    for r in table.itertuples():  # the leaderboard's rate is the single-thread end-to-end timing
        assert r.stamps_per_s == speed.loc[f"study/variant~{r.variant}/fraction~{r.fraction}", "stamps_per_s"]


def test_sersic_fit_is_compared_with_every_variant_on_the_same_galaxies(study_run):
    tiny = yaml.safe_load(TINY.read_text())["study"]
    comp = json.loads((study_run / "results/study/baseline/comparison.json").read_text())
    fit = json.loads((study_run / "results/study/baseline/sersic.json").read_text())
    fits = pd.read_parquet(study_run / "results/study/baseline/sersic_fits.parquet")
    speed = pd.read_parquet(study_run / "results/benchmarks/study/speed.parquet").set_index("model")
    assert comp["n"] == tiny["baseline"]["n"] == len(fits) and comp["fit"] == fit
    assert {r["variant"] for r in comp["models"]} == set(tiny["variants"])
    assert comp["compare"]["variant"] == tiny["baseline"]["compare"]
    for r in comp["models"]:
        assert r["model"].endswith("fraction~1.0")
        assert r["speedup"] == pytest.approx(fit["seconds_per_galaxy"] / speed.loc[r["model"], "seconds_per_galaxy"])
        pred = pd.read_parquet(study_run / f"results/size/predictions/{r['model']}.parquet").set_index("id")
        sub = pred.loc[fits["id"]]
        assert r["median_abs_rel_all"] == pytest.approx(np.median(np.abs(sub["pred"] / sub["true"] - 1)))
        fit_best = min(fit["median_abs_rel"], fit["median_abs_rel_all"])
        assert r["at_least_as_accurate"] == (r["median_abs_rel_all"] <= fit_best)
    good = [r for r in comp["models"] if r["at_least_as_accurate"]]
    fastest = max(good, key=lambda r: r["speedup"]) if good else None
    assert comp["fastest_at_least_as_accurate"] == fastest


def test_calibration_is_recalibrated_on_the_validation_split(study_run):
    cal = json.loads((study_run / "results/study/calibration/cnn_gauss/fraction~1.0.json").read_text())
    split = pd.read_parquet(study_run / "results/size/split.parquet")
    n_val = int((split["split"] == "val").sum())
    rc = cal["recalibration"]
    assert rc["n_val"] == n_val == sum(rc["count"]) and rc["fitted_on"] == "validation split"
    # re-apply the stored multipliers to the test predictions: the reported coverage is theirs
    pred = pd.read_parquet(study_run / "results/size/predictions/study/variant~cnn_gauss/fraction~1.0.parquet")
    z = np.abs(np.log(pred["true"] / pred["pred"])) / pred["sigma_ln"]
    b = np.clip(np.searchsorted(rc["snr_edges"], pred["snr"], side="right") - 1, 0, len(rc["snr_edges"]) - 2)
    for level in (0.68, 0.95):
        k = np.asarray(rc["multiplier"])[b, rc["levels"].index(level)]
        key = f"cov{round(level * 100)}"
        assert cal["recalibrated"]["overall"][key] == pytest.approx(np.mean(z <= k))
        assert cal["overall"][key] == pytest.approx(np.mean(z <= rc["gaussian"][rc["levels"].index(level)]))
    pred = pd.read_parquet(study_run / "results/size/predictions/study/variant~cnn_gauss/fraction~1.0.parquet")
    assert {"sigma_ln", "lo68", "hi68", "lo95", "hi95"} <= set(pred.columns)
    assert ((pred["lo68"] <= pred["pred"]) & (pred["pred"] <= pred["hi68"])).all()


def test_report_embeds_every_declared_figure(study_run):
    html = (study_run / "report.html").read_text()
    results = json.loads(re.search(r"var results = (\{.*?\});\n", html, re.S).group(1))
    declared = {p.relative_to(study_run).as_posix() for p in (study_run / "results").rglob("*.png")}
    tiny = yaml.safe_load(TINY.read_text())["study"]
    n_models = sum(len(v.get("fractions", tiny["fractions"])) for v in tiny["variants"].values())
    assert len(declared) == 4 * n_models + 2 + 1 + 5  # evaluate x4 per model, accuracy + baseline, 1 calibration,
    # and the star/galaxy model's five figures (roc, purity/completeness, reliability, misclassified, learning curves)
    assert declared == set(results)
    for path, entry in results.items():
        assert entry["data_uri"].startswith("data:image/png") and len(entry["data_uri"]) > 1000, path
        assert "System Message" not in entry["caption"] and "Config" in entry["caption"], path


@pytest.mark.parametrize("caption", sorted((REPO / "workflow" / "report").glob("*.rst")), ids=lambda p: p.name)
def test_every_report_caption_renders_without_docutils_errors(caption):
    """A stray |...| pair is an undefined rst substitution: the report shows an error box instead of the
    caption. Render each caption as snakemake does (Jinja, then docutils) and demand a clean result."""
    import io
    from types import SimpleNamespace

    import docutils.core
    import jinja2
    from snakemake.utils import validate

    class Value(jinja2.ChainableUndefined):  # wildcards.x and the like render as a word
        def __str__(self):
            return "value"

    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    validate(config, str(REPO / "workflow" / "schemas" / "config.schema.yaml"))  # fills the defaults
    env = jinja2.Environment(undefined=Value)
    smk = SimpleNamespace(config=config, wildcards=Value(), params=Value(), input=Value(), output=Value())
    text = env.from_string(caption.read_text()).render(snakemake=smk)
    errors = io.StringIO()
    docutils.core.publish_parts(text, writer_name="html", settings_overrides={"warning_stream": errors})
    assert errors.getvalue() == "", errors.getvalue()
    if caption.name != "workflow.rst":  # the workflow description; every other file captions a figure
        assert "Config" in text and "seed" in text, f"{caption.name} does not say which config made the figure"
