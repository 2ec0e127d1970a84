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
def leaderboard(entries: list[dict]) -> pd.DataFrame:
    """One row per (variant, fraction) from the evaluate/train outputs.

    Each entry: ``variant``, ``fraction``, ``arch``, ``options`` (str), ``metrics`` (evaluate's JSON),
    ``train_timing`` / ``eval_timing`` (the timing JSONs under results/benchmarks/).
    Sorted by fraction (descending) then test median |dR|/R (ascending).
    """
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
            "stamps_per_s": float(e["eval_timing"]["stamps_per_s"]),
        })
    table = pd.DataFrame(rows)
    return table.sort_values(["fraction", "median_abs_rel"], ascending=[False, True], kind="stable").reset_index(drop=True)


def comparison(baseline: dict, cnn_pred: pd.DataFrame, fits: pd.DataFrame, cnn_timing: dict, variant: str) -> dict:
    """Sersic fit vs a CNN on the *same* test galaxies: accuracy and CPU time per galaxy, and the ratio."""
    from . import metrics

    ok = fits["success"].to_numpy(bool)
    sub = cnn_pred.set_index("id").loc[fits["id"]]
    cnn_all = metrics.size_metrics(sub["true"].to_numpy(), sub["pred"].to_numpy())
    cnn_ok = metrics.size_metrics(sub["true"].to_numpy()[ok], sub["pred"].to_numpy()[ok])
    cnn_s = float(cnn_timing["seconds_per_stamp"])
    return {"variant": variant, "n": int(len(fits)), "fit": baseline,
            "cnn_median_abs_rel_all": cnn_all["median_abs_rel"],
            "cnn_median_abs_rel_on_fit_successes": cnn_ok["median_abs_rel"],
            "cnn_seconds_per_galaxy": cnn_s,
            "speedup": float(baseline["seconds_per_galaxy"] / max(cnn_s, 1e-12))}


def _fmt(v, spec):
    return "n/a" if v is None or (isinstance(v, float) and not np.isfinite(v)) else format(v, spec)


def markdown(table: pd.DataFrame, comp: dict | None, calib: dict[str, dict], config_note: str) -> str:
    """The readable leaderboard: models, then the classic baseline, then the uncertainty calibration."""
    lines = ["# deepsky model study: leaderboard", "", config_note, "",
             "Test-split metrics (median |dR_e|/R_e: lower is better). Training time and inference "
             "rate are wall-clock on the machine that ran the jobs.", "",
             "| variant | train frac | n_train | arch | options | params | median abs rel | R2(log) | NMAD | "
             "bias | outliers >20% | med abs rel S/N>20 | epochs (best) | train s | infer stamps/s |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in table.itertuples():
        lines.append(f"| {r.variant} | {r.fraction:g} | {r.n_train} | {r.arch} | {r.options} | {r.params:,} | "
                     f"{_fmt(r.median_abs_rel, '.4f')} | {_fmt(r.r2_log, '.4f')} | {_fmt(r.nmad, '.4f')} | "
                     f"{_fmt(r.bias, '+.4f')} | {_fmt(r.outlier_frac, '.3f')} | {_fmt(r.median_abs_rel_snr_gt_20, '.4f')} | "
                     f"{r.epochs_run} ({r.best_epoch}) | {r.train_seconds:.1f} | {r.stamps_per_s:,.0f} |")
    if comp:
        f = comp["fit"]
        lines += ["", "## Classic baseline: PSF-convolved Sersic least-squares fit vs CNN", "",
                  f"Same {comp['n']} test galaxies, same CPU. CNN: `{comp['variant']}` (full training set).", "",
                  "| method | median abs rel (all) | median abs rel (fit successes) | failures | s / galaxy |",
                  "|---|---|---|---|---|",
                  f"| Sersic fit | {_fmt(f['median_abs_rel_all'], '.4f')} | {_fmt(f['median_abs_rel'], '.4f')} | "
                  f"{f['failures']} / {f['count']} | {f['seconds_per_galaxy']:.3g} |",
                  f"| CNN | {_fmt(comp['cnn_median_abs_rel_all'], '.4f')} | "
                  f"{_fmt(comp['cnn_median_abs_rel_on_fit_successes'], '.4f')} | 0 / {comp['n']} | "
                  f"{comp['cnn_seconds_per_galaxy']:.3g} |", "",
                  f"CNN speed-up over the fit: **{comp['speedup']:,.0f}x** per galaxy on this CPU."]
    if calib:
        lines += ["", "## Uncertainty calibration (Gaussian heads)", "",
                  "Fraction of test galaxies whose true R_e lies in the predicted central interval "
                  "(target 0.68 and 0.95, within +-0.03).", "",
                  "| variant | S/N bin | count | in 68% | in 95% | median sigma(ln R_e) |", "|---|---|---|---|---|---|"]
        for name, c in calib.items():
            o = c["overall"]
            lines.append(f"| {name} | all | {o['count']} | {o['cov68']:.3f} | {o['cov95']:.3f} | {o['median_sigma_ln']:.3f} |")
            for b in c["by_snr"]:
                lines.append(f"| {name} | {b['lo']:.0f}-{b['hi']:.0f} | {b['count']} | {_fmt(b['cov68'], '.3f')} | "
                             f"{_fmt(b['cov95'], '.3f')} | {_fmt(b['median_sigma_ln'], '.3f')} |")
    return "\n".join(lines) + "\n"


def config_note(study_cfg: dict, train_cfg: dict, seed: int) -> str:
    """One line naming the config that made the study (for captions and the markdown)."""
    return (f"Config: seed {seed}, train {json.dumps(train_cfg, sort_keys=True)}, "
            f"study overrides {json.dumps(study_cfg.get('train', {}), sort_keys=True)}, "
            f"fractions {study_cfg['fractions']}.")
