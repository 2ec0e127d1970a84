"""SDSS faults injected through the fake SkyServer/SAS (tests/sdss_fake.py): no row lost silently,
nothing bad cached, every error naming the page and the query, a rerun succeeding once the fault
clears; and frames decompressed with a size cap."""

from __future__ import annotations

import bz2
import tracemalloc
from pathlib import Path

import pandas as pd
import pytest

import sdss_fake
from deepsky.archives import net, sdss

FAST = net.Policy(attempts=3, backoff_s=0.01, max_backoff_s=0.05, timeout_s=1.0)


@pytest.fixture(scope="module")
def built():
    return sdss_fake.build_fake()


@pytest.fixture
def fake(built):
    fake, _ = built
    fake.requests.clear()
    fake.faults = {"sql": [], "count": [], "frame": []}
    srv = sdss_fake.start(fake)
    yield fake
    srv.shutdown()
    srv.server_close()


def spec(**kw):
    return sdss.QuerySpec(**{"page_size": 4, **kw})


def cached_pages(folder: Path) -> list[str]:
    return sorted(p.name.split("-")[0] for p in folder.glob("page*.csv"))


def everything_ok(objs: pd.DataFrame, fake) -> None:
    want = fake.objects.sort_values("objID").reset_index(drop=True)
    pd.testing.assert_frame_equal(objs[sdss.COLUMNS], want[sdss.COLUMNS], check_dtype=False)


# ------------------------------------------------------------------ paging
@pytest.mark.parametrize("fault, says", [
    ("rowcut", "2 rows for TOP 4 end the query at 6 distinct objects, but its COUNT gave 14"),
    ("midrow", "that the query excluded (a row cut short?)"),
    ("html", "an HTML page (Content-Type text/html; charset=utf-8) where SkyServer CSV was expected"),
])
def test_bad_page_is_retried_then_named_and_never_cached(fake, tmp_path, fault, says):
    pages = tmp_path / "pages"
    # once: retried, and the query is complete (before the fix a row-boundary cut ended it at 6 of 14)
    fake.faults["sql"] = [None, fault]
    everything_ok(sdss.query_objects(spec(), pages, fake.url, FAST), fake)
    assert fake.count("sql") == 5  # 4 pages + 1 retry of page 1
    for page in pages.glob("page*.csv"):  # only complete pages on disk
        assert len(sdss.parse_page(page.read_text(), -1, 4)) in (4, 2)

    # lasting: an error naming the page, the SQL, the URL, the attempts; nothing of page 1 kept
    fake.requests.clear()
    pages = tmp_path / "again"
    fake.faults["sql"] = [None] + [fault] * FAST.attempts
    with pytest.raises(net.NetError) as err:
        sdss.query_objects(spec(), pages, fake.url, FAST)
    msg = str(err.value)
    after = int(fake.objects.sort_values("objID").objID.iloc[3])
    assert f"SkyServer page 1 (objID > {after}, TOP 4) of query {spec().digest()}" in msg
    assert f"SQL: {sdss.build_query(spec(), after, 4)}" in msg
    assert f"{fake.url}/dr17/en/tools/search/x_results.aspx" in msg and f"after {FAST.attempts} attempts" in msg
    assert says in msg
    assert cached_pages(pages) == ["page00000"]
    assert not list(pages.glob("count-*")) and not list(pages.glob("*.part"))
    # the fault clears: the rerun asks only for what is missing and gets every row
    fake.requests.clear()
    everything_ok(sdss.query_objects(spec(), pages, fake.url, FAST), fake)
    assert fake.count("count") == 1 and fake.count("sql") == 3  # pages 1..3; page 0 from the cache


def test_count_mismatch_is_named_and_nothing_wrong_is_kept(fake, tmp_path):
    pages = tmp_path / "pages"
    fake.faults["count"] = ["count+1"]  # the count says 15 objects, the pages hold 14
    with pytest.raises(net.NetError) as err:
        sdss.query_objects(spec(), pages, fake.url, FAST)
    msg = str(err.value)
    assert "SkyServer page 3 " in msg and "end the query at 14 distinct objects, but its COUNT gave 15" in msg
    assert "SQL: SELECT TOP 4 " in msg and spec().digest() in msg
    # the short last page and the count are not kept; the three full pages are
    assert cached_pages(pages) == ["page00000", "page00001", "page00002"] and not list(pages.glob("count-*"))
    fake.requests.clear()
    everything_ok(sdss.query_objects(spec(), pages, fake.url, FAST), fake)
    assert fake.count("count") == 1 and fake.count("sql") == 1
    assert len(list(pages.glob("count-*"))) == 1  # kept once every page agreed with it
    fake.requests.clear()
    sdss.query_objects(spec(), pages, fake.url, FAST)
    assert fake.requests == []


def test_unreadable_count_names_the_count_query(fake, tmp_path):
    fake.faults["count"] = ["html"] * FAST.attempts
    with pytest.raises(net.NetError) as err:
        sdss.query_objects(spec(), tmp_path / "p", fake.url, FAST)
    msg = str(err.value)
    assert "SkyServer COUNT of query" in msg and f"SQL: {sdss.build_count_query(spec())}" in msg
    assert fake.count("sql") == 0


def test_429_on_a_page_waits_as_asked(fake, tmp_path):
    fake.faults["sql"] = ["429"]
    fake.retry_after = "3"
    waits = []
    everything_ok(sdss.query_objects(spec(), tmp_path / "p", fake.url, FAST, sleep=waits.append), fake)
    assert waits == [3.0]


# ------------------------------------------------------------------ decompression cap
def bomb(path: Path, size: int) -> Path:
    path.write_bytes(bz2.compress(bytes(size), 9))
    return path


def test_frame_decompression_is_capped(tmp_path):
    path = bomb(tmp_path / "frame-r-000756-3-0101.fits.bz2", 16 * 2**20)  # 16 MiB of zeros in ~60 bytes
    assert path.stat().st_size < 1000
    tracemalloc.start()
    try:
        with pytest.raises(sdss.FrameTooLarge) as err:
            sdss.read_frame(path, max_bytes=2**20)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert str(path) in str(err.value) and "more than 1 MiB" in str(err.value)
    # the cap plus a few 256 KiB steps, not the 16 MiB the bomb expands to
    assert peak < 3 * 2**20, f"peak {peak / 2**20:.1f} MiB: the whole bomb was decompressed"
    # the default cap leaves room for real frames (12.5 MB) and stops far below a 200 MB bomb
    assert 13e6 < sdss.MAX_FRAME_BYTES < 50e6


def test_frame_bomb_from_the_server_is_refused_once_and_not_kept(fake, tmp_path):
    path = "/sas/dr17/eboss/photoObj/frames/301/756/3/frame-u-000756-3-0101.fits.bz2"
    real = fake.frames[path]
    fake.frames[path] = bz2.compress(bytes(3 * 2**20), 9)
    try:
        dest = sdss.frame_path(tmp_path, 756, 3, 101, "u")
        with pytest.raises(net.NetError) as err:
            sdss.fetch_frame(fake.url + path, dest, FAST, max_bytes=2**20)
    finally:
        fake.frames[path] = real
    msg = str(err.value)
    assert "decompresses to more than 1 MiB" in msg and fake.url + path in msg and "not retried" in msg
    assert fake.count("frame") == 1 and list(dest.parent.iterdir()) == []
