"""Rule evaluate: score a trained model on the held-out test split; metrics JSON, predictions, plots."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from deepsky import runlog  # noqa: E402

log = runlog.redirect(snakemake.log[0])  # before TensorFlow is imported: its chatter goes there too
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from deepsky import data, io, plots, tasks, train  # noqa: E402

out = snakemake.output
images, cat = io.read_shards(snakemake.input.npz, snakemake.input.parquet)
cat = data.split_frame(cat, pd.read_parquet(snakemake.input.split))
test = (cat["split"] == "test").to_numpy()
images, cat = images[test], cat[test].reset_index(drop=True)
model, meta = train.load_model(snakemake.input.model)
pred = tasks.predict_task(model, meta, images)
seconds = pred.attrs["seconds"]
table = pd.concat([cat, pred], axis=1).assign(true=cat[meta["label"]])
io.write_parquet(out.predictions, table)

report = tasks.size_report(pred, cat)
report.update(task=meta["task"], model=meta["model"], params=meta["params"], n_test=int(len(cat)),
              best_epoch=meta["best_epoch"], epochs_run=meta["epochs_run"], n_train=meta["n_train"])
io.write_json(out.metrics, report)
io.write_json(out.timing, {"inference_seconds": seconds, "stamps_per_s": len(cat) / max(seconds, 1e-9),
                           "seconds_per_stamp": seconds / max(len(cat), 1)})
o = report["overall"]
log.info(f"{meta['model']}: R2(log)={o['r2_log']:.3f} median|dR|/R={o['median_abs_rel']:.3f} "
         f"(S/N>20: {report['snr_gt_20']['median_abs_rel']:.3f}) on {len(cat)} test stamps")

name = f"{meta['task']} / {meta['model']}"
plots.pred_vs_true(table["true"], table["pred"], table["snr"], "S/N", out.pred_vs_true,
                   f"{name}: median |dR|/R = {o['median_abs_rel']:.3f}, R2(log) = {o['r2_log']:.3f}")
plots.residuals(table, {"snr": ("S/N", True), "sersic_n": ("Sersic n", False),
                        "r_e_arcsec": ("true R_e [arcsec]", True)}, out.residuals, name)
plots.learning_curves(pd.read_parquet(snakemake.input.history), out.learning_curves, name)
rng = np.random.default_rng(snakemake.params.seed)
pick = np.sort(rng.choice(len(cat), size=min(24, len(cat)), replace=False))
captions = [f"true {t:.2f}\" pred {p:.2f}\"\nS/N {s:.0f} n {n:.1f}" for t, p, s, n in
            zip(table["true"][pick], table["pred"][pick], table["snr"][pick], table["sersic_n"][pick])]
plots.gallery(images[pick, 0], captions, out.gallery, f"{name}: random test stamps")
