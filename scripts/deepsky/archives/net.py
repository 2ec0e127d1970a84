"""The one network layer of the live archives: every query and download goes through here.

What it guarantees, for SkyServer SQL, SAS frames, VizieR and mosaic URLs alike:

* **Time-outs** on connecting and on every read (``Policy.timeout_s``).
* **Bounded retries** (``Policy.attempts`` tries in all) on HTTP 408/429/5xx, time-outs, broken
  connections and answers that fail validation, with exponential back-off and jitter: after the
  k-th failure the wait is ``d/2 + uniform(0, d/2)`` with ``d = min(backoff_s * 2**(k-1),
  max_backoff_s)`` (tenacity's ``wait_exponential`` + ``wait_random_exponential``).  A
  ``Retry-After`` header (seconds or HTTP date) replaces that wait, capped at
  ``Policy.max_retry_after_s``.  Other 4xx answers (404, 403, ...) are not retried.
* **Validation before anything is kept**: an HTML page where data was expected is an error naming
  the URL; downloads are checked against their expected leading bytes (``magic``), an optional
  SHA-256 and a caller's ``validate``; queries against the caller's parser.  Only a body that passed
  is written, atomically (temporary name, then rename).
* **One clear error** when it gives up: :class:`NetError` names what was asked, the URL, the last
  HTTP status (or that none came), the number of attempts and the last reason.
* **Resumable downloads**: the body streams into ``<file>.part``; a broken transfer resumes with an
  HTTP ``Range`` request (guarded by ``If-Range`` with the ETag/Last-Modified of the first answer,
  so a file changed on the server starts over).  A progress line (size, rate, ETA) is logged every
  ``Policy.progress_s`` seconds.
* **An on-disk cache keyed by the request** (:func:`cache_file`: method, URL, parameters and body
  hashed): a rerun finds the answer on disk and makes no request.

Library choices: tenacity (retry loop, stop, composable waits; already installed with Snakemake)
and requests (one pooled session).  pooch was evaluated and not used: it neither resumes a broken
download (each retry restarts into a fresh temporary file), nor honours Retry-After, nor tells a
404 from a 503 (every ``RequestException`` is retried, with linear waits), and its progress bar
needs tqdm and writes carriage returns into job logs.  urllib3's ``Retry`` only sees status lines
and connection errors, not a body cut short mid-stream or an HTML page sent with status 200, so a
second loop would still be needed; one tenacity loop around the whole attempt covers every case.

No Snakemake import; messages go to the ``deepsky`` logger (the job log in a rule).
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import logging
import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import requests
import tenacity

from .. import __version__
from ..io import atomic_path, file_digest

log = logging.getLogger("deepsky")

#: statuses worth another try; every other 4xx is final
RETRY_STATUS = frozenset({408, 425, 429})
USER_AGENT = f"deepsky/{__version__} python-requests/{requests.__version__}"
CHUNK = 1 << 20


# --------------------------------------------------------------------------- policy
@dataclass(frozen=True)
class Policy:
    """How hard to try.  Machinery, not science: defaults live here; ``<archive>.http`` overrides.

    ``attempts`` tries in all; back-off from ``backoff_s`` doubling up to ``max_backoff_s`` (s);
    ``timeout_s`` per connect and per read (s); a server's Retry-After is honoured up to
    ``max_retry_after_s``; a download logs its progress every ``progress_s`` seconds.
    """

    attempts: int = 4
    backoff_s: float = 2.0
    max_backoff_s: float = 60.0
    timeout_s: float = 120.0
    max_retry_after_s: float = 300.0
    progress_s: float = 10.0

    def __post_init__(self):
        a = self.attempts
        if isinstance(a, bool) or not isinstance(a, int) or not 1 <= a <= 20:
            raise ValueError(f"http.attempts: expected an integer in [1, 20], got {a!r}")
        for f in fields(self):
            if f.name == "attempts":
                continue
            v = getattr(self, f.name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise ValueError(f"http.{f.name}: expected a finite number >= 0, got {v!r}")
        if self.timeout_s <= 0:
            raise ValueError(f"http.timeout_s: must be above 0, got {self.timeout_s!r}")

    @classmethod
    def from_config(cls, http: Mapping | None, key: str = "http") -> Policy:
        """From a config section such as ``sdss.http`` (missing keys: the defaults above)."""
        http = dict(http or {})
        unknown = sorted(set(http) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"{key}: unknown keys {unknown}; known: {[f.name for f in fields(cls)]}")
        try:
            return cls(**http)
        except ValueError as exc:
            raise ValueError(f"{key}: {exc}") from None

    def backoff(self) -> tenacity.wait.wait_base:
        """Exponential back-off with 'equal jitter': half the step fixed, half uniform random."""
        half, cap = self.backoff_s / 2, self.max_backoff_s / 2
        return tenacity.wait_exponential(multiplier=half, max=cap) + \
            tenacity.wait_random_exponential(multiplier=half, max=cap)


# --------------------------------------------------------------------------- errors
class NetError(RuntimeError):
    """A request failed for good.  The message names what, the URL, the status and the attempts."""

    def __init__(self, what: str, url: str, reason: str, status: int | None, attempts: int,
                 retried: bool = True, hint: str = "", note: str = ""):
        self.what, self.url, self.reason, self.status, self.attempts = what, url, reason, status, attempts
        status_text = f"HTTP {status}" if status is not None else "no HTTP status"
        if retried:
            head = f"{what}: failed after {attempts} attempt{'s' * (attempts != 1)} ({status_text})"
        else:
            head = f"{what}: failed ({status_text}, attempt {attempts}, not retried: the same request " \
                   f"would get the same answer)"
        text = f"{head}; URL {url}; last error: {reason}"
        if note:
            text += f". {note}"
        if hint:
            text += f". {hint}"
        super().__init__(text)


class Invalid(ValueError):
    """An answer that is not what was asked for (HTML page, truncated or malformed body).

    Raised by validators; the network layer retries it and never keeps the body.
    """


class Fatal(ValueError):
    """An answer that another try would not change (e.g. a wrong SHA-256, an oversized file)."""


class _Retryable(Exception):
    def __init__(self, reason: str, status: int | None = None, retry_after: float | None = None):
        super().__init__(reason)
        self.status, self.retry_after = status, retry_after


class _Final(Exception):
    def __init__(self, reason: str, status: int | None = None):
        super().__init__(reason)
        self.status = status


# --------------------------------------------------------------------------- HTTP helpers
_session: requests.Session | None = None


def session() -> requests.Session:
    """The process's pooled HTTP session (one per process; connections are reused)."""
    global _session
    if _session is None:
        _session = requests.Session()
        _session.headers["User-Agent"] = USER_AGENT
    return _session


