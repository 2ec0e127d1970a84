"""Model study: the variants table, how a variant resolves to a model + training config, leaderboard.

A *variant* is one row of ``config['study']['variants']`` (name -> ``arch`` plus options).  Keys:

* ``arch``: a registry model (``models.REGISTRY``);
* model options ``width``, ``batchnorm``, ``dropout``, ``head`` (``point`` | ``gaussian``), merged
  over ``config['models'][arch]``;
* training overrides ``augment``, ``schedule``, ``learning_rate``, ``epochs``, ``patience``,
  ``batch_size``, merged over ``config['train']`` and ``config['study']['train']``;
* ``fractions``: training-set fractions for this variant (default: ``study.fractions``).

Each (variant, fraction) pair is one model named ``study/variant~<name>/fraction~<f>`` (the
Paramspace pattern), trained and evaluated by the ordinary train/evaluate rules.
No snakemake and no keras import here.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd

MODEL_KEYS = ("width", "batchnorm", "dropout", "head")
TRAIN_KEYS = ("augment", "schedule", "learning_rate", "epochs", "patience", "batch_size")
PREFIX = "study/"
NAME_RE = re.compile(r"^study/variant~(?P<variant>[A-Za-z0-9_]+)/fraction~(?P<fraction>[0-9.]+)$")


def variant_frame(study_cfg: dict) -> pd.DataFrame:
    """The (variant, fraction) table the study expands over, in config order (one row per model)."""
    rows = []
    for name, v in study_cfg["variants"].items():
        for f in v.get("fractions", study_cfg["fractions"]):
            rows.append({"variant": name, "fraction": float(f)})
    if not rows:
        raise ValueError("study.variants is empty: nothing to study")
    return pd.DataFrame(rows, columns=["variant", "fraction"]).astype({"variant": str, "fraction": float})


def parse_model_name(name: str) -> tuple[str, float] | None:
    """``study/variant~X/fraction~F`` -> (X, F); None for plain registry names."""
    m = NAME_RE.match(name)
    return (m["variant"], float(m["fraction"])) if m else None


def resolve(name: str, config: dict) -> tuple[str, dict, dict]:
    """Model name -> (registry architecture, model options, training config).

    Plain registry names resolve as before: (name, config['models'][name], config['train']).
    Study names take the variant's architecture, options and training overrides, plus the
    training-set ``fraction``.  Unknown variants raise a ValueError naming the known ones.
    """
    parsed = parse_model_name(name)
    if parsed is None:
        return name, dict(config.get("models", {}).get(name, {})), dict(config["train"])
    variant, fraction = parsed
    study = config["study"]
    try:
        v = study["variants"][variant]
    except KeyError:
        raise ValueError(f"study.variants has no variant {variant!r} (known: {sorted(study['variants'])})") from None
    arch = v["arch"]
    opts = {**config.get("models", {}).get(arch, {}), **{k: v[k] for k in MODEL_KEYS if k in v}}
    train = {**config["train"], **study.get("train", {}), **{k: v[k] for k in TRAIN_KEYS if k in v},
             "fraction": float(fraction)}
    return arch, opts, train


def describe(variant: dict) -> str:
    """Short text of a variant's non-default settings (for the leaderboard)."""
    bits = [f"{k}={variant[k]}" for k in (*MODEL_KEYS, *TRAIN_KEYS) if k in variant]
    return ", ".join(bits) or "registry defaults"


# --------------------------------------------------------------------------- leaderboard
def leaderboard(entries: list[dict], speed: pd.DataFrame) -> pd.DataFrame:
    """One row per (variant, fraction) from the evaluate/train outputs.

    Each entry: ``variant``, ``fraction``, ``arch``, ``options`` (str), ``metrics`` (evaluate's JSON),
    ``train_timing`` (the training timing JSON under results/benchmarks/); ``speed`` is the
    ``study_speed`` table (per-galaxy CPU time of every model on the fit's thread budget).
    Sorted by fraction (descending) then test median |dR|/R (ascending).
    """
    rate = speed.set_index("model")["stamps_per_s"]
    rows = []
    for e in entries:
        m, o = e["metrics"], e["metrics"]["overall"]
        rows.append({
            "variant": e["variant"], "fraction": float(e["fraction"]), "arch": e["arch"],
            "options": e["options"], "n_train": int(m["n_train"]), "params": int(m["params"]),
            "median_abs_rel": o["median_abs_rel"], "r2_log": o["r2_log"], "nmad": o["nmad"],
            "bias": o["bias"], "outlier_frac": o["outlier_frac"],
            "median_abs_rel_snr_gt_20": m["snr_gt_20"]["median_abs_rel"],
            "n_test": int(m["n_test"]), "epochs_run": int(m["epochs_run"]), "best_epoch": int(m["best_epoch"]),
            "train_seconds": float(e["train_timing"]["train_seconds"]),
            "stamps_per_s": float(rate[model_name(e["variant"], e["fraction"])]),
        })
    table = pd.DataFrame(rows)
    table = table.sort_values(["fraction", "median_abs_rel"], ascending=[False, True], kind="stable")
    return table.reset_index(drop=True)


