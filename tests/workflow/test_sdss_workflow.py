"""The sdss rules end to end (query -> frames -> cutout shards) against the fake SDSS on 127.0.0.1."""
from __future__ import annotations

import json
import socket
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

import sdss_fake
import snakerun

SHARDS = [f"results/sims/sdss/shard{i:04d}.{ext}" for i in range(2) for ext in ("npz", "parquet")]

def sdss_config(tmp: Path, url: str, attempts: int = 2) -> Path:
    cfg = {"sdss": {"skyserver_url": url, "sas_url": url + "/sas", "page_size": 5, "max_objects": 0,
                    "shards": 2, "stamp": 24,
                    "http": {"attempts": attempts, "backoff_s": 0.01, "timeout_s": 2.0}}}
    path = tmp / "sdss.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def snakemake(workdir: Path, cfg: Path, *extra: str) -> subprocess.CompletedProcess:
    return snakerun.run(workdir, *SHARDS, "--resources", "sdss_requests=1", *extra,
                        configfiles=(snakerun.TINY, cfg), check=False, timeout=600)


def test_sdss_rules_make_shards_and_never_ask_twice(tmp_path):
    fake, notes = sdss_fake.build_fake()
    srv = sdss_fake.start(fake)
    try:
        cfg = sdss_config(tmp_path, fake.url)
        run = snakemake(tmp_path / "run", cfg)
        assert run.returncode == 0, run.stderr[-4000:]
        # 14 objects in pages of 5 (5 + 5 + 4), 2 fields x 5 bands
        assert fake.count("sql") == 3 and fake.count("frame") == 10
        w = tmp_path / "run"
        images, cats = [], []
        for i in range(2):
            with np.load(w / f"results/sims/sdss/shard{i:04d}.npz") as z:
                images.append(z["images"])
            cats.append(pd.read_parquet(w / f"results/sims/sdss/shard{i:04d}.parquet"))
            assert images[-1].shape == (len(cats[-1]), 5, 24, 24) and images[-1].dtype == np.float32
        cat = pd.concat(cats)
        assert len(cat) == 14 - len(notes["edge"]) - len(notes["bad"])
        assert cat["is_star"].dtype == bool and set(cat["class"]) == {"STAR", "GALAXY"}
        assert not set(cat["objID"]) & set(notes["edge"] + notes["bad"])
        reports = [json.loads((w / f"results/sdss/cutouts/shard{i:04d}.json").read_text()) for i in range(2)]
        assert sum(r["dropped_edge"] for r in reports) == 2 and sum(r["dropped_bad_pixels"] for r in reports) == 1
        assert sum(r["objects"] for r in reports) == 14
        assert (w / "resources/sdss/dr17/objects.parquet").is_file()
        assert (w / "resources/sdss/frames/756/3/102/frame-z-000756-3-0102.fits.bz2").is_file()
        assert (w / "results/benchmarks/sdss/query.tsv").is_file()
        assert "dropped 1 at frame edges" in (w / "results/logs/sdss/cutouts/shard0000.log").read_text() + \
            (w / "results/logs/sdss/cutouts/shard0001.log").read_text()
        before = {p: (w / p).read_bytes() for p in SHARDS}
        # forcing every sdss rule to run again: all from the caches, not one request, same bytes
        again = snakemake(w, cfg, "--forcerun", "sdss_query", "sdss_frames", "sdss_cutouts")
        assert again.returncode == 0, again.stderr[-4000:]
        assert "sdss_query" in again.stderr and fake.count("sql") == 3 and fake.count("frame") == 10
        assert {p: (w / p).read_bytes() for p in SHARDS} == before
    finally:
        srv.shutdown()
        srv.server_close()


def test_sdss_rules_without_network_say_use_simulated(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = sdss_config(tmp_path, f"http://127.0.0.1:{port}", attempts=1)
    run = snakemake(tmp_path / "run", cfg)
    assert run.returncode != 0
    log = (tmp_path / "run/results/logs/sdss/query.log").read_text()
    assert "stargal: {source: simulated}" in log and f"127.0.0.1:{port}" in log
    assert "stargal: {source: simulated}" in run.stderr  # show-failed-logs puts it on the console
    assert not (tmp_path / "run/resources/sdss/dr17/objects.parquet").exists()
