"""Rule predict: `deepsky predict` on the files named under predict.<name> in config."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from deepsky import runlog  # noqa: E402

log = runlog.redirect(snakemake.log[0])
from deepsky import predict  # noqa: E402

job = snakemake.params.job
predict.run(job["model"], snakemake.output[0], images=job.get("images"), catalogue=job.get("catalogue"),
            stamps=job.get("stamps"), stamps_pixel_scale=job.get("stamps_pixel_scale"), ra_col=job.get("ra_col"),
            dec_col=job.get("dec_col"), resample=job.get("resample", True), log=log.info)
