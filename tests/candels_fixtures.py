"""Test helpers for the live CANDELS path: a local HTTP server on 127.0.0.1, a VizieR-format VOTable
and a synthetic F160W mosaic with a real TAN WCS holding GalSim galaxies of known R_e.

The VOTable copies the layout VizieR's votable CGI sends to astroquery (DESCRIPTION, INFO
query parameters, COOSYS, RESOURCE named after the catalogue, TABLE with FIELDs carrying ucd/width/
precision/unit, TABLEDATA).  Column names are those used with the live J/ApJS/203/24 by public code
(RAJ2000, DEJ2000, F filter, Q flag, mag, r, n, q, PA); they could not be checked against the live
service from here, which is why deepsky.candels resolves columns through aliases + config.
"""

from __future__ import annotations

import dataclasses
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

PIXEL_SCALE = 0.06  # arcsec/px
MOSAIC_SHAPE = (360, 420)  # ny, nx
CRVAL = (189.228, 62.238)  # GOODS-N-like


# --------------------------------------------------------------------------- HTTP server
@dataclasses.dataclass
class Server:
    """Routes path -> (bytes, content type); faults path -> list used up one per request.

    Faults: 'status:NNN' (that status), 'status:NNN:retry-after=V' (with a Retry-After header),
    'html' (200 with an HTML error page), 'truncate' (a third of the body, then the connection
    closes, Content-Length announcing all of it), 'hang:S' (answer after S seconds).  GET honours
    ``Range: bytes=N-`` (206 + Content-Range; 416 past the end) unless ``If-Range`` names another
    ETag; every answer carries an ETag of its body.  ``requests`` records (method, path, body),
    ``headers`` the request headers in the same order.
    """

    routes: dict = dataclasses.field(default_factory=dict)
    faults: dict = dataclasses.field(default_factory=dict)
    requests: list = dataclasses.field(default_factory=list)
    headers: list = dataclasses.field(default_factory=list)
    sent: list = dataclasses.field(default_factory=list)  # body bytes written per request
    url: str = ""

    def count(self, path: str) -> int:
        return sum(1 for _, p, _ in self.requests if p == path)


def etag(body: bytes) -> str:
    import hashlib

    return '"' + hashlib.sha256(body).hexdigest()[:16] + '"'


class QuietServer(ThreadingHTTPServer):
    """A client that gives up on an answer (time-out, rejected body) is expected here, not an error."""

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            super().handle_error(request, client_address)


