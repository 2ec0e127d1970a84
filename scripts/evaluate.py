"""Rule evaluate: score a trained model on the held-out test split; metrics JSON, predictions, plots."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from deepsky import runlog  # noqa: E402

log = runlog.redirect(snakemake.log[0])  # before TensorFlow is imported: its chatter goes there too

from deepsky import io  # noqa: E402
from deepsky.learn import inference  # noqa: E402
from deepsky.reports import evaluation  # noqa: E402

out = snakemake.output
images, cat, meta, pred, table = inference.predict_split(snakemake.input.npz, snakemake.input.parquet,
                                                     snakemake.input.split, snakemake.input.model)
seconds = pred.attrs["seconds"]
io.write_parquet(out.predictions, table)

task = evaluation.get_report(meta["task"])  # metrics and figures differ by task
report = task.report(pred, cat, snakemake.params)
report.update(task=meta["task"], model=meta["model"], params=meta["params"], n_test=int(len(cat)),
              best_epoch=meta["best_epoch"], epochs_run=meta["epochs_run"], n_train=meta["n_train"])
io.write_json(out.metrics, report)
io.write_json(out.timing, {"inference_seconds": seconds, "stamps_per_s": len(cat) / max(seconds, 1e-9),
                           "seconds_per_stamp": seconds / max(len(cat), 1)})
log.info(f"{meta['model']}: {task.summary(report)} on {len(cat)} test stamps")

name = f"{meta['task']} / {meta['model']}"
task.figures(table, images, report, io.read_parquet(snakemake.input.history), out, name, snakemake.params.seed,
             snakemake.params)
