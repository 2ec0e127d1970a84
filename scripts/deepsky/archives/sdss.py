"""Live SDSS star/galaxy data: SkyServer query, frame cache and ugriz cutouts.

Three steps, each resumable and each caching what it retrieved under ``resources/`` so that a
rerun never asks SDSS twice:

1. **Query** (:func:`query_objects`): spectroscopic objects (``SpecObj``, one science-primary
   spectrum per object) joined to their photometry (``PhotoObj`` on ``bestObjID``), labelled by the
   spectroscopic class (STAR / GALAXY; QSO only when asked for).  The SQL is built only from typed,
   validated values (:class:`QuerySpec`): numbers are formatted by code, column and class names are
   checked against fixed whitelists, nothing from the user is spliced into the text.  SkyServer caps
   rows and time per query, so the query is paged by keyset (``objID > last``, ``TOP n``,
   ``ORDER BY objID``).  No row is lost silently: a ``COUNT`` of the same query is asked first, and
   every page is validated completely (header, every row's fields and class, objID order, and a
   short page only where the count says the query ends) *before* it is cached, so a page cut at a
   row boundary or mid-row is retried, never kept.  astroquery builds each request
   (``SDSS.query_sql_async(..., get_query_payload=True)``, its public payload builder) and
   :mod:`deepsky.archives.net` sends it.
2. **Frames** (:func:`fetch_frames`): the calibrated ``frame-{band}-{run:06d}-{camcol}-{field:04d}
   .fits.bz2`` of every (run, camcol, field) holding an object, in all five bands, from the SAS
   (astroquery's ``SDSS.IMAGING_URL_SUFFIX`` layout), downloaded by :func:`net.download`
   (resumable, validated: bzip2 magic, then decompressed with a size cap and opened as a frame,
   before the rename).  A file present in the cache is never fetched again.
3. **Cutouts** (:func:`cut_shard`): 5-band stamps aligned on the sky through each band's own WCS
   (:mod:`deepsky.cutouts`).  SDSS ``frame`` files are calibrated and sky-subtracted, in
   **nanomaggies per pixel** (HDU 0, ``BUNIT = 'nanomaggy'``; 1 nanomaggy = 22.5 AB mag), so the
   stamps are in nanomaggies with no further calibration.  Objects whose stamp leaves the frame
   (EDGE) or covers non-finite pixels (BAD_PIXELS) are counted and dropped.

Retries, back-off, time-outs and the final error (URL, status, attempts) are the network layer's
(:mod:`deepsky.archives.net`); errors here add the page and the SQL, and say how to run without
network (``stargal.source: simulated``).
"""

from __future__ import annotations

import bz2
import hashlib
import io as _io
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .. import cutouts
from ..io import atomic_path
from . import net

BANDS = "ugriz"
#: photometric columns of the object table, in order (SkyServer returns them under these names)
PHOTO_COLUMNS = (
    ["objID", "ra", "dec", "run", "rerun", "camcol", "field"]
    + [f"psfMag_{b}" for b in BANDS]
    + [f"cModelMag_{b}" for b in BANDS]
    + ["petroRad_r", "psfFWHM_r", "type"]
)
COLUMNS = PHOTO_COLUMNS + ["class"]
#: SQL for columns whose name in our tables differs from PhotoObj's (aliases fix the CSV header);
#: psfFWHM_r (r-band PSF FWHM, arcsec) feeds the star/galaxy CNN's seeing channel
SQL_EXPR = {"psfFWHM_r": "p.psffwhm_r AS psfFWHM_r"}
INT_COLUMNS = ("objID", "run", "rerun", "camcol", "field", "type")
#: spectroscopic classes SDSS assigns (SpecObj.class)
CLASSES = ("STAR", "GALAXY", "QSO")
#: PhotoObj magnitude columns a magnitude cut may use
MAG_COLUMNS = tuple(f"{kind}Mag_{b}" for kind in ("psf", "cModel", "model", "petro", "fiber") for b in BANDS)
#: data releases whose imaging frames follow the DR8+ SAS layout
RELEASES = range(8, 20)
OFFLINE_HINT = ("SDSS could not be reached or answered badly. Nothing from SDSS can be fetched "
                "without network access to it; to run offline, select the SDSS-like stand-in with "
                "`stargal: {source: simulated}` in config (or --config stargal='{source: simulated}').")

