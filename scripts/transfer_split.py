"""Rule transfer_split: held-out target test set + ranked labelled pool (nested label budgets)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from deepsky import runlog  # noqa: E402

log = runlog.redirect(snakemake.log[0])
import pandas as pd  # noqa: E402

from deepsky import io  # noqa: E402
from deepsky.learn import transfer  # noqa: E402

p = snakemake.params
ids = pd.concat([io.read_parquet(f, columns=["id"]) for f in snakemake.input.parquet], ignore_index=True)["id"]
table = transfer.target_split(ids, p.test_size, seed=p.seed)
io.write_parquet(snakemake.output[0], table)
log.info(table["split"].value_counts().to_string())
