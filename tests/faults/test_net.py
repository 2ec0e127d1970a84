"""The network layer (deepsky.archives.net), tested once, on the loopback test server (127.0.0.1).

Every fault is injected through the server of tests/candels_fixtures.py: statuses with and without
Retry-After, HTML error pages, answers that hang past the time-out, bodies cut short with the full
Content-Length announced, and Range requests to resume them.
"""

from __future__ import annotations

import email.utils
import logging
import os

import pytest

from deepsky.archives import net

PATH = "/data/table.csv"
FILE = "/data/image.fits"
BODY = b"a,b\n1,2\n3,4\n"
#: a FITS-like file big enough to arrive in several chunks
IMAGE = b"SIMPLE  =                    T" + os.urandom(3 * net.CHUNK + 12345)


def policy(**kw) -> net.Policy:
    return net.Policy(**{"attempts": 3, "backoff_s": 0.01, "max_backoff_s": 0.04, "timeout_s": 2.0, **kw})


class Sleeps(list):
    """A sleep() that records the waits instead of sleeping."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def srv(server):
    server.routes[PATH] = (BODY, "text/csv")
    server.routes[FILE] = (IMAGE, "application/fits")
    return server


def fetch(srv, pol=None, **kw):
    return net.fetch(srv.url + PATH, what="test table", policy=pol or policy(), expect="CSV", **kw)


# --------------------------------------------------------------------------- retries and waits
def test_503_then_success_with_exponential_backoff_and_jitter(srv):
    srv.faults[PATH] = ["status:503", "status:503", "status:503"]
    sleeps = Sleeps()
    pol = policy(attempts=4, backoff_s=2.0, max_backoff_s=5.0)
    body, _ = fetch(srv, pol, sleep=sleeps)
    assert body == BODY and srv.count(PATH) == 4
    # after failure k the wait is d/2 + uniform(0, d/2), d = min(2 * 2**(k-1), 5): 2, 4, then capped at 5
    assert len(sleeps) == 3
    for wait, d in zip(sleeps, (2.0, 4.0, 5.0)):
        assert d / 2 <= wait <= d


def test_jitter_spreads_the_waits():
    pol = policy(backoff_s=8.0, max_backoff_s=8.0)
    waits = set()
    for _ in range(20):
        state = type("S", (), {"attempt_number": 1})()
        waits.add(round(pol.backoff()(state), 6))
    assert len(waits) > 10 and min(waits) >= 4.0 and max(waits) <= 8.0


@pytest.mark.parametrize("asked, waited", [("7", 7.0), ("1000", 30.0)])
def test_429_retry_after_is_honoured_and_bounded(srv, caplog, asked, waited):
    srv.faults[PATH] = [f"status:429:retry-after={asked}"]
    sleeps = Sleeps()
    with caplog.at_level(logging.WARNING, logger="deepsky"):
        body, _ = fetch(srv, policy(max_retry_after_s=30.0), sleep=sleeps)
    assert body == BODY and srv.count(PATH) == 2
    assert sleeps == [waited]  # the server's wait, capped at max_retry_after_s; not the back-off
    assert "HTTP 429" in caplog.text and "Retry-After" in caplog.text


def test_retry_after_as_http_date():
    now = 1_800_000_000.0
    assert net.retry_after_s(email.utils.formatdate(now + 42, usegmt=True), now=now) == pytest.approx(42)
    assert net.retry_after_s(email.utils.formatdate(now - 5, usegmt=True), now=now) == 0.0
    assert net.retry_after_s("120") == 120.0
    assert net.retry_after_s("soon") is None and net.retry_after_s(None) is None


def test_timeout_then_success(srv):
    srv.faults[PATH] = ["hang:1.5"]
    body, _ = fetch(srv, policy(timeout_s=0.3))
    assert body == BODY and srv.count(PATH) == 2


def test_retries_exhausted_give_one_clear_error(srv):
    srv.faults[PATH] = ["status:503"] * 5
    with pytest.raises(net.NetError) as err:
        fetch(srv, hint="Use the offline source.")
    e, msg = err.value, str(err.value)
    assert (e.status, e.attempts, e.url) == (503, 3, srv.url + PATH) and srv.count(PATH) == 3
    assert msg.startswith("test table: failed after 3 attempts (HTTP 503)")
    assert f"URL {srv.url}{PATH}" in msg and "HTTP 503 Service Unavailable" in msg
    assert msg.endswith("Use the offline source.")


def test_time_outs_exhausted_name_the_url_and_no_status(srv):
    srv.faults[PATH] = ["hang:1.0"] * 3
    with pytest.raises(net.NetError) as err:
        fetch(srv, policy(attempts=2, timeout_s=0.2))
    msg = str(err.value)
    assert "failed after 2 attempts (no HTTP status)" in msg and "Timeout" in msg and srv.url + PATH in msg


def test_client_error_is_not_retried(srv):
    with pytest.raises(net.NetError) as err:
        net.fetch(srv.url + "/missing", what="test table", policy=policy())
    assert "HTTP 404" in str(err.value) and "not retried" in str(err.value)
    assert err.value.attempts == 1 and srv.count("/missing") == 1


# --------------------------------------------------------------------------- validation
def test_html_error_page_is_an_error_naming_the_url(srv, tmp_path):
    srv.faults[PATH] = ["html"] * 3
    cache = tmp_path / "answer.csv"
    with pytest.raises(net.NetError) as err:
        fetch(srv, cache=cache)
    msg = str(err.value)
    assert "an HTML page (Content-Type text/html; charset=utf-8) where CSV was expected" in msg
    assert srv.url + PATH in msg and "(HTTP 200)" in msg and "after 3 attempts" in msg
    assert not cache.exists() and os.listdir(tmp_path) == []
    # the same fault once: retried, and only the real answer is kept
    srv.faults[PATH] = ["html"]
    body, _ = fetch(srv, cache=cache)
    assert body == BODY and cache.read_bytes() == BODY


def test_answer_failing_validation_is_retried_and_never_cached(srv, tmp_path):
    answers = iter([False, True])

    def validate(body: bytes) -> int:
        if not next(answers):
            raise net.Invalid("rows missing")
        return len(body)

    cache = tmp_path / "answer.csv"
    body, value = fetch(srv, cache=cache, validate=validate)
    assert value == len(BODY) and srv.count(PATH) == 2 and cache.read_bytes() == BODY


# --------------------------------------------------------------------------- cache
def test_cache_hit_makes_no_request(srv, tmp_path):
    url = srv.url + PATH
    c1 = net.cache_file(tmp_path, "POST", url, data="-source=A", prefix="q", suffix=".csv")
    c2 = net.cache_file(tmp_path, "POST", url, data="-source=B", prefix="q", suffix=".csv")
    assert c1 != c2 and c1 == net.cache_file(tmp_path, "POST", url, data="-source=A", prefix="q", suffix=".csv")
    assert c1.name.startswith("q-") and c1.suffix == ".csv"
    for _ in range(3):
        body, _ = net.fetch(url, method="POST", data="-source=A", what="q", policy=policy(), cache=c1)
        assert body == BODY
    assert srv.count(PATH) == 1
    # downloads: the file on disk is the cache
    dest = tmp_path / "img.fits"
    assert net.download(srv.url + FILE, dest, what="image", policy=policy()) is True
    assert net.download(srv.url + FILE, dest, what="image", policy=policy()) is False
    assert srv.count(FILE) == 1 and dest.read_bytes() == IMAGE


def test_invalid_cached_answer_is_dropped_and_asked_again(srv, tmp_path):
    cache = tmp_path / "answer.csv"
    cache.write_bytes(b"<html><body>cached error page</body></html>")
    body, _ = fetch(srv, cache=cache)
    assert body == BODY and cache.read_bytes() == BODY and srv.count(PATH) == 1


# --------------------------------------------------------------------------- downloads
def test_truncated_download_is_resumed_with_range(srv, tmp_path, caplog):
    srv.faults[FILE] = ["truncate"]
    dest = tmp_path / "img.fits"
    with caplog.at_level(logging.INFO, logger="deepsky"):
        assert net.download(srv.url + FILE, dest, what="image", policy=policy(progress_s=0), magic=(b"SIMPLE",))
    sent = len(IMAGE) // 3
    assert dest.read_bytes() == IMAGE and srv.count(FILE) == 2
    # resumed from the whole chunks written before the connection broke
    rng = srv.headers[-1].get("Range")
    start = int(rng.removeprefix("bytes=").removesuffix("-"))
    assert rng == f"bytes={start}-" and 0 < start <= sent and start % net.CHUNK == 0
    assert srv.headers[-1].get("If-Range") == srv.headers[0].get("If-Range", srv.headers[-1]["If-Range"])
    assert srv.sent == [sent, len(IMAGE) - start]  # the second answer carried only the rest
    assert sorted(p.name for p in tmp_path.iterdir()) == ["img.fits"]  # no .part, no .part.json left
    # progress lines: size, rate, ETA; then the total
    assert "MB of 3.2 MB" in caplog.text and "MB/s, ETA" in caplog.text
    assert f"resumed at {start / 1e6:.1f} MB" in caplog.text


def test_interrupted_download_resumes_on_the_next_run_unless_the_file_changed(srv, tmp_path):
    dest = tmp_path / "img.fits"
    srv.faults[FILE] = ["truncate"]
    with pytest.raises(net.NetError, match="after 1 attempt "):
        net.download(srv.url + FILE, dest, what="image", policy=policy(attempts=1))
    part = tmp_path / "img.fits.part"
    have = part.stat().st_size
    assert not dest.exists() and have > 0 and part.read_bytes() == IMAGE[:have]
    net.download(srv.url + FILE, dest, what="image", policy=policy(attempts=1))
    assert dest.read_bytes() == IMAGE and srv.headers[-1]["Range"] == f"bytes={have}-"
    assert srv.sent[-1] == len(IMAGE) - have
    # the file changes on the server between two runs: If-Range makes the server send all of it
    other = tmp_path / "other.fits"
    srv.faults[FILE] = ["truncate"]
    with pytest.raises(net.NetError):
        net.download(srv.url + FILE, other, what="image", policy=policy(attempts=1))
    new = b"SIMPLE  =                    T" + os.urandom(2 * net.CHUNK)
    srv.routes[FILE] = (new, "application/fits")
    net.download(srv.url + FILE, other, what="image", policy=policy(attempts=1))
    assert other.read_bytes() == new


def test_download_of_an_html_page_or_wrong_file_is_never_kept(srv, tmp_path):
    dest = tmp_path / "img.fits"
    srv.faults[FILE] = ["html", "html", "html"]
    with pytest.raises(net.NetError) as err:
        net.download(srv.url + FILE, dest, what="image", policy=policy(), magic=(b"SIMPLE",), expect="a FITS file")
    assert "an HTML page" in str(err.value) and "a FITS file was expected" in str(err.value)
    assert srv.url + FILE in str(err.value)
    srv.faults[FILE] = []
    with pytest.raises(net.NetError, match="not a bzip2 frame: starts with b'SIMPLE"):
        net.download(srv.url + FILE, dest, what="image", policy=policy(), magic=(b"BZh",), expect="a bzip2 frame")
    assert os.listdir(tmp_path) == []
    # a wrong SHA-256 is final: one request, nothing kept
    n = srv.count(FILE)
    with pytest.raises(net.NetError, match="not retried") as err:
        net.download(srv.url + FILE, dest, what="image", policy=policy(), sha256="0" * 64)
    assert "SHA-256" in str(err.value) and srv.count(FILE) == n + 1 and os.listdir(tmp_path) == []


def test_policy_from_config_names_bad_keys():
    assert net.Policy.from_config({}) == net.Policy()
    assert net.Policy.from_config({"attempts": 2, "timeout_s": 5}).attempts == 2
    with pytest.raises(ValueError, match="sdss.http: unknown keys \\['retries'\\]"):
        net.Policy.from_config({"retries": 3}, "sdss.http")
    with pytest.raises(ValueError, match="sdss.http: http.attempts: expected an integer"):
        net.Policy.from_config({"attempts": 2.0}, "sdss.http")
