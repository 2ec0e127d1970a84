"""Rule sersic_baseline: PSF-convolved Sersic least-squares fits on a seeded subset of the test split."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from deepsky import runlog  # noqa: E402

log = runlog.redirect(snakemake.log[0])
import numpy as np  # noqa: E402

from deepsky import io  # noqa: E402
from deepsky.learn import data  # noqa: E402
from deepsky.reports import baselines  # noqa: E402

p = snakemake.params
images, cat = io.read_shards(snakemake.input.npz, snakemake.input.parquet)
cat = data.split_frame(cat, io.read_parquet(snakemake.input.split))
test = np.flatnonzero((cat["split"] == "test").to_numpy())
rng = np.random.default_rng(np.random.SeedSequence([p.seed, 0x5E25]))
pick = np.sort(rng.choice(test, size=min(int(p.n), test.size), replace=False))
log.info(f"fitting {pick.size} of {test.size} test stamps (max {p.max_nfev} model evaluations each)")
fits = baselines.fit_catalogue(images[pick], cat.iloc[pick].reset_index(drop=True), p.recipe, int(p.max_nfev),
                               progress=runlog.Progress(log, "Sersic fits"))
summary = baselines.summary(fits)
io.write_parquet(snakemake.output.fits, fits)
io.write_json(snakemake.output.summary, summary)
log.info(f"Sersic fit: median |dR|/R = {summary['median_abs_rel']:.4f} (successes), "
         f"{summary['failures']} failures, {summary['seconds_per_galaxy']:.3f} s/galaxy")
