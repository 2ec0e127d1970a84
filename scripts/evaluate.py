"""Rule evaluate: score a trained model on the held-out test split; metrics JSON, predictions, plots."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from deepsky import runlog  # noqa: E402

log = runlog.redirect(snakemake.log[0])  # before TensorFlow is imported: its chatter goes there too
import pandas as pd  # noqa: E402

from deepsky import data, evaluation, io, tasks, train  # noqa: E402

out = snakemake.output
images, cat = io.read_shards(snakemake.input.npz, snakemake.input.parquet)
cat = data.split_frame(cat, pd.read_parquet(snakemake.input.split))
test = (cat["split"] == "test").to_numpy()
images, cat = images[test], cat[test].reset_index(drop=True)
model, meta = train.load_model(snakemake.input.model)
pred = tasks.predict_task(model, meta, images, cat)
seconds = pred.attrs["seconds"]
table = pd.concat([cat, pred], axis=1).assign(true=cat[meta["label"]])
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
task.figures(table, images, report, pd.read_parquet(snakemake.input.history), out, name, snakemake.params.seed,
             snakemake.params)
