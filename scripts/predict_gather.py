"""Rule predict_gather: check that the tiles' predictions cover every catalogue row exactly once."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from deepsky import runlog  # noqa: E402

log = runlog.redirect(snakemake.log[0])
from deepsky.predict import tiles  # noqa: E402

summary = tiles.gather(list(snakemake.input.tiles), list(snakemake.input.parts), snakemake.output[0])
log.info(f"{summary['rows']} rows in {len(summary['tiles'])} tiles, {summary['flagged']} flagged")
