"""Rule transfer_evaluate: score one transfer model on the held-out target test set."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from deepsky import runlog  # noqa: E402

log = runlog.redirect(snakemake.log[0])  # before TensorFlow is imported: its chatter goes there too

from deepsky import io  # noqa: E402
from deepsky.learn import inference  # noqa: E402
from deepsky.reports import plots, transfer_report  # noqa: E402

out = snakemake.output
images, cat, meta, pred, table = inference.predict_split(snakemake.input.npz, snakemake.input.parquet,
                                                     snakemake.input.split, snakemake.input.model)
io.write_parquet(out.predictions, table)

report = transfer_report.size_report(pred, cat)
report.update({k: meta[k] for k in ("strategy", "budget", "n_train", "n_val", "model", "params")},
              n_test=int(len(cat)), epochs_run=int(meta.get("epochs_run", 0)) if meta["strategy"] != "zeroshot" else 0,
              best_epoch=int(meta.get("best_epoch", 0)) if meta["strategy"] != "zeroshot" else 0)
io.write_json(out.metrics, report)
o = report["overall"]
log.info(f"{meta['strategy']} n={meta['budget']}: median|dR|/R={o['median_abs_rel']:.3f} bias={o['bias']:+.3f} "
         f"on {len(cat)} target test stamps")
has_snr = "snr" in table and table["snr"].notna().all() and (table["snr"] > 0).all()
colour, colour_label = (table["snr"], "S/N") if has_snr else (table["true"], "reference R_e [arcsec]")
plots.pred_vs_true(table["true"], table["pred"], colour, colour_label, out.pred_vs_true,
                   f"{meta['strategy']}, {meta['budget']} target labels: median |dR|/R = {o['median_abs_rel']:.3f}, "
                   f"bias = {o['bias']:+.3f}")
