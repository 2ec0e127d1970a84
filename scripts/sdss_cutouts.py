"""Rule sdss_cutouts: one shard of ugriz stamps (nanomaggies) cut from the cached SDSS frames."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from deepsky import runlog  # noqa: E402

log = runlog.redirect(snakemake.log[0])
import pandas as pd  # noqa: E402

from deepsky import io  # noqa: E402
from deepsky.archives import sdss  # noqa: E402

cfg = snakemake.params.sdss
shard = int(snakemake.wildcards.shard)
objects = sdss.assign_shards(pd.read_parquet(snakemake.input.objects), cfg["shards"])[shard]
log.info(f"shard {shard}: {len(objects)} objects, {cfg['stamp']}x{cfg['stamp']} px at {cfg['pixel_scale']}\"/px")
images, cat, report = sdss.cut_shard(objects, snakemake.params.frames_dir, cfg["stamp"], cfg["pixel_scale"],
                                     cfg["release"], shard, progress=runlog.Progress(log, "fields"))
log.info(f"shard {shard}: kept {report.kept} of {report.objects}; dropped {report.dropped_edge} at frame "
         f"edges and {report.dropped_bad_pixels} with bad pixels ({report.fields} fields)")
io.write_shard(snakemake.output.npz, snakemake.output.parquet, images, cat)
io.write_json(snakemake.output.report, {"shard": shard, **report.as_dict()})
