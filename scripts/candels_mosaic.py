"""Rule candels_mosaic: download the configured F160W mosaic once (temp name, renamed when complete)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from deepsky import runlog  # noqa: E402

log = runlog.redirect(snakemake.log[0])
from deepsky.archives import candels  # noqa: E402

p = snakemake.params
candels.download(p.url, snakemake.output[0], retries=p.retries, backoff_s=p.backoff_s, sha256=p.sha256,
                 log=log.info)
candels.open_mosaic(snakemake.output[0])  # fail here, not in every cutout job, if it is not an image with a WCS
