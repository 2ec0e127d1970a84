"""Rule manifest: content digests of every file under results/ (logs and benchmarks excluded)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from deepsky import runlog  # noqa: E402

log = runlog.redirect(snakemake.log[0])
from deepsky import manifest  # noqa: E402

out = Path(snakemake.output[0])
table = manifest.build(out.parent)
manifest.write(table, out)
log.info(f"{len(table)} results digested into {out}")