log = logging.getLogger("deepsky")


# --------------------------------------------------------------------------- typed query spec
def _int(v, key: str, lo: int, hi: int) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise ValueError(f"{key}: expected an integer, got {v!r}")
    if not lo <= int(v) <= hi:
        raise ValueError(f"{key}: {v} outside [{lo}, {hi}]")
    return int(v)


def _float(v, key: str, lo: float = -math.inf, hi: float = math.inf) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise ValueError(f"{key}: expected a number, got {v!r}")
    v = float(v)
    if not math.isfinite(v) or not lo <= v <= hi:
        raise ValueError(f"{key}: {v} is not a finite number in [{lo}, {hi}]")
    return v


def _sql_num(v: float) -> str:
    """A float as an SQL literal, formatted by code (repr round-trips exactly; never exponent-free text)."""
    v = float(v)
    if not math.isfinite(v):
        raise ValueError(f"not a finite number: {v}")
    return repr(v)


@dataclass(frozen=True)
class QuerySpec:
    """Everything that defines the object table; validated on construction.

    Magnitudes in AB-like SDSS asinh mag; ``petro_rad`` bounds in arcsec (``petroRad_r``); the sky
    region in degrees (ICRS, ``ra_min <= ra < ra_max``, ``dec_min <= dec <= dec_max``).
    """

    release: int = 17
    page_size: int = 50000
    max_objects: int = 0  # 0: no limit
    include_qso: bool = False
    mag_column: str = "cModelMag_r"
    mag_min: float = 14.0
    mag_max: float = 21.0
    petro_rad_min: float = 0.0
    petro_rad_max: float = 30.0
    ra_min: float = 0.0
    ra_max: float = 360.0
    dec_min: float = -90.0
    dec_max: float = 90.0

    def __post_init__(self):
        _int(self.release, "sdss.release", RELEASES.start, RELEASES.stop - 1)
        _int(self.page_size, "sdss.page_size", 1, 500000)
        _int(self.max_objects, "sdss.max_objects", 0, 100_000_000)
        if not isinstance(self.include_qso, bool):
            raise ValueError(f"sdss.include_qso: expected true or false, got {self.include_qso!r}")
        if self.mag_column not in MAG_COLUMNS:
            raise ValueError(f"sdss.cuts.mag_column: {self.mag_column!r} is not one of {list(MAG_COLUMNS)}")
        for key, lo, hi in (("mag_min", 0, 40), ("mag_max", 0, 40), ("petro_rad_min", 0, 1000),
                            ("petro_rad_max", 0, 1000), ("ra_min", 0, 360), ("ra_max", 0, 360),
                            ("dec_min", -90, 90), ("dec_max", -90, 90)):
            _float(getattr(self, key), f"sdss.cuts.{key}", lo, hi)
        for lo, hi in (("mag_min", "mag_max"), ("petro_rad_min", "petro_rad_max"),
                       ("ra_min", "ra_max"), ("dec_min", "dec_max")):
            if getattr(self, lo) >= getattr(self, hi):
                raise ValueError(f"sdss.cuts.{lo} ({getattr(self, lo)}) must be below sdss.cuts.{hi} "
                                 f"({getattr(self, hi)})")

    @classmethod
    def from_config(cls, sdss: dict) -> QuerySpec:
        """From the validated ``config['sdss']`` section (keys as in config/README.md)."""
        cuts, region = sdss.get("cuts", {}), sdss.get("cuts", {}).get("region", {})
        known = {"mag_column", "mag_min", "mag_max", "petro_rad_min", "petro_rad_max", "region"}
        if set(cuts) - known:
            raise ValueError(f"sdss.cuts: unknown keys {sorted(set(cuts) - known)}")
        return cls(release=sdss.get("release", 17), page_size=sdss.get("page_size", 50000),
                   max_objects=sdss.get("max_objects", 0), include_qso=sdss.get("include_qso", False),
                   **{k: v for k, v in cuts.items() if k != "region"}, **region)

    @property
    def classes(self) -> tuple[str, ...]:
        return CLASSES if self.include_qso else ("STAR", "GALAXY")

    def digest(self) -> str:
        """Short content hash naming this query's page cache (same spec -> same folder)."""
        blob = json.dumps(asdict(self), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]


