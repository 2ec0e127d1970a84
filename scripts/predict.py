"""Rule predict: `deepsky predict` on the files named under predict.<name> in config."""
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from deepsky import runlog  # noqa: E402

log = runlog.redirect(snakemake.log[0])
from deepsky import predict  # noqa: E402

job = snakemake.params.job
# the date is left out of the provenance (byte-identical results, as the manifest expects) unless
# SOURCE_DATE_EPOCH fixes it
predict.run(job["model"], snakemake.output[0], images=job.get("images"), catalogue=job.get("catalogue"),
            stamps=job.get("stamps"), stamps_pixel_scale=job.get("stamps_pixel_scale"), ra_col=job.get("ra_col"),
            dec_col=job.get("dec_col"), resample=job.get("resample", True), hdu=job.get("hdu"),
            blank=job.get("blank"), log=log.info, catalogue_format=job.get("catalogue_format"),
            psf=job.get("psf"), psf_index_col=job.get("psf_index_col"), psf_fwhm=job.get("psf_fwhm"),
            psf_fwhm_col=job.get("psf_fwhm_col"), date="now" if os.environ.get("SOURCE_DATE_EPOCH") else None,
            backend_log=log.info, keep_table=False)
