"""Rule calibration: 68%/95% interval coverage of a Gaussian-head size model, overall and by S/N, as
the network gives it and after a per-S/N-bin recalibration fitted on the validation split."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from deepsky import runlog  # noqa: E402

log = runlog.redirect(snakemake.log[0])  # before TensorFlow is imported: its chatter goes there too

from deepsky import io  # noqa: E402
from deepsky.learn import inference, uncertainty  # noqa: E402
from deepsky.reports import studyplots  # noqa: E402

inp, edges = snakemake.input, snakemake.params.snr_edges
pred = io.read_parquet(inp.predictions)
if "sigma_ln" not in pred:
    raise ValueError(f"{inp.predictions} has no sigma_ln column: the variant needs head: gaussian")
# the validation split: never used to fit the weights (only to stop early), never the test split
_, _, _, _, val = inference.predict_split(inp.npz, inp.parquet, inp.split, inp.model, which="val")
recal = uncertainty.recalibration(val["true"], val["pred"], val["sigma_ln"], val["snr"], edges,
                                  uncertainty.curve_levels())
calib = uncertainty.calibration(pred["true"], pred["pred"], pred["sigma_ln"], pred["snr"], edges)
calib["recalibrated"] = uncertainty.calibration(pred["true"], pred["pred"], pred["sigma_ln"], pred["snr"], edges,
                                                recal=recal)
calib["recalibration"] = {**recal, "fitted_on": "validation split", "n_val": int(len(val))}
io.write_json(snakemake.output.json, calib)
o, r = calib["overall"], calib["recalibrated"]["overall"]
log.info(f"coverage on {o['count']} test galaxies: 68% -> {o['cov68']:.3f} (recalibrated {r['cov68']:.3f}), "
         f"95% -> {o['cov95']:.3f} ({r['cov95']:.3f}); recalibration fitted on {len(val)} validation galaxies")
for b, rb in zip(calib["by_snr"], calib["recalibrated"]["by_snr"]):
    log.info(f"  S/N {b['lo']:.0f}-{b['hi']:.0f}: 68% {b['cov68']:.3f} -> {rb['cov68']:.3f}, "
             f"95% {b['cov95']:.3f} -> {rb['cov95']:.3f} (n={b['count']})")
w = snakemake.wildcards
studyplots.calibration(calib, snakemake.output.plot,
                       f"{w.variant} (train fraction {w.fraction}): in 68% {o['cov68']:.3f} -> {r['cov68']:.3f} "
                       f"recalibrated, in 95% {o['cov95']:.3f} -> {r['cov95']:.3f}")