def _where(spec: QuerySpec) -> list[str]:
    """The WHERE clauses of the object query (without the keyset clause)."""
    if not all(c in CLASSES for c in spec.classes):  # whitelist, checked again at the splice point
        raise ValueError(f"unknown spectroscopic class in {spec.classes}")
    classes = ", ".join(f"'{c}'" for c in spec.classes)
    return [
        "p.clean = 1",
        "s.zWarning = 0",
        f"s.class IN ({classes})",
        f"p.{spec.mag_column} >= {_sql_num(spec.mag_min)}",
        f"p.{spec.mag_column} < {_sql_num(spec.mag_max)}",
        f"p.petroRad_r >= {_sql_num(spec.petro_rad_min)}",
        f"p.petroRad_r < {_sql_num(spec.petro_rad_max)}",
        f"p.ra >= {_sql_num(spec.ra_min)}",
        f"p.ra < {_sql_num(spec.ra_max)}",
        f"p.dec >= {_sql_num(spec.dec_min)}",
        f"p.dec <= {_sql_num(spec.dec_max)}",
    ]


_FROM = "FROM PhotoObj AS p JOIN SpecObj AS s ON s.bestObjID = p.objID"


def build_query(spec: QuerySpec, after_objid: int, top: int) -> str:
    """SkyServer SQL for one page: the first ``top`` objects with objID > ``after_objid``."""
    after_objid = _int(after_objid, "after_objid", -1, 2**63 - 1)
    top = _int(top, "top", 1, 500000)
    cols = ", ".join(SQL_EXPR.get(c, f"p.{c}") for c in PHOTO_COLUMNS) + ", s.class"
    where = [f"p.objID > {after_objid:d}"] + _where(spec)
    return f"SELECT TOP {top:d} {cols} {_FROM} WHERE {' AND '.join(where)} ORDER BY p.objID"


#: columns of the count query's answer
COUNT_COLUMNS = ["n_rows", "n_objects"]


def build_count_query(spec: QuerySpec) -> str:
    """SkyServer SQL counting the rows and the distinct objects the paged query walks through."""
    return (f"SELECT COUNT(*) AS n_rows, COUNT(DISTINCT p.objID) AS n_objects {_FROM} "
            f"WHERE {' AND '.join(_where(spec))}")


def sql_url(skyserver_url: str, release: int) -> str:
    """SkyServer's SQL endpoint for a release (astroquery's public ``QUERY_URL_SUFFIX_*`` layouts)."""
    from astroquery.sdss import SDSS

    release = _int(release, "sdss.release", RELEASES.start, RELEASES.stop - 1)
    suffix = (SDSS.QUERY_URL_SUFFIX_DR_OLD if release < 10 else SDSS.QUERY_URL_SUFFIX_DR_10 if release == 10
              else SDSS.QUERY_URL_SUFFIX_DR_NEW)
    return skyserver_url.rstrip("/") + suffix.format(dr=release)


def sql_payload(sql: str, release: int) -> dict:
    """The GET parameters astroquery sends for ``sql`` (cmd, format=csv, searchtool), built by astroquery."""
    from astroquery.sdss import SDSS

    return SDSS.query_sql_async(sql, data_release=release, get_query_payload=True)


