"""Rule split: deterministic train/val/test assignment for every stamp of a task's dataset."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from deepsky import runlog  # noqa: E402

log = runlog.redirect(snakemake.log[0])  # before TensorFlow is imported: its chatter goes there too
import pandas as pd  # noqa: E402

from deepsky import io  # noqa: E402
from deepsky.learn import data  # noqa: E402

cat = pd.concat([io.read_parquet(p, columns=["id"]) for p in snakemake.input.parquet], ignore_index=True)
labels = data.split_labels(len(cat), snakemake.params.fractions, snakemake.params.seed)
table = pd.DataFrame({"id": cat["id"], "split": pd.Series(labels, dtype="string")})
io.write_parquet(snakemake.output[0], table)
log.info(table["split"].value_counts().to_string())