def start_server() -> tuple[Server, ThreadingHTTPServer]:
    state = Server()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # keep pytest output clean
            pass

        def _reply(self, status: int, body: bytes, headers: dict, write: bytes | None = None):
            self.send_response(status)
            for k, v in {"Content-Length": str(len(body)), **headers}.items():
                self.send_header(k, v)
            self.end_headers()
            data = body if write is None else write
            state.sent.append(len(data))
            self.wfile.write(data)
            self.wfile.flush()

        def _serve(self, body_in: bytes):
            import time

            path = self.path.split("?")[0]
            state.requests.append((self.command, path, body_in))
            state.headers.append(dict(self.headers))
            faults = state.faults.get(path) or []
            fault = faults.pop(0) if faults else None
            if fault and fault.startswith("status:"):
                parts = fault.split(":")
                extra = {}
                if len(parts) > 2 and parts[2].startswith("retry-after="):
                    extra["Retry-After"] = parts[2].split("=", 1)[1]
                return self._reply(int(parts[1]), b"Service Unavailable", extra)
            if fault == "html":
                page = b"<!DOCTYPE html>\n<html><head><title>Error</title></head><body>Server busy</body></html>\n"
                return self._reply(200, page, {"Content-Type": "text/html; charset=utf-8"})
            if fault and fault.startswith("hang:"):
                time.sleep(float(fault.split(":")[1]))
            if path not in state.routes:
                return self._reply(404, b"", {})
            body, ctype = state.routes[path]
            headers = {"Content-Type": ctype, "ETag": etag(body), "Accept-Ranges": "bytes"}
            status, first = 200, 0
            rng = self.headers.get("Range")
            if self.command == "GET" and rng and rng.startswith("bytes=") and rng.endswith("-"):
                if self.headers.get("If-Range") in (None, etag(body)):
                    first = int(rng[6:-1])
                    if first >= len(body):
                        return self._reply(416, b"", {"Content-Range": f"bytes */{len(body)}"})
                    status = 206
                    headers["Content-Range"] = f"bytes {first}-{len(body) - 1}/{len(body)}"
            part = body[first:]
            if fault == "truncate":
                self._reply(status, part, headers, write=part[: len(part) // 3])
                self.close_connection = True
                return
            self._reply(status, part, headers)

        def do_GET(self):
            try:
                self._serve(b"")
            except (BrokenPipeError, ConnectionResetError):  # the client gave up (time-out tests)
                pass

        def do_POST(self):
            n = int(self.headers.get("Content-Length") or 0)
            try:
                self._serve(self.rfile.read(n))
            except (BrokenPipeError, ConnectionResetError):
                pass

    httpd = QuietServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    return state, httpd


# --------------------------------------------------------------------------- WCS and mosaic
def tan_wcs(shape=MOSAIC_SHAPE, scale=PIXEL_SCALE, crval=CRVAL, rot_deg=0.0):
    """A TAN WCS with a CD matrix (north up, east left; optional rotation), as drizzled mosaics carry."""
    from astropy.wcs import WCS

    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = list(crval)
    w.wcs.crpix = [shape[1] / 2 + 0.5, shape[0] / 2 + 0.5]
    s, t = scale / 3600.0, np.deg2rad(rot_deg)
    w.wcs.cd = [[-s * np.cos(t), s * np.sin(t)], [s * np.sin(t), s * np.cos(t)]]
    w.wcs.radesys = "ICRS"
    return w


def galaxy(r_e: float, n: float, q: float, pa_deg: float, flux: float):
    """GalSim Sersic of circularised half-light radius r_e (arcsec), convolved with an F160W-like PSF."""
    import galsim

    gal = galsim.Sersic(n=n, half_light_radius=r_e, flux=flux).shear(q=q, beta=pa_deg * galsim.degrees)
    return galsim.Convolve(gal, galsim.Moffat(beta=2.5, fwhm=0.18))


#: galaxies of the synthetic field: 0-based mosaic pixel (x, y), circularised r_e (arcsec), n, q, PA, flux,
#: flag, filter.  x, y = k + 0.5 puts a 32-px stamp's pixel centres exactly on mosaic pixel centres.
GALAXIES = [
    dict(seq=1, x=100.5, y=120.5, r_e=0.30, n=1.0, q=0.7, pa=30.0, flux=800.0, flag=0, band="H"),
    dict(seq=2, x=250.5, y=200.5, r_e=0.15, n=2.5, q=0.5, pa=110.0, flux=500.0, flag=0, band="H"),
    dict(seq=3, x=320.5, y=90.5, r_e=0.50, n=1.5, q=0.9, pa=60.0, flux=1200.0, flag=0, band="H"),
    dict(seq=4, x=180.27, y=260.81, r_e=0.22, n=4.0, q=0.6, pa=0.0, flux=900.0, flag=0, band="H"),
    dict(seq=5, x=60.5, y=300.5, r_e=0.25, n=1.0, q=0.8, pa=10.0, flux=600.0, flag=1, band="H"),    # bad fit
    dict(seq=6, x=100.5, y=120.5, r_e=0.31, n=1.1, q=0.7, pa=30.0, flux=800.0, flag=0, band="J"),   # J band row
    dict(seq=7, x=5.5, y=180.5, r_e=0.20, n=1.0, q=0.8, pa=0.0, flux=500.0, flag=0, band="H"),      # at the edge
    dict(seq=8, x=380.5, y=300.5, r_e=0.20, n=1.0, q=0.8, pa=0.0, flux=500.0, flag=0, band="H"),    # blank region
    dict(seq=9, x=5000.5, y=300.5, r_e=0.20, n=1.0, q=0.8, pa=0.0, flux=500.0, flag=0, band="H"),   # other field
]
BLANK_BOX = (slice(290, 320), slice(390, 420))  # rows, cols set to 0 (no coverage) in the mosaic


def make_mosaic(path: Path, rot_deg: float = 0.0, noise: float = 0.0, seed: int = 1, scale: float = PIXEL_SCALE,
                shape=MOSAIC_SHAPE, galaxies=None) -> list[dict]:
    """Write a FITS mosaic with GalSim galaxies at known positions; returns the rows with ra/dec added."""
    import galsim
    from astropy.io import fits

    w = tan_wcs(shape, scale, rot_deg=rot_deg)
    image = galsim.ImageF(shape[1], shape[0], scale=scale)
    rows = []
    for g in (GALAXIES if galaxies is None else galaxies):
        ra, dec = w.all_pix2world([g["x"]], [g["y"]], 0)
        rows.append({**g, "ra": float(ra[0]), "dec": float(dec[0])})
        if g["band"] != "H" or not (0 <= g["x"] < shape[1] and 0 <= g["y"] < shape[0]):
            continue
        obj = galaxy(g["r_e"], g["n"], g["q"], g["pa"], g["flux"])
        stamp = obj.drawImage(nx=96, ny=96, scale=scale, center=galsim.PositionD(g["x"] + 1, g["y"] + 1))
        bounds = stamp.bounds & image.bounds
        image[bounds] += stamp[bounds]
    data = image.array.astype(np.float32)
    if noise:
        data += np.random.default_rng(seed).normal(0, noise, data.shape).astype(np.float32)
    data[BLANK_BOX] = 0.0
    hdr = w.to_header()
    hdr["BUNIT"] = "ELECTRONS/S"
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(data, hdr, name="SCI")]).writeto(path, overwrite=True)
    return rows