def model_name(variant: str, fraction: float) -> str:
    """The Paramspace model name of a (variant, fraction) pair (fractions written as Python floats)."""
    return f"{PREFIX}variant~{variant}/fraction~{float(fraction)}"


def comparison(baseline: dict, fits: pd.DataFrame, preds: dict[str, pd.DataFrame], speed: pd.DataFrame,
               compare: str) -> dict:
    """Sersic fit vs each model in ``preds`` (model name -> its test predictions) on the *same* test
    galaxies: accuracy, CPU seconds per galaxy on the same thread budget (``speed``), the speed-up.

    A model counts as ``at_least_as_accurate`` when its median |dR_e|/R_e over *all* fitted galaxies
    is no worse than the fit's, counting the fit's failures or not (whichever flatters the fit).
    Headlines: the ``compare`` variant, the most accurate model and the fastest model that is at
    least as accurate as the fit (None when no model is).
    """
    from . import metrics

    ok = fits["success"].to_numpy(bool)
    fit_best = min(baseline["median_abs_rel"], baseline["median_abs_rel_all"])
    per = speed.set_index("model")
    rows = []
    for name, pred in preds.items():
        sub = pred.set_index("id").loc[fits["id"]]
        t, p = sub["true"].to_numpy(), sub["pred"].to_numpy()
        acc = metrics.size_metrics(t, p)["median_abs_rel"]
        sec = float(per.loc[name, "seconds_per_galaxy"])
        variant, fraction = parse_model_name(name)
        rows.append({"variant": variant, "fraction": fraction, "model": name,
                     "median_abs_rel_all": acc,
                     "median_abs_rel_on_fit_successes": metrics.size_metrics(t[ok], p[ok])["median_abs_rel"],
                     "seconds_per_galaxy": sec, "threads": int(per.loc[name, "threads"]),
                     "speedup": float(baseline["seconds_per_galaxy"] / max(sec, 1e-12)),
                     "at_least_as_accurate": bool(acc <= fit_best)})
    if not rows:
        raise ValueError("no models to compare the Sersic fit with")
    rows.sort(key=lambda r: -r["speedup"])
    by_variant = {r["variant"]: r for r in rows}
    if compare not in by_variant:
        raise ValueError(f"study.baseline.compare: {compare!r} is not among the compared variants {sorted(by_variant)}")
    good = [r for r in rows if r["at_least_as_accurate"]]
    return {"n": int(len(fits)), "fit": baseline, "models": rows, "compare": by_variant[compare],
            "most_accurate": min(rows, key=lambda r: r["median_abs_rel_all"]),
            "fastest_at_least_as_accurate": good[0] if good else None}


def _fmt(v, spec):
    return "n/a" if v is None or (isinstance(v, float) and not np.isfinite(v)) else format(v, spec)


