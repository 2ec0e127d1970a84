"""Rule study_speed: CPU seconds per galaxy of every study model, on the Sersic fit's thread budget."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from deepsky import runlog  # noqa: E402
from deepsky.reports import speed  # noqa: E402

log = runlog.redirect(snakemake.log[0])
p = snakemake.params
threads = speed.set_threads(p.threads)  # before the backend starts
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from deepsky import io  # noqa: E402
from deepsky.learn import data, modelfile  # noqa: E402

images, cat = io.read_shards(snakemake.input.npz, snakemake.input.parquet)
cat = data.split_frame(cat, io.read_parquet(snakemake.input.split))
test = np.flatnonzero((cat["split"] == "test").to_numpy())[: int(p.stamps)]
images, cat = images[test], cat.iloc[test].reset_index(drop=True)
log.info(f"timing {len(snakemake.input.models)} models on {len(test)} test stamps ({threads}, "
         f"median of {p.repeats} passes)")
rows = []
for name, path in zip(p.names, snakemake.input.models, strict=True):
    model, meta = modelfile.load_model(path)
    t = speed.time_model(model, meta, images, cat, repeats=int(p.repeats))
    rows.append({"model": name, "arch": meta["model"], "threads": int(p.threads), **t})
    log.info(f"{name}: {t['seconds_per_galaxy'] * 1e3:.3f} ms/galaxy ({t['stamps_per_s']:,.0f} stamps/s)")
io.write_parquet(snakemake.output[0], pd.DataFrame(rows))