def expected_stamp(g: dict, size: int, scale: float = PIXEL_SCALE) -> np.ndarray:
    """The galaxy drawn directly at a stamp's true centre: what a perfect cutout holds."""
    import galsim

    img = galsim.ImageF(size, size, scale=scale)
    galaxy(g["r_e"], g["n"], g["q"], g["pa"], g["flux"]).drawImage(image=img, center=img.true_center)
    return img.array


# --------------------------------------------------------------------------- VizieR VOTable
VOTABLE_HEAD = """<?xml version="1.0" encoding="UTF-8"?>
<VOTABLE version="1.4" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
  xmlns="http://www.ivoa.net/xml/VOTable/v1.3"
  xsi:schemaLocation="http://www.ivoa.net/xml/VOTable/v1.3 http://www.ivoa.net/xml/VOTable/v1.3">
 <DESCRIPTION>
   VizieR Astronomical Server vizier.cds.unistra.fr
    Date: 2026-11-25T00:00:00 [V7.4.6]
   Explanations and Statistics of UCDs:			See LINK below
   In case of problem, please report to:	cds-question@unistra.fr
   In this version, NULL integer columns are written as an empty string
   &lt;TD&gt;&lt;/TD&gt;, explicitely possible from VOTable-1.3
 </DESCRIPTION>
<!-- VOTable description at http://www.ivoa.net/Documents/latest/VOT.html -->
<INFO ID="VERSION" name="votable-version" value="1.99+ (14-Oct-2013)"/>
<INFO ID="Ref" name="-ref" value="VOTx12345"/>
<INFO name="MaxTuples" value="50000" />
<INFO name="queryParameters" value="6">
-oc.form=d
-out.max=unlimited
-out.all
-source=J/ApJS/203/24
-out.meta=huUD
-out.form=mini
</INFO>
<COOSYS ID="J2000" system="eq_FK5" equinox="J2000"/>
<RESOURCE ID="yCat_22030024" name="J/ApJS/203/24">
  <DESCRIPTION>Structural parameters of galaxies in CANDELS (van der Wel+, 2012)</DESCRIPTION>
  <COOSYS ID="H_2000.000" system="ICRS" epoch="2000"/>
  <TABLE ID="J_ApJS_203_24_table" name="J/ApJS/203/24/table" nrows="{nrows}">
    <DESCRIPTION>GALFIT structural parameters (all fields and filters)</DESCRIPTION>
<!-- Definitions of GROUPs and FIELDs -->
    <FIELD name="Field" ucd="obs.field" datatype="char" arraysize="6*"><!-- ucd="OBS_FIELD" -->
      <DESCRIPTION>CANDELS field</DESCRIPTION>
    </FIELD>
    <FIELD name="Seq" ucd="meta.id;meta.main" datatype="int" width="6"><!-- ucd="ID_MAIN" -->
      <DESCRIPTION>Sequential number in the field</DESCRIPTION>
      <VALUES null="-2147483648" />
    </FIELD>
    <FIELD name="F" ucd="instr.filter" datatype="char" arraysize="1">
      <DESCRIPTION>[YJH] Filter</DESCRIPTION>
    </FIELD>
    <FIELD name="RAJ2000" ucd="pos.eq.ra;meta.main" ref="H_2000.000" datatype="double" width="10" precision="6" unit="deg">
      <DESCRIPTION>Right ascension (J2000)</DESCRIPTION>
    </FIELD>
    <FIELD name="DEJ2000" ucd="pos.eq.dec;meta.main" ref="H_2000.000" datatype="double" width="10" precision="6" unit="deg">
      <DESCRIPTION>Declination (J2000)</DESCRIPTION>
    </FIELD>
    <FIELD name="Q" ucd="meta.code.qual" datatype="unsignedByte" width="1">
      <DESCRIPTION>[0/3] GALFIT quality flag (0: good fit)</DESCRIPTION>
    </FIELD>
    <FIELD name="mag" ucd="phot.mag" datatype="float" width="6" precision="3" unit="mag">
      <DESCRIPTION>GALFIT total magnitude</DESCRIPTION>
    </FIELD>
    <FIELD name="r" ucd="phys.angSize" datatype="float" width="7" precision="4" unit="arcsec">
      <DESCRIPTION>Semi-major axis of the half-light ellipse</DESCRIPTION>
    </FIELD>
    <FIELD name="n" ucd="src.morph.param" datatype="float" width="5" precision="2">
      <DESCRIPTION>Sersic index</DESCRIPTION>
    </FIELD>
    <FIELD name="q" ucd="phys.size.axisRatio" datatype="float" width="5" precision="3">
      <DESCRIPTION>Axis ratio</DESCRIPTION>
    </FIELD>
    <FIELD name="PA" ucd="pos.posAng" datatype="float" width="6" precision="1" unit="deg">
      <DESCRIPTION>Position angle</DESCRIPTION>
    </FIELD>
<DATA><TABLEDATA>
"""
VOTABLE_TAIL = """</TABLEDATA></DATA>
</TABLE>
<INFO name="matches" value="{nrows}">matching records</INFO>
</RESOURCE>
</VOTABLE>
"""


