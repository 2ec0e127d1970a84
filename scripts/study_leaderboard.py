"""Rule study_leaderboard: gather every study model's test metrics and timings, the Sersic baseline
and the calibration into results/study/leaderboard.{parquet,md} and the study figures."""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from deepsky import runlog  # noqa: E402

log = runlog.redirect(snakemake.log[0])
import pandas as pd  # noqa: E402

from deepsky import io, study, studyplots  # noqa: E402

inp, out, p = snakemake.input, snakemake.output, snakemake.params


def load(path):
    return json.loads(Path(path).read_text())


entries = [{**e, "metrics": load(m), "train_timing": load(t), "eval_timing": load(v)}
           for e, m, t, v in zip(p.entries, inp.metrics, inp.train_timing, inp.eval_timing, strict=True)]
table = study.leaderboard(entries)
io.write_parquet(out.parquet, table)

fits = pd.read_parquet(inp.fits)
cnn_pred = pd.read_parquet(inp.cnn_predictions)
comp = study.comparison(load(inp.baseline), cnn_pred, fits, load(inp.cnn_timing), p.compare)
io.write_json(out.comparison, comp)
calib = {name: load(path) for name, path in zip(p.calibration_names, inp.calibration, strict=True)}
with io.atomic_path(out.md) as tmp:
    tmp.write_text(study.markdown(table, comp, calib, p.note))
log.info("\n" + table[["variant", "fraction", "n_train", "params", "median_abs_rel", "r2_log"]].to_string())

studyplots.accuracy_vs_size(table, out.accuracy, "model study: accuracy vs training-set size")
studyplots.baseline(fits, cnn_pred, out.baseline,
                    f"Sersic fit ({comp['fit']['seconds_per_galaxy']:.2g} s/galaxy) vs {p.compare} "
                    f"({comp['cnn_seconds_per_galaxy']:.2g} s/galaxy): {comp['speedup']:,.0f}x")