# --------------------------------------------------------------------------- SkyServer CSV
def _csv_lines(text: str, source: str) -> list[str]:
    if "error_message" in text or net.looks_like_html(text[:1024].encode()):
        raise net.Invalid(f"{source}: SkyServer answered with an error page: {text[:300]!r}")
    lines = text.splitlines()
    while lines and lines[0].startswith("#"):
        lines.pop(0)
    if not lines:
        raise net.Invalid(f"{source}: empty answer (no CSV header)")
    return lines


def parse_page(text: str, after_objid: int, top: int, source: str = "response",
               classes: tuple[str, ...] = CLASSES) -> pd.DataFrame:
    """Parse and check one SkyServer CSV answer (``#Table1`` line, header, rows) completely.

    Raises :class:`net.Invalid` when the text is not the table we asked for: an error page, other
    columns, a row with missing or extra fields (a row cut short), non-numeric or empty values, a
    class outside ``classes`` (a class name cut short), objIDs out of order or more than ``top`` rows.
    """
    lines = _csv_lines(text, source)
    header = [h.strip() for h in lines[0].split(",")]
    if header != COLUMNS:
        raise net.Invalid(f"{source}: malformed CSV: columns {header} instead of {COLUMNS}")
    for k, line in enumerate(lines[1:], start=2):
        if line.count(",") != len(COLUMNS) - 1:
            raise net.Invalid(f"{source}: malformed CSV: line {k} has {line.count(',') + 1} fields, "
                              f"expected {len(COLUMNS)} (a row cut short?): {line[:200]!r}")
    try:
        df = pd.read_csv(_io.StringIO("\n".join(lines)), dtype={"class": str}, skipinitialspace=True)
        for c in INT_COLUMNS:
            df[c] = pd.to_numeric(df[c], errors="raise").astype(np.int64)
        for c in PHOTO_COLUMNS:
            if c not in INT_COLUMNS:
                df[c] = pd.to_numeric(df[c], errors="raise").astype(np.float64)
    except (ValueError, TypeError, pd.errors.ParserError) as exc:
        raise net.Invalid(f"{source}: malformed CSV: {exc}") from exc
    if df[PHOTO_COLUMNS].isna().any().any() or df["class"].isna().any():
        raise net.Invalid(f"{source}: malformed CSV: empty values")
    df["class"] = df["class"].str.strip().str.upper()
    bad = sorted(set(df["class"]) - set(classes))
    if bad:
        raise net.Invalid(f"{source}: classes {bad} that the query excluded (a row cut short?)")
    if len(df) > top:
        raise net.Invalid(f"{source}: {len(df)} rows for TOP {top}")
    ids = df["objID"].to_numpy()
    if len(ids) and (ids[0] <= after_objid or np.any(np.diff(ids) < 0)):
        raise net.Invalid(f"{source}: objIDs not ascending after {after_objid}")
    return df


def parse_count(text: str, source: str = "response") -> tuple[int, int]:
    """(rows, distinct objects) from the answer to :func:`build_count_query`."""
    lines = _csv_lines(text, source)
    header = [h.strip() for h in lines[0].split(",")]
    rows = [line for line in lines[1:] if line.strip()]
    if header != COUNT_COLUMNS or len(rows) != 1:
        raise net.Invalid(f"{source}: expected one row of {COUNT_COLUMNS}, got {lines[:3]!r}")
    try:
        n_rows, n_objects = (int(v) for v in rows[0].split(","))
    except ValueError as exc:
        raise net.Invalid(f"{source}: counts are not integers: {rows[0]!r}") from exc
    if not 0 <= n_objects <= n_rows:
        raise net.Invalid(f"{source}: impossible counts {n_rows} rows, {n_objects} objects")
    return n_rows, n_objects


