"""Rule sdss_query: paged SkyServer query (cached page by page) -> resources/sdss/dr{N}/objects.parquet."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from deepsky import runlog  # noqa: E402

log = runlog.redirect(snakemake.log[0])
from deepsky import io  # noqa: E402
from deepsky.archives import net, sdss  # noqa: E402

cfg = snakemake.params.sdss
spec = sdss.QuerySpec.from_config(cfg)
# retry settings are machinery: read from config, not params, so changing them reruns nothing
policy = net.Policy.from_config(snakemake.config["sdss"].get("http"), "sdss.http")
pages = Path(snakemake.params.pages_root) / spec.digest()
log.info(f"SkyServer DR{spec.release} at {cfg['skyserver_url']}: pages in {pages}")
log.info("first page SQL: " + sdss.build_query(spec, 0, min(spec.page_size, spec.max_objects or spec.page_size)))
objects = sdss.query_objects(spec, pages, cfg["skyserver_url"], policy)
counts = objects["class"].value_counts().sort_index().to_dict()
log.info(f"{len(objects)} objects in {objects[['run', 'camcol', 'field']].drop_duplicates().shape[0]} fields; "
         f"classes {counts}")
io.write_parquet(snakemake.output.objects, objects)
