"""Rule sdss_frames: every ugriz frame of every field holding an object, cached under resources/sdss/frames."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from deepsky import runlog  # noqa: E402

log = runlog.redirect(snakemake.log[0])
import pandas as pd  # noqa: E402

from deepsky import io  # noqa: E402
from deepsky.archives import net, sdss  # noqa: E402

cfg = snakemake.params.sdss
objects = pd.read_parquet(snakemake.input.objects)
manifest = sdss.fetch_frames(objects, snakemake.params.frames_dir, cfg["sas_url"], cfg["release"],
                             # retry settings are machinery: from config, not params (changing them reruns nothing)
                             net.Policy.from_config(snakemake.config["sdss"].get("http"), "sdss.http"),
                             progress=runlog.Progress(log, "fields"))
fetched = int(manifest["fetched"].sum())
log.info(f"{len(manifest)} frames ({manifest['bytes'].sum() / 1e6:.1f} MB): {fetched} fetched, "
         f"{len(manifest) - fetched} from the cache in {snakemake.params.frames_dir}")
# 'fetched' says what this run did, not what the frames are: keep it out of the (deterministic) manifest
io.write_parquet(snakemake.output.manifest, manifest.drop(columns="fetched"))