def query_objects(spec: QuerySpec, pages_dir: str | Path, skyserver_url: str, policy: net.Policy,
                  sleep: Callable[[float], None] = time.sleep) -> pd.DataFrame:
    """All objects of ``spec``, paged by objID; answers cached in ``pages_dir`` (resumes, never re-asks).

    First a COUNT of the same query (rows and distinct objIDs), then pages of ``TOP page_size``.
    A page is kept only after it has been validated completely, including against the count: a page
    shorter than asked for ends the query, so it must bring the distinct objects seen to exactly the
    count (otherwise rows were lost: the page was cut at a row boundary), and no page may bring
    them above it.  Pages are cached under names keyed by their request (``page{k}-<key>.csv``);
    the count is cached only once every page agreed with it, so a wrong count is asked again.
    Every error names the page (or the count), the SQL and the cache folder.
    """
    pages_dir = Path(pages_dir)
    pages_dir.mkdir(parents=True, exist_ok=True)
    url = sql_url(skyserver_url, spec.release)
    count_sql = build_count_query(spec)
    spec_file = pages_dir / "query.json"
    if not spec_file.exists():
        with atomic_path(spec_file) as tmp:
            tmp.write_text(json.dumps({"spec": asdict(spec), "first_page_sql": build_query(spec, 0, 1),
                                       "count_sql": count_sql}, indent=2, sort_keys=True) + "\n")
    query = f"query {spec.digest()} (DR{spec.release}, {pages_dir})"

    count_params = sql_payload(count_sql, spec.release)
    count_cache = net.cache_file(pages_dir, "GET", url, count_params, prefix="count", suffix=".csv")
    count_what = f"SkyServer COUNT of {query}"
    # read from the cache when there, but written to it only at the end (see above)
    count_body, (n_rows, n_objects) = net.fetch(
        url, params=count_params, what=count_what, policy=policy, expect="SkyServer CSV",
        validate=lambda body: parse_count(body.decode("utf-8", "replace"), count_what),
        cache=count_cache if count_cache.exists() else None, hint=OFFLINE_HINT, note=f"SQL: {count_sql}",
        sleep=sleep)
    log.info(f"{query}: COUNT says {n_objects} objects in {n_rows} rows")

    frames, seen, total, after, k = [], set(), 0, 0, 0
    while True:
        limit = spec.max_objects - total if spec.max_objects else spec.page_size
        top = min(spec.page_size, limit)
        if top <= 0:
            break
        sql = build_query(spec, after, top)
        params = sql_payload(sql, spec.release)
        what = f"SkyServer page {k} (objID > {after}, TOP {top}) of {query}"

        def validate(body: bytes, after=after, top=top, what=what) -> pd.DataFrame:
            df = parse_page(body.decode("utf-8", "replace"), after, top, source=what, classes=spec.classes)
            n_seen = len(seen.union(df["objID"].tolist()))
            if n_seen > n_objects:
                raise net.Invalid(f"{what}: brings the query to {n_seen} distinct objects, more than the "
                                  f"{n_objects} its COUNT gave")
            if len(df) < top and n_seen != n_objects:
                raise net.Invalid(f"{what}: {len(df)} rows for TOP {top} end the query at {n_seen} distinct "
                                  f"objects, but its COUNT gave {n_objects}: rows are missing (answer cut "
                                  f"at a row boundary?) or the count is wrong")
            return df

        page_cache = net.cache_file(pages_dir, "GET", url, params, prefix=f"page{k:05d}", suffix=".csv")
        _, df = net.fetch(url, params=params, what=what, policy=policy, expect="SkyServer CSV",
                          validate=validate, cache=page_cache, hint=OFFLINE_HINT, note=f"SQL: {sql}", sleep=sleep)
        log.info(f"page {k}: {len(df)} rows, kept in {page_cache.name}")
        frames.append(df)
        seen.update(df["objID"].tolist())
        total += len(df)
        k += 1
        if len(df) < top:
            break
        after = int(df["objID"].iloc[-1])
    if not count_cache.exists():
        with atomic_path(count_cache) as tmp:  # every page agreed with it: keep it
            tmp.write_bytes(count_body)
    objects = pd.concat(frames, ignore_index=True) if frames else parse_page(",".join(COLUMNS), 0, 1)
    return finalize_objects(objects, spec)


