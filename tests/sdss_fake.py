"""A fake SDSS on 127.0.0.1 for tests: SkyServer SQL answers and SAS frame files.

* SQL: ``GET /dr{N}/en/tools/search/x_results.aspx?cmd=...&format=csv&searchtool=SQL`` (the URL and
  parameters astroquery's ``SDSS.query_sql`` sends) answered in SkyServer's CSV format: a ``#Table1``
  line, the header, then rows.  The server honours the keyset pagination of the query it receives
  (``TOP n`` and ``p.objID > k``, parsed from the SQL) over a fixed object table.
* Frames: ``GET /sas/dr{N}/eboss/photoObj/frames/{rerun}/{run}/{camcol}/frame-{band}-...fits.bz2``,
  bzip2-compressed FITS made by :func:`make_frame`: a TAN WCS per band (each band shifted and
  slightly rotated, as SDSS's drift-scan bands are), an SDSS-like header, nanomaggies, sources drawn
  with GalSim at the pixel positions each band's WCS gives.

* Count: the same SQL endpoint answers ``SELECT COUNT(*) AS n_rows, COUNT(DISTINCT p.objID) AS
  n_objects ...`` (request kind 'count') with the size of the object table.

Faults are queued per kind ('sql' for pages, 'count', 'frame'), one used up per request:
'503', '404', '429' (with ``Retry-After: fake.retry_after``), 'timeout' (answer after the client
gave up), 'html' (status 200, an HTML error page), 'malformed' (CSV with a short row), 'rowcut'
(a page cut at a row boundary: only its first two rows, consistent Content-Length), 'midrow' (a
page cut inside its last row's class name, consistent Content-Length), 'count+1' (a count one
too high), 'truncated' (half a frame, consistent Content-Length), 'cut' (a third of a frame, then
the connection closes with the full Content-Length announced).  Frames honour ``Range: bytes=N-``
(206).  Every request is recorded in ``server.requests`` as (kind, path, sql, Range header).
"""

from __future__ import annotations

import bz2
import io
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import galsim
import numpy as np
import pandas as pd
from astropy.io import fits

BANDS = "ugriz"
PIXEL_SCALE = 0.396  # arcsec/px
COLUMNS = (["objID", "ra", "dec", "run", "rerun", "camcol", "field"] + [f"psfMag_{b}" for b in BANDS]
           + [f"cModelMag_{b}" for b in BANDS] + ["petroRad_r", "psfFWHM_r", "type", "class"])
#: per-band (dx, dy) pixel shift of CRPIX and rotation in degrees: the bands do not share a pixel grid
BAND_SHIFT = {"u": (3.3, -2.1, 0.00), "g": (0.0, 0.0, 0.02), "r": (-1.7, 4.6, -0.03),
              "i": (5.2, 1.4, 0.05), "z": (-4.4, -3.8, 0.01)}
FRAME_SHAPE = (120, 160)  # (ny, nx) pixels
FIELDS = {(756, 3, 101): (180.00, 0.50), (756, 3, 102): (180.00, 0.60)}  # frame centres (deg)
OBJID0 = 1237648720693755904


def frame_wcs_header(run: int, camcol: int, fld: int, band: str) -> fits.Header:
    """An SDSS-like frame header with a TAN WCS (CD matrix, deg/px) for one band."""
    ra0, dec0 = FIELDS[(run, camcol, fld)]
    dx, dy, rot = BAND_SHIFT[band]
    s = PIXEL_SCALE / 3600.0
    c, n = np.cos(np.radians(rot)), np.sin(np.radians(rot))
    ny, nx = FRAME_SHAPE
    h = fits.Header()
    h["SIMPLE"] = True
    h["BITPIX"] = -32
    h["NAXIS"] = 2
    h["NAXIS1"], h["NAXIS2"] = nx, ny
    h["RUN"], h["CAMCOL"], h["FIELD"], h["FILTER"] = run, camcol, fld, band
    h["RERUN"] = "301"
    h["BUNIT"] = "nanomaggy"
    h["RADESYS"] = "ICRS"
    h["EQUINOX"] = 2000.0
    h["CTYPE1"], h["CTYPE2"] = "RA---TAN", "DEC--TAN"
    h["CRVAL1"], h["CRVAL2"] = ra0, dec0
    h["CRPIX1"], h["CRPIX2"] = (nx + 1) / 2 + dx, (ny + 1) / 2 + dy
    h["CD1_1"], h["CD1_2"] = -s * c, s * n
    h["CD2_1"], h["CD2_2"] = s * n, s * c
    h["CUNIT1"], h["CUNIT2"] = "deg", "deg"
    return h


