"""Transfer strategies: target split and budgets, freezing, summaries."""
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
from deepsky.learn import transfer  # noqa: E402
from deepsky.reports import transfer_report  # noqa: E402


def test_target_split_and_nested_budgets():
    ids = [f"t{i}" for i in range(300)]
    split = transfer.target_split(ids, 100, 150, seed=5)
    assert (split["split"] == "test").sum() == 100
    pool = split[split["split"] == "pool"]
    assert sorted(pool["pool_rank"]) == list(range(200))
    assert (split.loc[split["split"] == "test", "pool_rank"] == -1).all()
    assert split.equals(transfer.target_split(ids, 100, 150, seed=5))  # seeded
    assert not split.equals(transfer.target_split(ids, 100, 150, seed=6))
    test_rows = set(np.flatnonzero(split["split"].to_numpy() == "test"))
    seen = set()
    for budget in (20, 50, 150):
        tr, va = transfer.budget_subsets(split, budget, 0.2, seed=5)
        assert len(tr) + len(va) == budget and len(va) == round(0.2 * budget)
        assert not set(tr) & set(va)
        assert not (set(tr) | set(va)) & test_rows  # never the test set
        assert seen <= set(tr) | set(va)  # budgets are nested
        seen = set(tr) | set(va)
    with pytest.raises(ValueError, match="largest budget 250"):
        transfer.target_split(ids, 100, 250, seed=5)
    with pytest.raises(ValueError, match="budget 250 needs 250"):
        transfer.budget_subsets(split, 250, 0.2, seed=5)


def test_repeat_to_fills_an_epoch():
    idx = np.array([3, 7, 9])
    rep = transfer.repeat_to(idx, 10)
    assert len(rep) == 12 and set(rep) == {3, 7, 9}
    assert len(transfer.repeat_to(np.arange(50), 10)) == 50


def _tiny_base(tmp_path):
    """A tiny trained-looking base model and its metadata (untrained weights are fine here)."""
    from deepsky.learn import modelfile, models, train

    spec = {"layout": "fovea", "norm": "flux", "stretch": "asinh", "flux_scale": 20.0, "stamp": 16, "bands": 1,
            "pixel_scale": 0.06}
    train.configure_determinism(1)
    model = models.build("cnn", (8, 8, 2), 1, width=2)
    meta = {"task": "size", "model": "cnn", "label": "r_e_arcsec", "unit": "arcsec", "preprocess": spec,
            "target": {"kind": "log", "mean": -1.2, "std": 0.6}, "model_options": {"width": 2},
            "params": int(model.count_params()), "n_train": 10, "config_digest": "x", "epochs_run": 1, "best_epoch": 1}
    path = tmp_path / "base.keras"
    modelfile.save_model(model, path, meta)
    rng = np.random.default_rng(0)
    images = rng.gamma(2.0, 5.0, (40, 1, 16, 16)).astype(np.float32)
    cat = pd.DataFrame({"id": [f"s{i}" for i in range(40)], "r_e_arcsec": rng.uniform(0.1, 0.5, 40),
                        "pixel_scale": 0.06})
    return path, images, cat


CFG = {"train": {"epochs": 2, "batch_size": 8, "patience": 5, "schedule": "constant", "augment": True},
       "learning_rate": {"head": 0.05, "full": 0.05, "scratch": 0.05}, "min_epoch_samples": 16}


def _weights(model):
    import keras

    return {w.path: keras.ops.convert_to_numpy(w) for w in model.weights}