def finalize_objects(df: pd.DataFrame, spec: QuerySpec) -> pd.DataFrame:
    """One row per objID (first spectrum kept), ``is_star`` label added (classes: checked per page).

    ``is_star`` is True for spectroscopic STARs and, when ``include_qso``, for QSOs (point sources).
    """
    df = df.drop_duplicates("objID", keep="first").sort_values("objID", kind="stable").reset_index(drop=True)
    df["is_star"] = df["class"].isin(["STAR", "QSO"]).to_numpy(bool)
    return df


# --------------------------------------------------------------------------- frames
def frame_name(band: str, run: int, camcol: int, fld: int) -> str:
    return f"frame-{band}-{run:06d}-{camcol}-{fld:04d}.fits.bz2"


def frame_url(sas_url: str, release: int, rerun: int, run: int, camcol: int, fld: int, band: str) -> str:
    """SAS URL of one calibrated frame (astroquery's ``SDSS.IMAGING_URL_SUFFIX`` layout)."""
    from astroquery.sdss import SDSS

    if band not in BANDS:
        raise ValueError(f"band {band!r} is not one of {list(BANDS)}")
    release = _int(release, "sdss.release", RELEASES.start, RELEASES.stop - 1)
    instrument = "boss" if release <= 12 else "eboss" if release <= 17 else "prior-surveys/sdss4-dr17-eboss"
    return SDSS.IMAGING_URL_SUFFIX.format(base=sas_url.rstrip("/"), dr=release, instrument=instrument,
                                          rerun=int(rerun), run=int(run), camcol=int(camcol),
                                          field=int(fld), band=band)


def frame_path(frames_dir: str | Path, run: int, camcol: int, fld: int, band: str) -> Path:
    return Path(frames_dir) / str(int(run)) / str(int(camcol)) / str(int(fld)) / frame_name(band, run, camcol, fld)


#: Largest decompressed frame accepted, bytes.  A DR8+ frame is a 2048 x 1489 float32 image
#: (12.2 MB) plus small calibration, sky and astrometry HDUs: about 12.5 MB in all.  32 MiB is 2.5x
#: that, so no real frame comes near it, while a decompression bomb stops at 32 MiB of memory.
MAX_FRAME_BYTES = 32 * 2**20


class FrameTooLarge(net.Fatal):
    """A frame that decompresses to more than the cap: not an SDSS frame (a bomb, or the wrong file)."""


def decompress_frame(path: str | Path, max_bytes: int = MAX_FRAME_BYTES, source: str | None = None) -> _io.BytesIO:
    """The decompressed bytes of a bzip2 file, streamed in 256 KiB steps and stopped at ``max_bytes``.

    Memory stays below ``max_bytes`` plus a few steps whatever the file expands to.  ValueError naming
    the file if it is not complete bzip2; :class:`FrameTooLarge` if it expands beyond the cap.
    """
    source = source or str(path)
    out = _io.BytesIO()
    try:
        with bz2.open(path, "rb") as fh:
            while chunk := fh.read(1 << 18):
                if out.tell() + len(chunk) > max_bytes:
                    raise FrameTooLarge(
                        f"{source}: decompresses to more than {max_bytes / 2**20:.0f} MiB, the cap for an SDSS "
                        f"frame (real frames are about 12.5 MB): not a frame (a decompression bomb?); "
                        f"a file in the frame cache can be deleted, the next run fetches it again")
                out.write(chunk)
    except (OSError, EOFError) as exc:
        raise ValueError(f"{source}: not a complete bzip2 file ({exc})") from exc
    out.seek(0)
    return out


