"""The candels rules end to end against a local HTTP server on 127.0.0.1 (VizieR VOTable + mosaic)."""

from __future__ import annotations

import numpy as np
import yaml

import snakerun
from candels_fixtures import VOTABLE
from deepsky import io


def test_workflow_live_target_from_local_server(tmp_path, server, field):
    """snakemake: catalogue (VizieR on 127.0.0.1) + mosaic download + cutouts -> results/sims/candels shards."""
    cfgfile = tmp_path / "candels.yaml"
    cfg = yaml.safe_load(snakerun.TINY.read_text())
    cfg["candels"] = {"server": server.url, "mosaic": server.url + "/mosaics/goodsn_f160w.fits",
                      "stamp": 32, "shards": 2, "psf": None}
    cfgfile.write_text(yaml.safe_dump(cfg))
    work = tmp_path / "run"
    targets = [f"results/sims/candels/shard{i:04d}.{e}" for i in range(2) for e in ("npz", "parquet")]
    args = (*targets, "--resources", "vizier_requests=1")
    snakerun.run(work, *args, configfiles=(cfgfile,), cores=1, timeout=300)
    images, cat = io.read_shards([work / t for t in targets if t.endswith("npz")],
                                 [work / t for t in targets if t.endswith("parquet")])
    assert images.shape == (4, 1, 32, 32) and images.dtype == np.float32
    for col in ("id", "ra", "dec", "r_e_arcsec", "sersic_n", "q", "flag", "snr", "cutout_flag", "mosaic", "psf"):
        assert col in cat.columns, col
    assert (cat["flag"] == 0).all() and (cat["cutout_flag"] == 0).all()
    assert sorted(cat["r_e_arcsec"].round(4)) == [0.15, 0.22, 0.30, 0.50]
    assert server.count(VOTABLE) == 1 and server.count("/mosaics/goodsn_f160w.fits") == 1
    # second run: nothing to do, no request
    again = snakerun.run(work, *args, configfiles=(cfgfile,), cores=1, timeout=300)
    assert "Nothing to be done" in snakerun.output(again)
    assert server.count(VOTABLE) == 1 and server.count("/mosaics/goodsn_f160w.fits") == 1
    # the network rules run again (as after a code change: Snakemake removes their outputs first):
    # the answers come from the caches under resources/candels/, not one request
    forced = snakerun.run(work, *args, "--forcerun", "candels_catalogue", "candels_mosaic",
                          configfiles=(cfgfile,), cores=1, timeout=300)
    assert "candels_mosaic" in snakerun.output(forced)
    assert server.count(VOTABLE) == 1 and server.count("/mosaics/goodsn_f160w.fits") == 1
    assert (work / "resources/candels/mosaic/goodsn_f160w.fits").read_bytes() == field[1].read_bytes()