def draw_source(image: galsim.Image, x0: float, y0: float, flux: float, hlr: float | None) -> None:
    """Add a source of ``flux`` nanomaggies at 0-based pixel (x0, y0): PSF only (star) or exponential."""
    psf = galsim.Gaussian(fwhm=1.4)
    prof = psf if hlr is None else galsim.Convolve(galsim.Exponential(half_light_radius=hlr), psf)
    prof = prof.withFlux(flux)
    size = 41
    ix, iy = int(np.floor(x0 + 0.5)), int(np.floor(y0 + 0.5))
    st = galsim.ImageF(size, size, scale=PIXEL_SCALE)
    # GalSim's true centre of an odd stamp is its central pixel; offset puts the centroid at (x0, y0)
    prof.drawImage(st, offset=(x0 - ix, y0 - iy))
    b = galsim.BoundsI(ix - size // 2, ix + size // 2, iy - size // 2, iy + size // 2)
    st.setOrigin(b.xmin, b.ymin)
    ov = b & image.bounds
    if ov.isDefined():
        image[ov] += st[ov]


def make_frame(run: int, camcol: int, fld: int, band: str, objects: pd.DataFrame,
               bad: list[tuple[int, int]] = ()) -> bytes:
    """bzip2-compressed SDSS-format frame: HDU0 image (nanomaggies), HDU1 calibration vector."""
    from astropy.wcs import WCS

    h = frame_wcs_header(run, camcol, fld, band)
    wcs = WCS(h)
    ny, nx = FRAME_SHAPE
    img = galsim.ImageF(nx, ny, scale=PIXEL_SCALE)  # 1-based GalSim bounds; 0-based pixel = galsim - 1
    sel = objects[(objects.run == run) & (objects.camcol == camcol) & (objects.field == fld)]
    for o in sel.to_dict("records"):
        x, y = wcs.all_world2pix(o["ra"], o["dec"], 0)
        flux = 10 ** (-0.4 * (o[f"cModelMag_{band}"] - 22.5))  # nanomaggies (AB zero point 22.5)
        draw_source(img, float(x) + 1, float(y) + 1, flux, None if o["class"] == "STAR" else 1.2)
    data = img.array.astype(np.float32)
    for (yb, xb) in bad:
        if band == "r":
            data[yb - 2:yb + 3, xb - 2:xb + 3] = np.nan
    hdul = fits.HDUList([fits.PrimaryHDU(data=data, header=h),
                         fits.ImageHDU(data=np.full(nx, 0.005, np.float32), name="CALIB")])
    buf = io.BytesIO()
    hdul.writeto(buf)
    return bz2.compress(buf.getvalue())


def make_objects() -> tuple[pd.DataFrame, dict]:
    """The object table the fake SkyServer serves, and notes: which objects sit at edges / bad pixels."""
    from astropy.wcs import WCS

    rows, notes = [], {"edge": [], "bad": [], "bad_pix": {}}
    k = 0
    # positions in band g pixel coordinates (0-based); stamp of 24 px needs >= ~13 px margin (+ band shifts)
    layout = [(40.3, 40.7, "STAR"), (80.6, 60.2, "GALAXY"), (120.45, 45.9, "STAR"), (60.8, 85.15, "GALAXY"),
              (100.1, 90.6, "STAR"), (130.7, 75.3, "GALAXY"), (4.2, 60.0, "STAR")]
    for (run, camcol, fld) in FIELDS:
        wcs = WCS(frame_wcs_header(run, camcol, fld, "g"))
        for j, (x, y, cls) in enumerate(layout):
            ra, dec = wcs.all_pix2world(x, y, 0)
            k += 17
            objid = OBJID0 + (fld << 16) + k
            r = 17.0 + 0.3 * j
            colours = {"u": 1.8, "g": 0.6, "r": 0.0, "i": -0.3, "z": -0.5} if cls == "STAR" else \
                {"u": 2.2, "g": 1.0, "r": 0.0, "i": -0.4, "z": -0.7}
            row = {"objID": objid, "ra": float(ra), "dec": float(dec), "run": run, "rerun": 301,
                   "camcol": camcol, "field": fld}
            row.update({f"psfMag_{b}": r + colours[b] + (0.0 if cls == "STAR" else 0.8) for b in BANDS})
            row.update({f"cModelMag_{b}": r + colours[b] for b in BANDS})
            row.update({"petroRad_r": 1.5 if cls == "STAR" else 4.0, "psfFWHM_r": 1.3,
                        "type": 6 if cls == "STAR" else 3,
                        "class": cls})
            rows.append(row)
            if x < 10:
                notes["edge"].append(objid)
            if fld == 102 and j == 3:
                notes["bad"].append(objid)
                notes["bad_pix"][(run, camcol, fld)] = [(int(round(y)) + 3, int(round(x)) + 2)]
    return pd.DataFrame(rows, columns=COLUMNS), notes


def skyserver_csv(rows: pd.DataFrame) -> str:
    """Rows in the CSV format SkyServer returns to astroquery (``#Table1`` line first)."""
    lines = ["#Table1", ",".join(COLUMNS)]
    for r in rows.itertuples(index=False):
        lines.append(",".join(repr(v) if isinstance(v, float) else str(v) for v in r))
    return "\n".join(lines) + "\n"


@dataclass
class FakeSDSS:
    objects: pd.DataFrame
    frames: dict  # URL path -> bytes
    release: int = 17
    faults: dict = field(default_factory=lambda: {"sql": [], "count": [], "frame": []})
    requests: list = field(default_factory=list)  # (kind, path, sql or None, Range header or None)
    hang_s: float = 1.5
    retry_after: str = "1"
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def count(self, kind: str) -> int:
        return sum(1 for r in self.requests if r[0] == kind)

    def sql_requests(self) -> list[str]:
        return [r[2] for r in self.requests if r[0] == "sql"]


def _handler(fake: FakeSDSS):
    sql_path = f"/dr{fake.release}/en/tools/search/x_results.aspx"
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _send(self, status: int, body: bytes, ctype: str = "text/plain", length: int | None = None,
                  headers: dict | None = None):
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body) if length is None else length))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            u = urlparse(self.path)
            q = parse_qs(u.query)
            sql = q.get("cmd", [None])[0]
            kind = ("count" if sql and "COUNT(" in sql else "sql") if u.path == sql_path else \
                "frame" if u.path in fake.frames else "other"
            with lock:
                fake.requests.append((kind, u.path, sql, self.headers.get("Range")))
                fault = fake.faults[kind].pop(0) if kind in fake.faults and fake.faults[kind] else None
            try:
                if kind == "other":
                    return self._send(404, b"not found")
                if fault == "503":
                    return self._send(503, b"Service Unavailable")
                if fault == "429":
                    return self._send(429, b"Too Many Requests", headers={"Retry-After": fake.retry_after})
                if fault == "404":
                    return self._send(404, b"Not Found")
                if fault == "html":
                    page = b"<html><head><title>SkyServer</title></head><body>Server Error</body></html>"
                    return self._send(200, page, "text/html; charset=utf-8")
                if fault == "timeout":
                    time.sleep(fake.hang_s)
                if kind in ("sql", "count"):
                    assert q.get("format") == ["csv"] and q.get("searchtool") == ["SQL"], q
                if kind == "count":
                    n = len(fake.objects) + (1 if fault == "count+1" else 0)
                    return self._send(200, f"#Table1\nn_rows,n_objects\n{n},{n}\n".encode())
                if kind == "sql":
                    top = int(re.search(r"SELECT TOP (\d+) ", sql).group(1))
                    after = int(re.search(r"p\.objID > (-?\d+)", sql).group(1))
                    rows = fake.objects[fake.objects.objID > after].sort_values("objID").head(top)
                    if fault == "rowcut":
                        rows = rows.head(2)
                    text = skyserver_csv(rows)
                    if fault == "malformed":
                        lines = text.splitlines()
                        lines[-1] = lines[-1].rsplit(",", 3)[0]  # a row cut short
                        text = "\n".join(lines) + "\n"
                    if fault == "midrow":
                        text = text.rstrip("\n")[:-3]  # cut inside the last row's class name
                    return self._send(200, text.encode(), "text/plain; charset=utf-8")
                body = fake.frames[u.path]
                headers = {"Accept-Ranges": "bytes"}
                status, first = 200, 0
                rng = self.headers.get("Range")
                if rng and rng.startswith("bytes=") and rng.endswith("-"):
                    first = int(rng[6:-1])
                    status = 206
                    headers["Content-Range"] = f"bytes {first}-{len(body) - 1}/{len(body)}"
                part = body[first:]
                if fault == "truncated":
                    part = part[: len(part) // 2]
                if fault == "cut":
                    self._send(status, part[: len(part) // 3], "application/x-bzip2", length=len(part),
                               headers=headers)
                    self.close_connection = True
                    return
                return self._send(status, part, "application/x-bzip2", headers=headers)
            except (BrokenPipeError, ConnectionResetError):
                pass

    return Handler


def start(fake: FakeSDSS) -> ThreadingHTTPServer:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    srv.daemon_threads = True
    fake.port = srv.server_address[1]
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return srv


def build_fake(release: int = 17) -> tuple[FakeSDSS, dict]:
    objects, notes = make_objects()
    frames = {}
    for (run, camcol, fld) in FIELDS:
        for b in BANDS:
            path = (f"/sas/dr{release}/eboss/photoObj/frames/301/{run}/{camcol}/"
                    f"frame-{b}-{run:06d}-{camcol}-{fld:04d}.fits.bz2")
            frames[path] = make_frame(run, camcol, fld, b, objects, notes["bad_pix"].get((run, camcol, fld), []))
    return FakeSDSS(objects=objects, frames=frames, release=release), notes