def read_frame(path: str | Path, source: str | None = None, max_bytes: int = MAX_FRAME_BYTES) -> cutouts.Band:
    """HDU 0 of an SDSS frame (nanomaggies/pixel) with its WCS; ValueError if corrupt or not a frame.

    The bzip2 file is decompressed with a size cap (:func:`decompress_frame`, ``max_bytes``).
    """
    from astropy.io import fits
    from astropy.wcs import WCS

    source = source or str(path)
    raw = decompress_frame(path, max_bytes, source)
    try:
        with fits.open(raw, memmap=False) as hdul:
            hdr, data = hdul[0].header, hdul[0].data
            if data is None or data.ndim != 2:
                raise ValueError("HDU 0 holds no 2-D image")
            data = np.array(data, dtype=np.float32)
            wcs = WCS(hdr)
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise ValueError(f"{source}: not a readable SDSS frame ({exc})") from exc
    unit = str(hdr.get("BUNIT", "nanomaggy")).strip().lower()
    if unit not in ("nanomaggy", "nanomaggies", "nmgy"):
        raise ValueError(f"{source}: BUNIT is {hdr['BUNIT']!r}, expected nanomaggy (calibrated frame)")
    if not wcs.has_celestial:
        raise ValueError(f"{source}: HDU 0 has no celestial WCS")
    return cutouts.Band(image=data, wcs=wcs, name=str(hdr.get("FILTER", "")).strip())


def fetch_frame(url: str, dest: str | Path, policy: net.Policy, sleep: Callable[[float], None] = time.sleep,
                max_bytes: int = MAX_FRAME_BYTES) -> bool:
    """Download ``url`` to ``dest`` unless present; True if it was fetched, False if cached.

    Through :func:`net.download`: resumable, and renamed into place only once it starts like bzip2
    and decompresses (within ``max_bytes``) to a readable frame.  An unreadable answer is retried;
    an oversized one is not (the same file would expand the same way).
    """

    def validate(part: Path) -> None:
        try:
            read_frame(part, source=f"download of {url}", max_bytes=max_bytes)
        except FrameTooLarge:
            raise
        except ValueError as exc:
            raise net.Invalid(str(exc)) from exc

    return net.download(url, dest, what=f"SDSS frame {Path(dest).name}", policy=policy, magic=(b"BZh",),
                        expect="a bzip2-compressed FITS frame", validate=validate, hint=OFFLINE_HINT, sleep=sleep)


def fields_of(objects: pd.DataFrame) -> pd.DataFrame:
    """Distinct (run, rerun, camcol, field) of an object table, sorted."""
    cols = ["run", "rerun", "camcol", "field"]
    return objects[cols].drop_duplicates().sort_values(cols, kind="stable").reset_index(drop=True)


