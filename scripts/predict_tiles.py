"""Rule predict_split: the catalogue of predict.<name> cut into sky tiles, one Parquet file each."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from deepsky import runlog  # noqa: E402

log = runlog.redirect(snakemake.log[0])
from deepsky.predict import tiles  # noqa: E402

job = snakemake.params.job
counts = tiles.split(snakemake.input.catalogue, list(snakemake.output), ra_col=job.get("ra_col"),
                     dec_col=job.get("dec_col"), catalogue_format=job.get("catalogue_format"))
log.info(f"{sum(counts)} objects in {len(counts)} tiles: {counts}")
