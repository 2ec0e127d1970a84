"""Rule candels_catalogue: van der Wel+12 GALFIT catalogue from VizieR -> Parquet cache (raw rows)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from deepsky import runlog  # noqa: E402

log = runlog.redirect(snakemake.log[0])
from deepsky.archives import candels, net  # noqa: E402

p = snakemake.params
# retry settings are machinery: read from config, not params, so changing them reruns nothing
policy = net.Policy.from_config(snakemake.config["candels"].get("http"), "candels.http")
raw = candels.fetch_catalogue(p.catalog, p.server, snakemake.output[0], policy, cache_dir=p.vizier_cache,
                              log=log.info)
log.info(f"cached {len(raw)} rows of {p.catalog} in {snakemake.output[0]}")
