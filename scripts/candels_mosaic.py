"""Rule candels_mosaic: the configured F160W mosaic, downloaded once into a cache and linked as the output."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from deepsky import runlog  # noqa: E402

log = runlog.redirect(snakemake.log[0])
from deepsky.archives import candels, net  # noqa: E402

p = snakemake.params
# retry settings are machinery: read from config, not params, so changing them reruns nothing
policy = net.Policy.from_config(snakemake.config["candels"].get("http"), "candels.http")
candels.fetch_mosaic(p.url, snakemake.output[0], p.cache_dir, policy, sha256=p.sha256, log=log.info)
candels.open_mosaic(snakemake.output[0])  # fail here, not in every cutout job, if it is not an image with a WCS
