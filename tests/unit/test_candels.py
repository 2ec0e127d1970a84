"""Live CANDELS path against a local HTTP server on 127.0.0.1 (VizieR VOTable + synthetic mosaic)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import candels_fixtures as cf
from candels_fixtures import VOTABLE
from deepsky import cutouts
from deepsky.archives import candels, net

CATALOG = "J/ApJS/203/24"
FAST = net.Policy(attempts=3, backoff_s=0.01, max_backoff_s=0.05, timeout_s=2.0)


def no_partials(folder):
    return [p.name for p in folder.rglob("*") if p.name.startswith(".") or p.suffix == ".part"]


def test_catalogue_query_cache_and_columns(tmp_path, server, field):
    rows, _ = field
    cache = tmp_path / "resources" / "candels" / "J_ApJS_203_24.parquet"
    raw = candels.fetch_catalogue(CATALOG, server.url, cache, FAST)
    assert server.count(VOTABLE) == 1
    # the request astroquery builds (its public payload builder), sent as astroquery sends it
    assert server.requests[0][0] == "POST"
    assert b"-source=J/ApJS/203/24" in server.requests[0][2] and b"-out.max=unlimited" in server.requests[0][2]
    assert len(raw) == len(rows) and cache.exists()
    assert raw["_table"].unique().tolist() == ["J/ApJS/203/24/table"]  # astroquery's table naming
    again = candels.fetch_catalogue(CATALOG, server.url, cache, FAST)
    assert server.count(VOTABLE) == 1, "second run must read the Parquet cache, not ask VizieR"
    pd.testing.assert_frame_equal(raw, again)
    # without the Parquet file (a rule rerun removes its output first) the VOTable cache answers
    cache.unlink()
    third = candels.fetch_catalogue(CATALOG, server.url, cache, FAST)
    assert server.count(VOTABLE) == 1
    pd.testing.assert_frame_equal(raw, third)
    assert [p.suffix for p in (cache.parent / "vizier").iterdir()] == [".vot"]

    cat = candels.normalise_catalogue(raw, band="H", keep_flags=[0])
    want = {g["seq"]: g for g in rows if g["flag"] == 0 and g["band"] == "H"}
    assert sorted(cat["id"]) == sorted(f"vdw12-GOODSN-{s}" for s in want)
    for _, r in cat.iterrows():
        g = want[int(r["id"].rsplit("-", 1)[1])]
        # VizieR's r is the semi-major axis; the label is circularised like the simulations'
        assert r["r_e_arcsec"] == pytest.approx(g["r_e"], rel=1e-5)
        assert r["r_e_major_arcsec"] == pytest.approx(g["r_e"] / np.sqrt(g["q"]), rel=1e-5)
        assert r["sersic_n"] == pytest.approx(g["n"]) and r["q"] == pytest.approx(g["q"])
    assert cat["snr"].isna().all()  # the catalogue has no S/N column
    with pytest.raises(ValueError, match="candels.columns"):
        candels.normalise_catalogue(raw.drop(columns=["r"]))


def test_vizier_errors_name_the_url_and_the_offline_target(tmp_path, server, field):
    cache = tmp_path / "cat.parquet"
    server.faults[VOTABLE] = ["status:503"] * 5
    with pytest.raises(net.NetError, match="simulated_hst") as err:
        candels.fetch_catalogue(CATALOG, server.url, cache, FAST)
    assert f"{server.url}/viz-bin/votable" in str(err.value) and "HTTP 503" in str(err.value)
    assert not cache.exists() and no_partials(tmp_path) == [] and not (tmp_path / "vizier").exists()
    # an answer that is no VOTable is retried, never kept
    server.faults[VOTABLE] = [None]
    server.routes["/viz-bin/votable"] = (b"#\n#   VizieR plain text\n", "text/plain")
    with pytest.raises(net.NetError, match="not a VOTable"):
        candels.fetch_catalogue(CATALOG, server.url, cache, FAST)
    assert not cache.exists() and not list((tmp_path / "vizier").glob("*"))


def test_no_network_error_suggests_offline_target(tmp_path):
    with pytest.raises(net.NetError, match="transfer.target: simulated_hst"):
        candels.fetch_catalogue(CATALOG, "http://127.0.0.1:9", tmp_path / "c.parquet", FAST)


def test_mosaic_downloaded_once_into_the_cache_and_linked(tmp_path, server, field):
    _, mosaic = field
    url = server.url + "/mosaics/goodsn_f160w.fits"
    cache_dir = tmp_path / "resources" / "candels" / "cache"
    dest = tmp_path / "resources" / "candels" / "mosaic" / "goodsn_f160w.fits"
    candels.fetch_mosaic(url, dest, cache_dir, FAST)
    assert dest.read_bytes() == mosaic.read_bytes() and server.count("/mosaics/goodsn_f160w.fits") == 1
    assert candels.mosaic_cache_path(url, cache_dir).samefile(dest)  # a hard link, not a copy
    # a rule rerun removes its output first: the cache answers, no request
    dest.unlink()
    candels.fetch_mosaic(url, dest, cache_dir, FAST)
    assert dest.read_bytes() == mosaic.read_bytes() and server.count("/mosaics/goodsn_f160w.fits") == 1
    assert no_partials(tmp_path / "resources") == []
    # a wrong SHA-256 is final: one request, nothing kept
    with pytest.raises(net.NetError, match="SHA-256.*not retried|not retried.*SHA-256"):
        candels.fetch_mosaic(url, tmp_path / "x.fits", tmp_path / "cache2", FAST, sha256="0" * 64)
    assert server.count("/mosaics/goodsn_f160w.fits") == 2
    assert not (tmp_path / "x.fits").exists() and not list((tmp_path / "cache2").rglob("*.fits*"))
    # a 404 is not retried
    with pytest.raises(net.NetError, match="HTTP 404"):
        candels.fetch_mosaic(server.url + "/nope.fits", tmp_path / "nope.fits", cache_dir, FAST)
    assert server.count("/nope.fits") == 1


def test_cutouts_match_direct_render_through_wcs(tmp_path, field):
    rows, mosaic = field
    cat = candels.normalise_catalogue(pd.DataFrame({
        "Seq": [g["seq"] for g in rows], "F": [g["band"] for g in rows], "RAJ2000": [g["ra"] for g in rows],
        "DEJ2000": [g["dec"] for g in rows], "Q": [g["flag"] for g in rows],
        "r": [g["r_e"] / np.sqrt(g["q"]) for g in rows], "n": [g["n"] for g in rows], "q": [g["q"] for g in rows]}))
    band = candels.open_mosaic(mosaic)
    cfg = {"shards": 2, "stamp": 32, "pixel_scale": 0.06, "blank_value": 0.0, "drop_flagged": False}
    parts = [candels.cutout_shard(band, cat, cfg, s, {"catalog": CATALOG}) for s in range(2)]
    images = np.concatenate([p[0] for p in parts])
    table = pd.concat([p[1] for p in parts], ignore_index=True)
    assert len(table) == 6  # 7 good H-band rows minus the one in another field
    by_seq = {g["seq"]: g for g in rows}
    flags = dict(zip(table["id"], table["cutout_flag"]))
    assert flags["vdw12-7"] & cutouts.EDGE and flags["vdw12-8"] & cutouts.BAD_PIXELS
    for i, r in table.iterrows():
        g = by_seq[int(r["id"].split("-")[1])]
        if r["cutout_flag"]:
            continue
        want = cf.expected_stamp(g, 32)
        stamp = images[i, 0]
        if g["x"] % 1 == 0.5:  # stamp pixel centres on mosaic pixel centres: exact copy expected
            np.testing.assert_allclose(stamp, want, atol=1e-4 * want.max())
        # any position: the light is centred on the stamp's true centre to < 0.05 px
        yy, xx = np.mgrid[:32, :32] - 15.5
        w = np.clip(stamp, 0, None)
        assert abs((w * xx).sum() / w.sum()) < 0.05 and abs((w * yy).sum() / w.sum()) < 0.05
        assert stamp.sum() == pytest.approx(want.sum(), rel=2e-3)
    # dropping flagged stamps by default
    imgs, t = candels.cutout_shard(band, cat, {**cfg, "shards": 1, "drop_flagged": True}, 0, {})
    assert len(t) == 4 and (t["cutout_flag"] == 0).all() and imgs.shape == (4, 1, 32, 32)


def test_mosaic_without_wcs_is_a_clear_error(tmp_path):
    from astropy.io import fits

    p = tmp_path / "nowcs.fits"
    fits.PrimaryHDU(np.zeros((10, 10), np.float32)).writeto(p)
    with pytest.raises(ValueError, match="celestial WCS"):
        candels.open_mosaic(p)
