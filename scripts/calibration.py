"""Rule calibration: 68%/95% interval coverage of a Gaussian-head size model, overall and by S/N."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from deepsky import runlog  # noqa: E402

log = runlog.redirect(snakemake.log[0])
import pandas as pd  # noqa: E402

from deepsky import io, studyplots, uncertainty  # noqa: E402

pred = pd.read_parquet(snakemake.input.predictions)
if "sigma_ln" not in pred:
    raise ValueError(f"{snakemake.input.predictions} has no sigma_ln column: the variant needs head: gaussian")
calib = uncertainty.calibration(pred["true"], pred["pred"], pred["sigma_ln"], pred["snr"], snakemake.params.snr_edges)
io.write_json(snakemake.output.json, calib)
o = calib["overall"]
log.info(f"coverage: 68% -> {o['cov68']:.3f}, 95% -> {o['cov95']:.3f} on {o['count']} test galaxies")
w = snakemake.wildcards
studyplots.calibration(calib, snakemake.output.plot,
                       f"{w.variant} (train fraction {w.fraction}): in 68% {o['cov68']:.3f}, in 95% {o['cov95']:.3f}")