def vizier_votable(rows: list[dict]) -> bytes:
    """VizieR's VOTable answer for these galaxies; r is the semi-major R_e = r_e(circ) / sqrt(q)."""
    body = []
    for g in rows:
        mag = 25.0 - 2.5 * np.log10(g["flux"])
        r_major = g["r_e"] / np.sqrt(g["q"])
        body.append(f"<TR><TD>GOODSN</TD><TD>{g['seq']}</TD><TD>{g['band']}</TD><TD>{g['ra']:.8f}</TD>"
                    f"<TD>{g['dec']:.8f}</TD><TD>{g['flag']}</TD><TD>{mag:.3f}</TD><TD>{r_major:.6f}</TD>"
                    f"<TD>{g['n']:.2f}</TD><TD>{g['q']:.4f}</TD><TD>{g['pa']:.1f}</TD></TR>\n")
    return (VOTABLE_HEAD.format(nrows=len(rows)) + "".join(body) + VOTABLE_TAIL.format(nrows=len(rows))).encode()


# --------------------------------------------------------------------------- pytest fixtures
#: the catalogue query's path on the fake VizieR
VOTABLE = "/viz-bin/votable"


@pytest.fixture
def server():
    state, httpd = start_server()
    yield state
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def field(tmp_path, server):
    """Synthetic mosaic on disk and served, and the matching VizieR answer."""
    mosaic = tmp_path / "src" / "goodsn_f160w.fits"
    mosaic.parent.mkdir()
    rows = make_mosaic(mosaic)
    server.routes[VOTABLE] = (vizier_votable(rows), "application/x-votable+xml")
    server.routes["/mosaics/goodsn_f160w.fits"] = (mosaic.read_bytes(), "application/fits")
    return rows, mosaic
