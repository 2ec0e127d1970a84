"""Rule train: fit one registry model on a task's training split; save .keras + metadata + history."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from deepsky import runlog  # noqa: E402

log = runlog.redirect(snakemake.log[0])  # before TensorFlow is imported: its chatter goes there too

from deepsky import io  # noqa: E402
from deepsky.learn import modelfile, tasks, train  # noqa: E402

p = snakemake.params
images, cat = io.read_shards(snakemake.input.npz, snakemake.input.parquet)
spec = tasks.preprocess_spec(p.task_cfg, p.recipe, images.shape[1])
model, meta, history, timing = train.train_task(
    snakemake.wildcards.task, images, cat, io.read_parquet(snakemake.input.split), spec,
    p.model_name, p.model_opts, p.train_cfg, p.seed, p.scratch, log=log.info,
)
modelfile.save_model(model, snakemake.output.model, meta)
io.write_parquet(snakemake.output.history, history)
io.write_json(snakemake.output.timing, timing)
train.clear_scratch(p.scratch)
log.info(f"saved {snakemake.output.model} (best epoch {meta['best_epoch']} of {meta['epochs_run']})")
