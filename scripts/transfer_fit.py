"""Rule transfer_fit: one strategy on one label budget of the target domain, from the base size model."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from deepsky import runlog  # noqa: E402

log = runlog.redirect(snakemake.log[0])  # before TensorFlow is imported: its chatter goes there too
import numpy as np  # noqa: E402

from deepsky import io  # noqa: E402
from deepsky.learn import data, modelfile, train, transfer  # noqa: E402

p, wc = snakemake.params, snakemake.wildcards
strategy, budget = wc.strategy, int(wc.budget)
if (strategy == "zeroshot") != (budget == 0):
    raise ValueError(f"transfer: strategy {strategy!r} with budget {budget}: zeroshot takes budget 0 (n0), "
                     "the trained strategies a budget > 0")
images, cat = io.read_shards(snakemake.input.npz, snakemake.input.parquet)
split = io.read_parquet(snakemake.input.split)
cat = data.split_frame(cat, split).merge(split[["id", "pool_rank"]], on="id", validate="one_to_one")
train_idx = val_idx = np.array([], dtype=int)
if budget:
    train_idx, val_idx = transfer.budget_subsets(cat, budget, p.cfg["val_fraction"], p.seed)
    assert (cat["split"].to_numpy()[np.r_[train_idx, val_idx]] == "pool").all(), "budget touches the test set"
base, base_meta = modelfile.load_model(snakemake.input.base)
model, meta, history = transfer.fit_strategy(strategy, base, base_meta, images, cat, train_idx, val_idx, p.cfg,
                                             p.seed, p.scratch, log=log.info)
meta["base_model_file"] = str(snakemake.input.base)
modelfile.save_model(model, snakemake.output.model, meta)
io.write_parquet(snakemake.output.history, history)
train.clear_scratch(p.scratch)
log.info(f"saved {snakemake.output.model} ({strategy}, budget {budget})")