def markdown(table: pd.DataFrame, comp: dict | None, calib: dict[str, dict], config_note: str,
             stargal: dict[str, dict] | None = None) -> str:
    """The readable leaderboard: models, then the classic baseline, then the uncertainty calibration
    (size Gaussian heads, and the star/galaxy probabilities of ``stargal``: model -> metrics JSON)."""
    lines = ["# deepsky model study: leaderboard", "", config_note, "",
             "Test-split metrics (median |dR_e|/R_e: lower is better). Training time is wall-clock on the "
             "machine that ran the jobs; the inference rate is end to end from raw stamps on the "
             "Sersic fit's thread budget (`study_speed`, see the baseline section).", "",
             "| variant | train frac | n_train | arch | options | params | median abs rel | R2(log) | NMAD | "
             "bias | outliers >20% | med abs rel S/N>20 | epochs (best) | train s | infer stamps/s |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in table.itertuples():
        lines.append(f"| {r.variant} | {r.fraction:g} | {r.n_train} | {r.arch} | {r.options} | {r.params:,} | "
                     f"{_fmt(r.median_abs_rel, '.4f')} | {_fmt(r.r2_log, '.4f')} | {_fmt(r.nmad, '.4f')} | "
                     f"{_fmt(r.bias, '+.4f')} | {_fmt(r.outlier_frac, '.3f')} | "
                     f"{_fmt(r.median_abs_rel_snr_gt_20, '.4f')} | "
                     f"{r.epochs_run} ({r.best_epoch}) | {r.train_seconds:.1f} | {r.stamps_per_s:,.0f} |")
    if comp:
        f = comp["fit"]
        lines += ["", "## Classic baseline: PSF-convolved Sersic least-squares fit vs CNNs", "",
                  f"Same {comp['n']} test galaxies, same CPU and thread budget ({comp['compare']['threads']} "
                  "thread(s)); model time is end to end from raw stamps (preprocessing, network, decoding), "
                  "the median of repeated passes after a warm-up; fit time is the whole fit of each galaxy.", "",
                  "| method | median abs rel (all) | median abs rel (fit successes) | failures | s / galaxy | "
                  "speed-up | as accurate as the fit |",
                  "|---|---|---|---|---|---|---|",
                  f"| Sersic fit | {_fmt(f['median_abs_rel_all'], '.4f')} | {_fmt(f['median_abs_rel'], '.4f')} | "
                  f"{f['failures']} / {f['count']} | {f['seconds_per_galaxy']:.3g} | 1 | - |"]
        for r in comp["models"]:
            lines.append(f"| {r['variant']} | {_fmt(r['median_abs_rel_all'], '.4f')} | "
                         f"{_fmt(r['median_abs_rel_on_fit_successes'], '.4f')} | 0 / {comp['n']} | "
                         f"{r['seconds_per_galaxy']:.3g} | {r['speedup']:,.0f}x | "
                         f"{'yes' if r['at_least_as_accurate'] else 'no'} |")
        best, fast = comp["most_accurate"], comp["fastest_at_least_as_accurate"]
        lines += ["", f"Most accurate model `{best['variant']}`: **{best['speedup']:,.0f}x** faster than the fit."]
        lines.append(f"Fastest model at least as accurate as the fit `{fast['variant']}`: **{fast['speedup']:,.0f}x**."
                     if fast else "No model is as accurate as the fit on these galaxies.")
    if calib:
        lines += ["", "## Uncertainty calibration (Gaussian heads)", "",
                  "Fraction of test galaxies whose true R_e lies in the predicted central interval "
                  "(target 0.68 and 0.95, within +-0.03): as the network gives it, and recalibrated "
                  "(interval multipliers per S/N bin fitted on the validation split, split conformal).", "",
                  "| variant | S/N bin | count | in 68% | in 95% | median sigma(ln R_e) | "
                  "in 68% recal. | in 95% recal. | median sigma recal. |", "|---|---|---|---|---|---|---|---|---|"]
        for name, c in calib.items():
            rc = c.get("recalibrated", {"overall": {}, "by_snr": [{}] * len(c["by_snr"])})
            for label, b, r in [("all", c["overall"], rc["overall"]),
                                *[(f"{b['lo']:.0f}-{b['hi']:.0f}", b, r) for b, r in zip(c["by_snr"], rc["by_snr"])]]:
                lines.append(f"| {name} | {label} | {b['count']} | {_fmt(b['cov68'], '.3f')} | "
                             f"{_fmt(b['cov95'], '.3f')} | {_fmt(b['median_sigma_ln'], '.3f')} | "
                             f"{_fmt(r.get('cov68'), '.3f')} | {_fmt(r.get('cov95'), '.3f')} | "
                             f"{_fmt(r.get('median_sigma_ln'), '.3f')} |")
    if stargal:
        lines += ["", "## Star/galaxy probability calibration", "",
                  "Test split of the star/galaxy task; reliability diagrams in "
                  "`results/stargal/plots/<model>/reliability.png`. Brier score and expected calibration "
                  "error (ECE): lower is better.", "",
                  "| model | AUC | Brier | ECE | catalogue baseline AUC |", "|---|---|---|---|---|"]
        for name, m in stargal.items():
            o = m["overall"]
            net = o["cnn"]  # the network, whatever its architecture, is stored under "cnn" beside "baseline"
            lines.append(f"| {name} | {_fmt(net['auc'], '.4f')} | {_fmt(net['brier'], '.4f')} | "
                         f"{_fmt(net['ece'], '.4f')} | {_fmt(o['baseline']['auc'], '.4f')} |")
    return "\n".join(lines) + "\n"


def config_note(study_cfg: dict, train_cfg: dict, seed: int) -> str:
    """One line naming the config that made the study (for captions and the markdown)."""
    return (f"Config: seed {seed}, train {json.dumps(train_cfg, sort_keys=True)}, "
            f"study overrides {json.dumps(study_cfg.get('train', {}), sort_keys=True)}, "
            f"fractions {study_cfg['fractions']}.")