@pytest.mark.parametrize("strategy", ["head", "full"])
def test_head_only_freezes_the_base_and_full_does_not(tmp_path, strategy):
    from deepsky.learn import modelfile

    path, images, cat = _tiny_base(tmp_path)
    base, meta = modelfile.load_model(path)
    before = _weights(base)
    heads = {w.path for layer in base.layers if transfer.is_head(layer) for w in layer.weights}
    assert heads  # head_dense + head_out
    model, new_meta, history = transfer.fit_strategy(strategy, base, meta, images, cat, np.arange(30),
                                                     np.arange(30, 40), CFG, 3, tmp_path / "scratch",
                                                     log=lambda m: None)
    after = _weights(model)
    assert len(history) == 2 and new_meta["strategy"] == strategy and new_meta["budget"] == 40
    base_changed = [p for p in before if p not in heads and not np.array_equal(before[p], after[p])]
    head_changed = [p for p in heads if not np.array_equal(before[p], after[p])]
    assert head_changed  # the head was retrained
    if strategy == "head":
        assert base_changed == []  # the convolutional base is bit-for-bit the pre-trained one
        assert new_meta["trainable_params"] < new_meta["params"]
    else:
        assert base_changed  # full fine-tuning moves the base too


def test_scratch_reinitialises_and_zeroshot_is_the_base(tmp_path):
    from deepsky.learn import modelfile

    path, images, cat = _tiny_base(tmp_path)
    base, meta = modelfile.load_model(path)
    zs, zs_meta, hist = transfer.fit_strategy("zeroshot", base, meta, images, cat, np.array([], int),
                                              np.array([], int), CFG, 3, tmp_path / "s0")
    assert zs is base and zs_meta["budget"] == 0 and hist.empty
    fresh = transfer.prepare_model("scratch", modelfile.load_model(path)[0], meta)
    assert fresh.count_params() == base.count_params()
    assert any(not np.array_equal(a, b) for a, b in zip(_weights(base).values(), _weights(fresh).values()))
    with pytest.raises(ValueError, match="unknown transfer strategy"):
        transfer.prepare_model("linear_probe", base, meta)


def test_incompatible_target_is_refused(tmp_path):
    from deepsky.learn import modelfile

    path, images, cat = _tiny_base(tmp_path)
    base, meta = modelfile.load_model(path)
    with pytest.raises(ValueError, match="pixel scale"):
        transfer.fit_strategy("full", base, meta, images, cat.assign(pixel_scale=0.03), np.arange(30),
                              np.arange(30, 40), CFG, 3, tmp_path / "s1")
    with pytest.raises(ValueError, match="32x32"):
        transfer.check_compatible(meta, cat, np.zeros((40, 1, 32, 32), np.float32))


def _report(strategy, budget, med, bias=0.0):
    return {"strategy": strategy, "budget": budget, "n_train": int(budget * 0.8), "n_val": budget - int(budget * 0.8),
            "n_test": 100, "epochs_run": 3, "best_epoch": 2,
            "overall": {"median_abs_rel": med, "bias": bias, "nmad": 0.1, "outlier_frac": 0.1, "r2_log": 0.9}}


def test_summary_table_and_claims():
    reports = [_report("scratch", 100, 0.2), _report("full", 100, 0.08), _report("zeroshot", 0, 0.3, 0.2),
               _report("full", 50, 0.16), _report("scratch", 50, 0.25), _report("head", 50, 0.2),
               _report("full", 1000, 0.05), _report("scratch", 1000, 0.04)]
    table = transfer_report.summary_table(reports)
    assert list(table["strategy"]) == ["zeroshot", "head", "full", "full", "full", "scratch", "scratch", "scratch"]
    assert list(table.loc[table["strategy"] == "full", "budget"]) == [50, 100, 1000]
    checks = transfer_report.claims(table, 500)
    assert [c["budget"] for c in checks] == [50, 100]  # 1000 is above the claim budget
    assert checks[0]["halves_zeroshot"] is False and checks[0]["beats_scratch"] is True  # 0.16 > 0.15
    assert checks[1]["halves_zeroshot"] is True and checks[1]["beats_scratch"] is True
    md = transfer_report.markdown_table(table)
    assert md.count("\n") == len(table) + 2 and "| zeroshot | 0 |" in md
