"""Live SDSS path (deepsky.sdss) against a fake SkyServer + SAS on 127.0.0.1 (tests/sdss_fake.py)."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import sdss_fake  # noqa: E402
from deepsky.archives import net, sdss  # noqa: E402

FAST = net.Policy(attempts=3, backoff_s=0.01, max_backoff_s=0.05, timeout_s=0.5)


@pytest.fixture(scope="module")
def built():
    return sdss_fake.build_fake()


@pytest.fixture
def fake(built):
    fake, notes = built
    fake.requests.clear()
    fake.faults = {"sql": [], "count": [], "frame": []}
    srv = sdss_fake.start(fake)
    yield fake
    srv.shutdown()
    srv.server_close()


def spec(**kw):
    return sdss.QuerySpec(**{"page_size": 4, **kw})


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.name.endswith(".part"))


# ------------------------------------------------------------------ query builder
def test_query_is_built_from_typed_values():
    sql = sdss.build_query(spec(mag_min=15, mag_max=20.5, ra_min=10.0, ra_max=20.0), 1237648720693755904, 4)
    assert sql.startswith("SELECT TOP 4 p.objID, p.ra, p.dec, p.run, p.rerun, p.camcol, p.field, p.psfMag_u")
    for clause in ("FROM PhotoObj AS p JOIN SpecObj AS s ON s.bestObjID = p.objID",
                   "p.objID > 1237648720693755904", "p.clean = 1", "s.zWarning = 0",
                   "s.class IN ('STAR', 'GALAXY')", "p.cModelMag_r >= 15.0", "p.cModelMag_r < 20.5",
                   "p.ra >= 10.0", "p.ra < 20.0", "ORDER BY p.objID", "p.psffwhm_r AS psfFWHM_r"):
        assert clause in sql
    assert "'QSO'" in sdss.build_query(spec(include_qso=True), 0, 1)
    # anything that is not a typed, whitelisted value is refused, never spliced
    for bad in ({"mag_column": "cModelMag_r; DROP TABLE PhotoObj"}, {"mag_min": "15 OR 1=1"},
                {"page_size": True}, {"mag_max": float("nan")}, {"release": 7}, {"include_qso": "yes"},
                {"mag_min": 22.0, "mag_max": 21.0}):
        with pytest.raises(ValueError):
            spec(**bad)
    with pytest.raises(ValueError):
        sdss.build_query(spec(), "0 OR 1=1", 4)


def test_spec_from_schema_config():
    cfg = {"release": 16, "page_size": 10, "max_objects": 5, "include_qso": False,
           "cuts": {"mag_column": "psfMag_i", "mag_min": 14.0, "mag_max": 20.0, "petro_rad_min": 0.0,
                    "petro_rad_max": 10.0, "region": {"ra_min": 1.0, "ra_max": 2.0, "dec_min": -1.0,
                                                      "dec_max": 1.0}}}
    s = sdss.QuerySpec.from_config(cfg)
    assert (s.release, s.mag_column, s.dec_min, s.petro_rad_max) == (16, "psfMag_i", -1.0, 10.0)
    assert s.digest() != sdss.QuerySpec.from_config({**cfg, "release": 17}).digest()


# ------------------------------------------------------------------ query: rows, pages, cache
def page_files(folder: Path) -> list[str]:
    return sorted(p.name.split("-")[0] for p in folder.glob("page*.csv"))


def test_query_pages_rows_and_cache(fake, tmp_path):
    objs = sdss.query_objects(spec(), tmp_path / "pages", fake.url, FAST)
    want = fake.objects.sort_values("objID").reset_index(drop=True)
    assert len(want) == 14
    pd.testing.assert_frame_equal(objs[sdss.COLUMNS], want[sdss.COLUMNS], check_dtype=False)
    assert objs["is_star"].tolist() == (want["class"] == "STAR").tolist()
    assert objs["objID"].dtype == np.int64
    # one COUNT of the same query, then 14 rows in pages of 4: 4 + 4 + 4 + 2, each page asking for
    # objIDs after the last one seen
    assert fake.count("count") == 1
    count_sql = [r[2] for r in fake.requests if r[0] == "count"][0]
    assert count_sql.strip() == sdss.build_count_query(spec())
    sqls = fake.sql_requests()
    assert len(sqls) == 4
    afters = [int(s.split("p.objID > ")[1].split()[0]) for s in sqls]
    assert afters == [0] + [int(want.objID[i]) for i in (3, 7, 11)]
    # cached under names keyed by the request: page index + hash of URL and SQL
    assert page_files(tmp_path / "pages") == [f"page{k:05d}" for k in range(4)]
    assert len(list((tmp_path / "pages").glob("count-*.csv"))) == 1
    # second run: everything from the cache, not one request
    again = sdss.query_objects(spec(), tmp_path / "pages", fake.url, FAST)
    assert fake.count("sql") == 4 and fake.count("count") == 1
    pd.testing.assert_frame_equal(again, objs)


def test_query_max_objects_stops_early(fake, tmp_path):
    objs = sdss.query_objects(spec(max_objects=6), tmp_path / "p", fake.url, FAST)
    assert len(objs) == 6
    assert [s.split()[2] for s in fake.sql_requests()] == ["4", "2"]  # TOP 4, then TOP 2


def test_query_resumes_after_interruption(fake, tmp_path):
    fake.faults["sql"] = [None, "503", "503", "503"]  # page 0 fine, page 1 fails on every attempt
    with pytest.raises(net.NetError) as err:
        sdss.query_objects(spec(), tmp_path / "p", fake.url, FAST)
    msg = str(err.value)
    assert "page 1" in msg and "after 3 attempts" in msg and "HTTP 503" in msg
    assert f"{fake.url}/dr17/en/tools/search/x_results.aspx" in msg
    assert "SQL: SELECT TOP 4 " in msg and "stargal: {source: simulated}" in msg
    assert page_files(tmp_path / "p") == ["page00000"]
    assert leftovers(tmp_path) == []
    assert fake.count("sql") == 4
    objs = sdss.query_objects(spec(), tmp_path / "p", fake.url, FAST)
    assert len(objs) == 14
    assert fake.count("sql") == 4 + 3  # pages 1..3 only: page 0 came from the cache


def test_query_without_network_suggests_offline_source(tmp_path):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(net.NetError) as err:
        sdss.query_objects(spec(), tmp_path / "p", f"http://127.0.0.1:{port}", FAST)
    msg = str(err.value)
    assert "ConnectionError" in msg and "no HTTP status" in msg and "stargal: {source: simulated}" in msg


# ------------------------------------------------------------------ frames
def test_frames_fetched_once_and_validated(fake, tmp_path):
    objs = fake.objects
    m = sdss.fetch_frames(objs, tmp_path / "frames", fake.url + "/sas", 17, FAST)
    assert len(m) == 10 and m["fetched"].all() and fake.count("frame") == 10
    assert (tmp_path / "frames/756/3/101/frame-r-000756-3-0101.fits.bz2").is_file()
    for row in m.itertuples():
        assert row.url == f"{fake.url}/sas/dr17/eboss/photoObj/frames/301/756/3/{Path(row.path).name}"
        assert sdss.read_frame(tmp_path / "frames" / row.path).image.shape == sdss_fake.FRAME_SHAPE
    m2 = sdss.fetch_frames(objs, tmp_path / "frames", fake.url + "/sas", 17, FAST)
    assert fake.count("frame") == 10 and not m2["fetched"].any()  # a rerun never asks twice
    pd.testing.assert_frame_equal(m.drop(columns="fetched"), m2.drop(columns="fetched"))


def test_unreadable_frame_is_retried_and_never_kept(fake, tmp_path):
    """Half a frame with a consistent Content-Length: HTTP says complete, bzip2 says not."""
    url = f"{fake.url}/sas/dr17/eboss/photoObj/frames/301/756/3/frame-g-000756-3-0101.fits.bz2"
    dest = sdss.frame_path(tmp_path, 756, 3, 101, "g")
    fake.faults["frame"] = ["truncated"]
    assert sdss.fetch_frame(url, dest, FAST) is True
    assert fake.count("frame") == 2 and sdss.read_frame(dest).name == "g"
    dest.unlink()
    fake.requests.clear()
    fake.faults["frame"] = ["truncated"] * 10
    with pytest.raises(net.NetError) as err:
        sdss.fetch_frame(url, dest, FAST)
    msg = str(err.value)
    assert url in msg and f"after {FAST.attempts} attempts" in msg and "not a complete bzip2 file" in msg
    assert fake.count("frame") == FAST.attempts
    assert not dest.exists() and list(dest.parent.iterdir()) == []  # no half file, no partial file


# ------------------------------------------------------------------ cutouts
def centroid(stamp: np.ndarray) -> tuple[float, float]:
    y, x = np.indices(stamp.shape)
    w = np.clip(stamp, 0, None)
    return float((w * y).sum() / w.sum()), float((w * x).sum() / w.sum())


def test_cutouts_aligned_in_nanomaggies_with_drops_counted(fake, built, tmp_path):
    _, notes = built
    objs = sdss.query_objects(spec(page_size=50), tmp_path / "p", fake.url, FAST)
    sdss.fetch_frames(objs, tmp_path / "frames", fake.url + "/sas", 17, FAST)
    size = 24
    images, cat, rep = sdss.cut_shard(objs, tmp_path / "frames", size, 0.396, 17, 0)
    assert images.shape == (len(cat), 5, size, size) and images.dtype == np.float32
    assert rep.objects == 14 and rep.dropped_edge == len(notes["edge"]) == 2
    assert rep.dropped_bad_pixels == len(notes["bad"]) == 1 and rep.kept == 11
    assert set(rep.dropped_ids) == set(notes["edge"] + notes["bad"])
    assert not set(cat["objID"]) & set(rep.dropped_ids)
    assert cat["id"].str.startswith("sdss-dr17-").all() and cat["objID"].is_monotonic_increasing
    assert {"is_star", "class", "flags", "psfMag_r", "cModelMag_z", "petroRad_r", "psfFWHM_r", "type"} \
        <= set(cat.columns)
    c = (size - 1) / 2
    stars = np.flatnonzero(cat["class"].to_numpy() == "STAR")
    assert len(stars) >= 4
    for i in stars:
        cents = np.array([centroid(images[i, b]) for b in range(5)])
        # each band on the sky position, and the bands on each other, to < 0.1 px
        assert np.abs(cents - c).max() < 0.1, cents
        assert np.ptp(cents, axis=0).max() < 0.1
        # pixel values are nanomaggies: the stamp holds the star's catalogue flux (22.5 AB zero point)
        for b, band in enumerate("ugriz"):
            want = 10 ** (-0.4 * (cat[f"cModelMag_{band}"].iloc[i] - 22.5))
            assert images[i, b].sum() == pytest.approx(want, rel=0.02)


def test_assign_shards_is_deterministic_blocks_of_objid():
    df = pd.DataFrame({"objID": np.array([9, 3, 7, 1, 5, 2, 8], np.int64), "x": range(7)})
    parts = sdss.assign_shards(df, 3)
    assert [p["objID"].tolist() for p in parts] == [[1, 2], [3, 5, 7], [8, 9]]
    assert [p["objID"].tolist() for p in sdss.assign_shards(df.sample(frac=1, random_state=1), 3)] == \
        [p["objID"].tolist() for p in parts]


def test_schema_fills_sdss_defaults_and_refuses_bad_values():
    from snakemake.utils import validate

    schema = str(Path(__file__).resolve().parents[2] / "workflow/schemas/config.schema.yaml")
    cfg = {"seed": 1, "sims": {}, "size": {}}
    validate(cfg, schema, set_default=True)
    s = sdss.QuerySpec.from_config(cfg["sdss"])  # the schema's defaults make a valid query
    assert (s.release, s.mag_column, cfg["sdss"]["stamp"], cfg["sdss"]["pixel_scale"]) == (17, "cModelMag_r", 48, 0.396)
    for bad in ({"cuts": {"mag_column": "cModelMag_r; DROP TABLE PhotoObj"}}, {"release": 7},
                {"skyserver_url": "skyserver.sdss.org"}, {"cuts": {"mag_min": "14"}}, {"shards": 0}):
        with pytest.raises(Exception, match="sdss|ValidationError|valid"):
            validate({"seed": 1, "sims": {}, "size": {}, "sdss": bad}, schema, set_default=True)
