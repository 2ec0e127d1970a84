"""Rule candels_cutouts: one shard of F160W stamps at van der Wel+12 positions (deepsky shard format)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from deepsky import runlog  # noqa: E402

log = runlog.redirect(snakemake.log[0])
import pandas as pd  # noqa: E402

from deepsky import io  # noqa: E402
from deepsky.archives import candels  # noqa: E402

cfg, shard = snakemake.params.cfg, int(snakemake.wildcards.shard)
cat = candels.normalise_catalogue(pd.read_parquet(snakemake.input.catalogue), cfg["band"], cfg["keep_flags"],
                                  cfg["columns"])
log.info(f"{len(cat)} galaxies with flag in {cfg['keep_flags']} (band {cfg['band']})")
band = candels.open_mosaic(snakemake.input.mosaic, cfg["mosaic_hdu"])
images, table = candels.cutout_shard(band, cat, cfg, shard, candels.provenance(cfg, snakemake.input.mosaic),
                                     log=log.info)
io.write_shard(snakemake.output.npz, snakemake.output.parquet, images, table)
log.info(f"wrote {len(table)} stamps to {snakemake.output.npz}")