def fetch_frames(objects: pd.DataFrame, frames_dir: str | Path, sas_url: str, release: int,
                 policy: net.Policy, sleep: Callable[[float], None] = time.sleep,
                 progress: Callable[[int, int], None] | None = None) -> pd.DataFrame:
    """Every band of every field holding an object, cached under ``frames_dir``; a manifest table.

    Manifest columns: run, rerun, camcol, field, band, path (relative to ``frames_dir``), url,
    bytes, sha256, fetched (False when it came from the cache).
    """
    frames_dir = Path(frames_dir)
    fields = fields_of(objects)
    rows = []
    for i, f in enumerate(fields.itertuples(index=False)):
        for band in BANDS:
            url = frame_url(sas_url, release, f.rerun, f.run, f.camcol, f.field, band)
            dest = frame_path(frames_dir, f.run, f.camcol, f.field, band)
            fetched = fetch_frame(url, dest, policy, sleep)
            data = dest.read_bytes()
            rows.append({"run": int(f.run), "rerun": int(f.rerun), "camcol": int(f.camcol),
                         "field": int(f.field), "band": band,
                         "path": dest.relative_to(frames_dir).as_posix(), "url": url,
                         "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                         "fetched": fetched})
        if progress:
            progress(i + 1, len(fields))
    return pd.DataFrame(rows, columns=["run", "rerun", "camcol", "field", "band", "path", "url",
                                       "bytes", "sha256", "fetched"])


# --------------------------------------------------------------------------- shards and cutouts
def assign_shards(objects: pd.DataFrame, n_shards: int) -> list[pd.DataFrame]:
    """Objects split into ``n_shards`` contiguous blocks of objID order (deterministic).

    objID encodes run, camcol and field, so a block touches few fields: each shard opens few frames.
    """
    n_shards = _int(n_shards, "sdss.shards", 1, 100000)
    order = objects.sort_values("objID", kind="stable").reset_index(drop=True)
    bounds = np.linspace(0, len(order), n_shards + 1).round().astype(int)
    return [order.iloc[bounds[i]:bounds[i + 1]].reset_index(drop=True) for i in range(n_shards)]


@dataclass
class CutoutReport:
    """Counts of one shard's cutouts (what was kept and why the rest was dropped)."""

    objects: int = 0
    kept: int = 0
    dropped_edge: int = 0
    dropped_bad_pixels: int = 0
    fields: int = 0
    dropped_ids: list = field(default_factory=list)

    def as_dict(self) -> dict:
        d = asdict(self)
        d["dropped"] = self.objects - self.kept
        return d


def cut_shard(objects: pd.DataFrame, frames_dir: str | Path, stamp: int, pixel_scale: float,
              release: int, shard: int,
              progress: Callable[[int, int], None] | None = None
              ) -> tuple[np.ndarray, pd.DataFrame, CutoutReport]:
    """ugriz stamps (N, 5, stamp, stamp) float32 in nanomaggies/pixel, the kept rows, and counts.

    ``pixel_scale`` is the stamp grid in arcsec/px (SDSS native 0.396).  Every band is resampled at
    the positions its own WCS gives for the object's (ra, dec), so the bands align on the sky.
    """
    report = CutoutReport(objects=len(objects))
    keep_images, keep_rows = [], []
    groups = list(objects.groupby(["run", "camcol", "field"], sort=True))
    report.fields = len(groups)
    for g, ((run, camcol, fld), rows) in enumerate(groups):
        bands = [read_frame(frame_path(frames_dir, run, camcol, fld, b)) for b in BANDS]
        for b, band in zip(BANDS, bands):
            band.name = b
        images, flags = cutouts.cut(bands, rows["ra"].to_numpy(), rows["dec"].to_numpy(), stamp, pixel_scale)
        ok = flags == cutouts.OK
        report.dropped_edge += int(((flags & cutouts.EDGE) > 0).sum())
        report.dropped_bad_pixels += int((((flags & cutouts.BAD_PIXELS) > 0) & ((flags & cutouts.EDGE) == 0)).sum())
        report.dropped_ids.extend(int(x) for x in rows["objID"].to_numpy()[~ok])
        keep_images.append(images[ok])
        keep_rows.append(rows[ok])
        if progress:
            progress(g + 1, len(groups))
    images = (np.concatenate(keep_images) if keep_images
              else np.zeros((0, len(BANDS), stamp, stamp), np.float32)).astype(np.float32)
    cat = (pd.concat(keep_rows) if keep_rows else objects.iloc[:0]).copy()
    order = np.argsort(cat["objID"].to_numpy(), kind="stable")
    images, cat = images[order], cat.iloc[order].reset_index(drop=True)
    report.kept = len(cat)
    cat.insert(0, "id", [f"sdss-dr{release}-{int(o)}" for o in cat["objID"]])
    cat["flags"] = np.zeros(len(cat), np.int32)
    cat["dataset"] = "sdss"
    cat["shard"] = np.full(len(cat), shard, np.int32)
    cat["release"] = np.full(len(cat), release, np.int32)
    cat["pixel_scale"] = float(pixel_scale)
    cat["flux_unit"] = "nanomaggy"
    cat["frames"] = [f"{int(r)}/{int(c)}/{int(f)}" for r, c, f in zip(cat["run"], cat["camcol"], cat["field"])]
    return images, cat, report