def retry_after_s(value: str | None, now: float | None = None) -> float | None:
    """Seconds a ``Retry-After`` header asks for (delta-seconds or HTTP date); None if absent/unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _check_status(resp: requests.Response) -> None:
    code = resp.status_code
    if code in (200, 206):
        return
    text = f"HTTP {code} {resp.reason or ''}".strip()
    if code >= 500 or code in RETRY_STATUS:
        raise _Retryable(text, code, retry_after_s(resp.headers.get("Retry-After")))
    raise _Final(text, code)


def _request_error(exc: requests.RequestException) -> Exception:
    """A requests exception as retryable (time-outs, broken connections) or final (bad URL)."""
    text = f"{type(exc).__name__}: {exc}"
    if len(text) > 400:
        text = text[:400] + "..."
    if isinstance(exc, (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema,
                        requests.exceptions.InvalidSchema, requests.exceptions.InvalidHeader)):
        return _Final(text)
    return _Retryable(text)


def looks_like_html(head: bytes) -> bool:
    """True when a body starts like an HTML document (error pages of web servers and portals)."""
    h = head[:1024].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return h.startswith((b"<!doctype html", b"<html", b"<head", b"<body")) or b"<html" in h[:256]


def _not_html(head: bytes, expect: str, content_type: str | None) -> None:
    if looks_like_html(head):
        snippet = head[:200].decode("utf-8", "replace").replace("\n", " ")
        raise Invalid(f"an HTML page (Content-Type {content_type or 'not given'}) where {expect} was "
                      f"expected: {snippet!r}")


def run(attempt: Callable[[], Any], *, what: str, url: str, policy: Policy, hint: str = "", note: str = "",
        sleep: Callable[[float], None] = time.sleep) -> Any:
    """Call ``attempt`` under the retry policy; NetError when it gives up.

    ``attempt`` may raise requests exceptions, :class:`Invalid` (retried) or :class:`Fatal` (not
    retried); everything else propagates unchanged.
    """

    def once():
        try:
            return attempt()
        except requests.RequestException as exc:
            raise _request_error(exc) from exc
        except Fatal as exc:
            raise _Final(str(exc), getattr(exc, "status", None)) from exc
        except Invalid as exc:
            raise _Retryable(str(exc), getattr(exc, "status", None)) from exc

    backoff = policy.backoff()

    def wait(state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        asked = getattr(exc, "retry_after", None)
        if asked is not None:
            return min(asked, policy.max_retry_after_s)
        return backoff(state)

    def before_sleep(state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception()
        why = "Retry-After" if getattr(exc, "retry_after", None) is not None else "back-off"
        log.warning(f"{what}: {exc}; attempt {state.attempt_number} of {policy.attempts}, "
                    f"retrying in {state.next_action.sleep:.1f} s ({why})")

    retrying = tenacity.Retrying(stop=tenacity.stop_after_attempt(policy.attempts), wait=wait,
                                 retry=tenacity.retry_if_exception_type(_Retryable),
                                 before_sleep=before_sleep, sleep=sleep, reraise=True)
    try:
        return retrying(once)
    except _Retryable as exc:
        raise NetError(what, url, str(exc), exc.status, policy.attempts, hint=hint, note=note) from exc
    except _Final as exc:
        n = retrying.statistics.get("attempt_number", 1)
        raise NetError(what, url, str(exc), exc.status, n, retried=False, hint=hint, note=note) from exc


# --------------------------------------------------------------------------- cache keyed by request
def request_key(method: str, url: str, params: Mapping | None = None, data: Any = None) -> str:
    """SHA-256 (16 hex digits) of a request: method, URL, query parameters and body."""
    blob = json.dumps({"method": method.upper(), "url": url,
                       "params": sorted((str(k), str(v)) for k, v in (params or {}).items()),
                       "data": data if isinstance(data, (str, type(None))) else repr(data)},
                      sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def cache_file(folder: str | os.PathLike, method: str, url: str, params: Mapping | None = None, data: Any = None,
               prefix: str = "", suffix: str = "") -> Path:
    """Where the answer to a request is kept: ``folder/<prefix>-<request key><suffix>``."""
    key = request_key(method, url, params, data)
    return Path(folder) / (f"{prefix}-{key}{suffix}" if prefix else f"{key}{suffix}")


def _write(path: Path, body: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(body)


# --------------------------------------------------------------------------- queries
def fetch(url: str, *, what: str, policy: Policy, method: str = "GET", params: Mapping | None = None,
          data: Any = None, expect: str = "data", validate: Callable[[bytes], Any] | None = None,
          cache: str | os.PathLike | None = None, hint: str = "", note: str = "",
          sleep: Callable[[float], None] = time.sleep, http: requests.Session | None = None) -> tuple[bytes, Any]:
    """One query: the body and ``validate(body)``, from ``cache`` if it holds the answer.

    The body must not be an HTML page and must pass ``validate`` (which raises :class:`Invalid` to
    reject it, :class:`Fatal` to stop); only then is it written to ``cache`` (atomically).  A cached
    body is validated again on reading; one that no longer passes is dropped and asked for again.
    """
    if cache is not None:
        cache = Path(cache)
        if cache.exists():
            body = cache.read_bytes()
            try:
                _not_html(body, expect, None)
                value = validate(body) if validate else None
            except Invalid as exc:
                log.warning(f"{what}: cached answer {cache} is not valid ({exc}); dropping it and asking again")
                cache.unlink()
            else:
                log.info(f"{what}: from the cache {cache} (no request)")
                return body, value
    http = http or session()

    def attempt():
        with http.request(method, url, params=params, data=data, timeout=policy.timeout_s) as resp:
            _check_status(resp)
            body = resp.content
            try:
                _not_html(body, expect, resp.headers.get("Content-Type"))
                return body, (validate(body) if validate else None)
            except Invalid as exc:
                exc.status = resp.status_code  # the answer came, but was not what was asked for
                raise

    body, value = run(attempt, what=what, url=url, policy=policy, hint=hint, note=note, sleep=sleep)
    if cache is not None:
        _write(cache, body)
    return body, value


# --------------------------------------------------------------------------- downloads
def _content_range(value: str | None) -> tuple[int, int | None] | None:
    """(first byte, total size or None) of a ``Content-Range: bytes a-b/n`` header."""
    if not value or not value.startswith("bytes "):
        return None
    try:
        span, total = value[6:].split("/")
        return int(span.split("-")[0]), None if total.strip() == "*" else int(total)
    except ValueError:
        return None


def _mb(n: float) -> str:
    return f"{n / 1e6:.1f} MB"


class _Progress:
    """Logs 'what: done of total (pct), rate, ETA' at most every ``every`` seconds."""

    def __init__(self, what: str, total: int | None, start: int, every: float):
        self.what, self.total, self.start, self.every = what, total, start, every
        self.t0 = self.last = time.monotonic()

    def __call__(self, done: int, final: bool = False) -> None:
        now = time.monotonic()
        if not final and now - self.last < self.every:
            return
        self.last = now
        rate = (done - self.start) / max(now - self.t0, 1e-6)
        if final:
            log.info(f"{self.what}: {_mb(done)} in {now - self.t0:.1f} s ({rate / 1e6:.2f} MB/s)"
                     + (f", resumed at {_mb(self.start)}" if self.start else ""))
            return
        if self.total:
            eta = (self.total - done) / rate if rate > 0 else math.inf
            log.info(f"{self.what}: {_mb(done)} of {_mb(self.total)} ({100 * done / self.total:.0f}%), "
                     f"{rate / 1e6:.2f} MB/s, ETA {eta:.0f} s")
        else:
            log.info(f"{self.what}: {_mb(done)} (size not given), {rate / 1e6:.2f} MB/s, ETA unknown")


def download(url: str, dest: str | os.PathLike, *, what: str, policy: Policy, magic: tuple[bytes, ...] = (),
             expect: str = "a data file", sha256: str | None = None,
             validate: Callable[[Path], None] | None = None, hint: str = "",
             sleep: Callable[[float], None] = time.sleep, http: requests.Session | None = None) -> bool:
    """Download ``url`` to ``dest`` unless it is there; True if fetched, False if it came from disk.

    The body streams into ``<dest>.part`` (its ``.part.json`` records the URL and the server's
    ETag/Last-Modified); a broken transfer is resumed from the bytes on disk with a ``Range``
    request, on the next attempt or the next run.  The complete file must start with one of
    ``magic`` (when given), match ``sha256`` (when given) and pass ``validate(part_path)`` (which
    raises :class:`Invalid` or :class:`Fatal`); then it is renamed onto ``dest``.  A file that fails
    is deleted, never resumed.
    """
    dest = Path(dest)
    if dest.exists():
        return False
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    meta = dest.with_name(dest.name + ".part.json")
    http = http or session()

    def start_over():
        part.unlink(missing_ok=True)
        meta.unlink(missing_ok=True)

    def resume_state() -> tuple[int, dict]:
        if part.exists() and meta.exists():
            try:
                info = json.loads(meta.read_text())
            except ValueError:
                info = {}
            if info.get("url") == url:
                return part.stat().st_size, info
        start_over()
        return 0, {}

    def check_head(head: bytes, content_type: str | None):
        _not_html(head, expect, content_type)
        if magic and not head.startswith(magic):
            raise Invalid(f"not {expect}: starts with {head[:16]!r}, expected {' or '.join(map(repr, magic))}")

    def attempt() -> None:
        have, info = resume_state()
        headers = {}
        if have:
            headers["Range"] = f"bytes={have}-"
            etag = info.get("etag") or ""
            validator = etag if etag and not etag.startswith("W/") else info.get("last_modified")  # strong only
            if validator:
                headers["If-Range"] = validator
        with http.get(url, headers=headers, stream=True, timeout=policy.timeout_s) as resp:
            if resp.status_code == 416 and have:  # nothing left to send, or the file shrank: start over
                start_over()
                raise _Retryable(f"HTTP 416 for bytes {have}- (the partial file does not fit the server's): "
                                 "starting over", 416)
            _check_status(resp)
            if resp.status_code == 206:
                rng = _content_range(resp.headers.get("Content-Range"))
                if rng is None or rng[0] != have:
                    start_over()
                    raise _Retryable(f"server resumed at {rng and rng[0]} instead of byte {have}: starting over")
                total, mode = rng[1], "ab"
                if total is None and resp.headers.get("Content-Length"):
                    total = have + int(resp.headers["Content-Length"])
            else:  # 200: the whole file (the server ignores Range, or the file changed under If-Range)
                if have:
                    log.info(f"{what}: the server sent the whole file again (no resume): starting over")
                have, mode = 0, "wb"
                length = resp.headers.get("Content-Length")
                total = int(length) if length and length.isdigit() else None
                meta.write_text(json.dumps({"url": url, "etag": resp.headers.get("ETag"),
                                            "last_modified": resp.headers.get("Last-Modified"),
                                            "bytes": total}))
            progress = _Progress(what, total, have, policy.progress_s)
            done, first = have, True
            with open(part, mode) as fh:
                for block in resp.iter_content(CHUNK):
                    if first and have == 0:
                        try:
                            check_head(block, resp.headers.get("Content-Type"))
                        except Invalid as exc:
                            exc.status = resp.status_code
                            fh.close()
                            start_over()
                            raise
                    first = False
                    fh.write(block)
                    done += len(block)
                    progress(done)
            if total is not None and done < total:
                raise _Retryable(f"transfer ended at {done} of {total} bytes; resuming from byte {done}")
            if total is not None and done > total:
                start_over()
                raise _Retryable(f"got {done} bytes, more than the {total} announced: starting over")
        with open(part, "rb") as fh:
            head = fh.read(1024)
        try:
            check_head(head, None)
            if sha256:
                got = file_digest(part)
                if got != sha256.lower():
                    raise Fatal(f"SHA-256 of the download is {got}, not the expected {sha256.lower()}")
            if validate:
                validate(part)
        except (Invalid, Fatal) as exc:
            exc.status = resp.status_code  # the transfer completed; its content is what failed
            start_over()
            raise
        os.replace(part, dest)
        meta.unlink(missing_ok=True)
        progress(done, final=True)

    run(attempt, what=what, url=url, policy=policy, hint=hint, sleep=sleep)
    return True
