"""Rules predict and predict_tile: `deepsky predict` on the files named under predict.<name> in config.

predict writes one Parquet file. predict_tile predicts one sky tile of the catalogue (its input
`tile`) into a partitioned dataset: parts are written to a hidden scratch folder (a killed job
resumes from them when snakemake reruns it) and moved to the declared output folder at the end.
"""
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from deepsky import runlog  # noqa: E402

log = runlog.redirect(snakemake.log[0])
from deepsky import predict  # noqa: E402
from deepsky.predict import tiles  # noqa: E402

job = snakemake.params.job
tile = snakemake.input.get("tile")
out = snakemake.output[0]
options = dict(
    images=job.get("images"), catalogue=tile or job.get("catalogue"), stamps=job.get("stamps"),
    stamps_pixel_scale=job.get("stamps_pixel_scale"), ra_col=job.get("ra_col"), dec_col=job.get("dec_col"),
    resample=job.get("resample", True), hdu=job.get("hdu"), blank=job.get("blank"), log=log.info,
    catalogue_format=None if tile else job.get("catalogue_format"), psf=job.get("psf"),
    psf_index_col=job.get("psf_index_col"), psf_fwhm=job.get("psf_fwhm"), psf_fwhm_col=job.get("psf_fwhm_col"),
    # the date is left out of the provenance (byte-identical results, as the manifest expects)
    # unless SOURCE_DATE_EPOCH fixes it
    date="now" if os.environ.get("SOURCE_DATE_EPOCH") else None, backend_log=log.info, keep_table=False,
)
if tile is None:
    predict.run(job["model"], out, **options)
elif predict.read_catalogue(tile).empty:
    tiles.empty_tile(out, {"model": Path(job["model"]).name})
    log.info(f"{tile}: no objects in this tile")
else:
    scratch = snakemake.params.scratch
    predict.run(job["model"], scratch, partitioned=True, **options)
    tiles.finish_tile(scratch, out)
