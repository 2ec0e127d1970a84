"""Rule study_leaderboard: gather every study model's test metrics and timings, the Sersic baseline
and the calibration into results/study/leaderboard.{parquet,md} and the study figures."""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from deepsky import runlog  # noqa: E402

log = runlog.redirect(snakemake.log[0])

from deepsky import io  # noqa: E402
from deepsky.reports import study, studyplots  # noqa: E402

inp, out, p = snakemake.input, snakemake.output, snakemake.params


def load(path):
    return json.loads(Path(path).read_text())


speed = io.read_parquet(inp.speed)
entries = [{**e, "metrics": load(m), "train_timing": load(t)}
           for e, m, t in zip(p.entries, inp.metrics, inp.train_timing, strict=True)]
table = study.leaderboard(entries, speed)
io.write_parquet(out.parquet, table)

fits = io.read_parquet(inp.fits)
preds = {name: io.read_parquet(path) for name, path in zip(p.compared, inp.compared, strict=True)}
comp = study.comparison(load(inp.baseline), fits, preds, speed, p.compare)
io.write_json(out.comparison, comp)
calib = {name: load(path) for name, path in zip(p.calibration_names, inp.calibration, strict=True)}
with io.atomic_path(out.md) as tmp:
    tmp.write_text(study.markdown(table, comp, calib, p.note,
                                  {name: load(path) for name, path in zip(p.stargal_models, inp.stargal, strict=True)}))
log.info("\n" + table[["variant", "fraction", "n_train", "params", "median_abs_rel", "r2_log"]].to_string())
fast = comp["fastest_at_least_as_accurate"]
log.info(f"Sersic fit {comp['fit']['median_abs_rel_all']:.4f} at {comp['fit']['seconds_per_galaxy']:.3g} s/galaxy; "
         + (f"fastest model as accurate: {fast['variant']} {fast['median_abs_rel_all']:.4f}, {fast['speedup']:,.0f}x"
            if fast else "no model as accurate"))

studyplots.accuracy_vs_size(table, out.accuracy, "model study: accuracy vs training-set size")
best = comp["most_accurate"]
studyplots.baseline(fits, preds[comp["compare"]["model"]], comp, out.baseline,
                    f"Sersic fit ({comp['fit']['seconds_per_galaxy']:.2g} s/galaxy) vs CNNs on the same "
                    f"{comp['n']} galaxies: most accurate {best['variant']} {best['speedup']:,.0f}x faster"
                    + (f", fastest as accurate {fast['variant']} {fast['speedup']:,.0f}x" if fast else ""))
