"""Rule simulate: one shard of a simulation recipe -> NPZ images + Parquet catalogue."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from deepsky import runlog  # noqa: E402

log = runlog.redirect(snakemake.log[0])  # before TensorFlow is imported: its chatter goes there too
from deepsky import io, sims  # noqa: E402

dataset, shard = snakemake.wildcards.dataset, int(snakemake.wildcards.shard)
log.info(f"simulating {dataset} shard {shard} with seed {snakemake.params.seed}")
images, cat = sims.simulate_shard(snakemake.params.recipe, snakemake.params.seed, dataset, shard,
                                  progress=runlog.Progress(log, f"{dataset}/{shard:04d} stamps"))
io.write_shard(snakemake.output.npz, snakemake.output.parquet, images, cat)
log.info(f"wrote {len(cat)} stamps to {snakemake.output.npz}")
