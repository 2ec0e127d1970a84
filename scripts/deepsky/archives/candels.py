"""Live CANDELS target: van der Wel et al. (2012) GALFIT sizes + F160W mosaic cutouts.

* Catalogue: VizieR J/ApJS/203/24 (GALFIT single-Sersic fits to CANDELS WFC3/IR, all fields and
  filters): astroquery's VizieR interface builds the request (``get_catalogs_async(...,
  get_query_payload=True)``, public), :mod:`deepsky.archives.net` sends it (retries, validation,
  the VOTable answer cached by request under ``resources/candels/vizier/``), astropy parses it
  the way astroquery does; the rows are kept as Parquet under ``resources/candels/``.  The reference
  size is GALFIT's effective radius ``r``, which is the **semi-major axis** of the half-light
  ellipse (GALFIT's R_e convention; van der Wel et al. 2012 sect. 3), in arcsec.  The simulations
  label the *circularised* radius sqrt(a*b), so ``r_e_arcsec = r * sqrt(q)`` and the catalogue
  value is kept as ``r_e_major_arcsec``.
* Mosaic: a CANDELS F160W drizzled mosaic (0.06"/px), given in config as a local path or a URL,
  downloaded once by :func:`net.download` (resumable, checked to be FITS, optional SHA-256) into a
  cache keyed by the URL and linked to the rule's output, so a rerun after a code change does not
  download it again.
* Cutouts: stamps at catalogue positions through the mosaic's WCS with ``cutouts.cut`` (windowed:
  the mosaic is memory-mapped, never copied), written in the ``deepsky.io`` shard format.

No Snakemake import here; network errors name the URL and suggest the offline target.
"""

from __future__ import annotations

import io as _io
import os
import re
import urllib.parse
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from .. import cutouts, io
from . import net

OFFLINE_HINT = "Without network access, use the offline target: set `transfer.target: simulated_hst`"

#: catalogue columns we need -> VizieR column names tried in order (case-insensitive); config
#: ``candels.columns`` puts its own names first.
COLUMN_ALIASES: dict[str, list[str]] = {
    "id": ["Seq", "ID", "NUMBER", "Num"],
    "field": ["Field", "Fld"],
    "ra": ["RAJ2000", "_RAJ2000", "RA_ICRS", "RAdeg", "RA"],
    "dec": ["DEJ2000", "_DEJ2000", "DE_ICRS", "DEdeg", "DEC", "DE"],
    "filter": ["F", "Filt", "Filter", "Band"],
    "flag": ["Q", "f", "Flag", "Qflag"],
    "mag": ["mag", "Hmag", "F160W"],
    "r_e": ["r", "re", "Re", "Reff"],
    "sersic_n": ["n", "nSer"],
    "q": ["q", "b/a", "ba"],
    "pa": ["PA", "pa"],
    "snr": ["S/N", "SN", "sn", "SNR"],
}
REQUIRED = ("ra", "dec", "flag", "r_e", "sersic_n", "q")


# --------------------------------------------------------------------------- catalogue
def catalogue_slug(catalog: str) -> str:
    """File-name-safe form of a VizieR catalogue name: 'J/ApJS/203/24' -> 'J_ApJS_203_24'."""
    return re.sub(r"[^A-Za-z0-9]+", "_", catalog).strip("_")


def vizier_url(server: str) -> str:
    """VizieR's VOTable endpoint: ``server`` is a mirror host (https, as astroquery uses it) or a base
    URL with scheme (``http://127.0.0.1:8000`` in the tests)."""
    base = server.rstrip("/") if "://" in server else f"https://{server.strip('/')}"
    return base + "/viz-bin/votable"


def vizier_payload(catalog: str) -> str:
    """The POST body astroquery sends for every column (``**``) of every row of ``catalog``."""
    from astroquery.vizier import VizierClass

    return VizierClass(columns=["**"], row_limit=-1).get_catalogs_async(catalog, get_query_payload=True)


def parse_votable(body: bytes, source: str) -> dict:
    """Tables of a VizieR VOTable answer by name, as astroquery's parser names and stacks them.

    :class:`net.Invalid` if the answer is not a readable VOTable.
    """
    import warnings

    from astropy.io import votable
    from astropy.table import vstack

    if not body.lstrip().startswith((b"<?xml", b"<VOTABLE")):
        raise net.Invalid(f"{source}: not a VOTable: starts with {body[:80]!r}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tree = votable.parse(_io.BytesIO(body), verify="ignore")
            tables: dict = {}
            for t in tree.iter_tables():
                if len(t.array) > 0:
                    name = tree.get_table_by_id(t.ref).name if t.ref is not None else t.name
                    tables.setdefault(name, []).append(t.to_table(use_names_over_ids=True))
    except Exception as exc:  # astropy raises many kinds for a broken document
        raise net.Invalid(f"{source}: unreadable VOTable ({type(exc).__name__}: {exc})") from exc
    return {name: (ts[0] if len(ts) == 1 else vstack(ts)) for name, ts in tables.items()}


def query_catalogue(catalog: str, server: str, policy: net.Policy, cache_dir: str | os.PathLike | None = None,
                    log: Callable[[str], None] = print) -> pd.DataFrame:
    """Every row of every table of a VizieR catalogue as one DataFrame (column ``_table`` names the table).

    The VOTable answer is kept in ``cache_dir`` under a name keyed by the request: asking again
    (e.g. after the Parquet output was removed by a code change) reads it instead of VizieR.
    """
    url, payload = vizier_url(server), vizier_payload(catalog)
    what = f"VizieR query of {catalog}"
    cache = None
    if cache_dir is not None:
        cache = net.cache_file(cache_dir, "POST", url, data=payload, prefix=catalogue_slug(catalog), suffix=".vot")
    _, tables = net.fetch(url, method="POST", data=payload, what=what, policy=policy, expect="a VOTable",
                          validate=lambda body: parse_votable(body, f"{what} at {url}"), cache=cache,
                          hint=OFFLINE_HINT)
    if len(tables) == 0:
        raise ValueError(f"VizieR at {url} returned no table for catalogue {catalog!r} (is the name right?)")
    frames = []
    for name, t in tables.items():
        df = t.to_pandas() if len(t) else pd.DataFrame({c: [] for c in t.colnames})
        for c in df.columns:  # masked integers come back as nullable; bytes as str
            if df[c].dtype == object:
                df[c] = df[c].map(lambda v: v.decode() if isinstance(v, bytes) else v)
        df.insert(0, "_table", name)
        frames.append(df)
    out = pd.concat(frames, ignore_index=True)
    log(f"VizieR {catalog}: {len(out)} rows in {len(frames)} table(s) {list(tables)}")
    return out


def fetch_catalogue(catalog: str, server: str, cache: str | os.PathLike, policy: net.Policy | None = None,
                    cache_dir: str | os.PathLike | None = None, log: Callable[[str], None] = print) -> pd.DataFrame:
    """The raw catalogue from the Parquet ``cache``, else from VizieR (answer kept in ``cache_dir``,
    default ``<cache folder>/vizier``) and written to ``cache``."""
    cache = Path(cache)
    if cache.exists():
        log(f"catalogue {catalog}: using cache {cache}")
        return pd.read_parquet(cache)
    cache_dir = cache.parent / "vizier" if cache_dir is None else cache_dir
    raw = query_catalogue(catalog, server, policy or net.Policy(), cache_dir, log=log)
    io.write_parquet(cache, raw)
    return raw


def _resolve(columns: list[str], key: str, override: dict) -> str | None:
    lower = {c.lower(): c for c in columns}
    names = ([override[key]] if override.get(key) else []) + COLUMN_ALIASES[key]
    for n in names:
        if n in columns:
            return n
        if n.lower() in lower:
            return lower[n.lower()]
    return None


def normalise_catalogue(raw: pd.DataFrame, band: str | None = "H", keep_flags=(0,),
                        columns: dict | None = None) -> pd.DataFrame:
    """VizieR rows -> the deepsky catalogue: one row per galaxy with a good F160W fit.

    Output columns: id, field, ra, dec (deg), r_e_arcsec (circularised = r*sqrt(q), arcsec),
    r_e_major_arcsec (GALFIT semi-major R_e, arcsec), sersic_n, q, pa_deg, mag, flag, snr (NaN when
    the catalogue has none).  Rows are kept when the filter column equals ``band`` (if the
    catalogue has one) and ``flag`` is in ``keep_flags``, and r, n, q are finite and positive.
    Sorted by id, so shards are deterministic.
    """
    columns = columns or {}
    cols = {k: _resolve(list(raw.columns), k, columns) for k in COLUMN_ALIASES}
    missing = [k for k in REQUIRED if cols[k] is None]
    if missing:
        raise ValueError(f"catalogue lacks columns for {missing} (tried {[COLUMN_ALIASES[k] for k in missing]}); "
                         f"it has {list(raw.columns)}: name them under candels.columns")
    df = raw
    if band is not None and cols["filter"] is not None:
        df = df[df[cols["filter"]].astype(str).str.strip() == band]
        if df.empty:
            raise ValueError(f"no catalogue rows with {cols['filter']} == {band!r} (candels.band); "
                             f"values present: {sorted(raw[cols['filter']].astype(str).unique())[:10]}")
    flag = pd.to_numeric(df[cols["flag"]], errors="coerce")
    num = {k: pd.to_numeric(df[cols[k]], errors="coerce").to_numpy(float)
           for k in ("ra", "dec", "r_e", "sersic_n", "q")}
    good = np.array(flag.isin(list(keep_flags)), dtype=bool)
    good &= np.isfinite(num["r_e"]) & (num["r_e"] > 0) & np.isfinite(num["sersic_n"]) & (num["sersic_n"] > 0)
    good &= np.isfinite(num["q"]) & (num["q"] > 0) & (num["q"] <= 1) & np.isfinite(num["ra"]) & np.isfinite(num["dec"])
    df = df[good]
    sel = {k: v[good] for k, v in num.items()}
    if cols["id"] is not None:
        seq = df[cols["id"]].astype(str).str.strip()
        if cols["field"] is not None:
            seq = df[cols["field"]].astype(str).str.strip() + "-" + seq
        ids = ("vdw12-" + seq).to_numpy()
    else:  # no id column: name galaxies by position (stable across runs)
        ids = np.array([f"vdw12-{r:.6f}{d:+.6f}" for r, d in zip(sel["ra"], sel["dec"])])

    def opt(key):
        return pd.to_numeric(df[cols[key]], errors="coerce").to_numpy(float) if cols[key] else np.full(len(df), np.nan)

    out = pd.DataFrame({
        "id": ids,
        "field": df[cols["field"]].astype(str).to_numpy() if cols["field"] else "",
        "ra": sel["ra"], "dec": sel["dec"],
        "r_e_arcsec": sel["r_e"] * np.sqrt(sel["q"]),
        "r_e_major_arcsec": sel["r_e"],
        "sersic_n": sel["sersic_n"], "q": sel["q"],
        "pa_deg": opt("pa"), "mag": opt("mag"),
        "flag": flag[good].to_numpy().astype(np.int32),
        "snr": opt("snr"),
    })
    if out["id"].duplicated().any():
        raise ValueError(f"{int(out['id'].duplicated().sum())} duplicate galaxy ids after selection "
                         f"(set candels.band so each galaxy appears once)")
    return out.sort_values("id", kind="stable").reset_index(drop=True)


# --------------------------------------------------------------------------- mosaic
def is_url(source: str) -> bool:
    return urllib.parse.urlparse(str(source)).scheme in ("http", "https", "ftp")


def mosaic_name(source: str) -> str:
    """File name a mosaic URL is stored under in resources/candels/."""
    name = Path(urllib.parse.urlparse(source).path).name
    if not name:
        raise ValueError(f"candels.mosaic URL {source!r} has no file name in its path")
    return name


#: leading bytes of the mosaic files we accept: FITS, or FITS compressed by gzip / bzip2
MOSAIC_MAGIC = (b"SIMPLE  =", b"\x1f\x8b", b"BZh")


def mosaic_cache_path(url: str, cache_dir: str | os.PathLike) -> Path:
    """Where a mosaic URL is kept: ``cache_dir/<request key>/<file name>`` (keyed by the URL)."""
    return net.cache_file(cache_dir, "GET", url) / mosaic_name(url)


def fetch_mosaic(url: str, dest: str | os.PathLike, cache_dir: str | os.PathLike, policy: net.Policy | None = None,
                 sha256: str | None = None, log: Callable[[str], None] = print) -> Path:
    """The mosaic at ``url`` as ``dest``: downloaded once into ``cache_dir``, then hard-linked (or copied).

    The download (:func:`net.download`) is resumable, must start like FITS (plain, gzip or bzip2)
    and, when given, match ``sha256``; the cached copy is kept apart from ``dest`` so that a rerun
    of the rule (which removes its output first) links it again instead of downloading gigabytes.
    """
    dest, cached = Path(dest), mosaic_cache_path(url, cache_dir)
    fetched = net.download(url, cached, what=f"mosaic {mosaic_name(url)}", policy=policy or net.Policy(),
                           magic=MOSAIC_MAGIC, expect="a FITS mosaic", sha256=sha256, hint=OFFLINE_HINT)
    if not fetched:
        if sha256 and io.file_digest(cached) != sha256.lower():
            raise ValueError(f"{cached}: SHA-256 differs from candels.mosaic_sha256 {sha256}; delete it to "
                             f"download {url} again")
        log(f"{url}: in the cache {cached}, not downloaded again")
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.unlink(missing_ok=True)
    try:
        os.link(cached, dest)
    except OSError:  # another file system, or links not allowed: copy (atomically)
        import shutil

        with io.atomic_path(dest) as tmp:
            shutil.copyfile(cached, tmp)
    os.utime(dest)  # newer than the rule's inputs, or Snakemake would think it stale
    return dest


def open_mosaic(path: str | os.PathLike, hdu: int | str | None = None) -> cutouts.Band:
    """The mosaic's image (memory-mapped) and celestial WCS as a ``cutouts.Band``.

    ``hdu`` None: the first HDU with 2-D data and a celestial WCS.
    """
    from astropy.io import fits
    from astropy.wcs import WCS

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"mosaic {path} does not exist (candels.mosaic)")
    hdul = fits.open(path, memmap=True)  # kept open for the memory map; closed with the process
    candidates = [hdul[hdu]] if hdu is not None else list(hdul)
    for h in candidates:
        if h.data is not None and getattr(h.data, "ndim", 0) == 2:
            wcs = WCS(h.header)
            if wcs.has_celestial:
                return cutouts.Band(h.data, wcs, name=path.name)
            if hdu is not None:
                break
    raise ValueError(f"{path}: no 2-D image HDU with a celestial WCS (CTYPE RA---TAN/DEC--TAN, CRVAL, CD)")


def shard_rows(n_rows: int, shards: int, shard: int) -> np.ndarray:
    """Row indices of one shard: contiguous, near-equal parts of the id-sorted catalogue."""
    if not 0 <= shard < shards:
        raise ValueError(f"shard {shard} outside 0..{shards - 1}")
    return np.array_split(np.arange(n_rows), shards)[shard]


def in_footprint(band: cutouts.Band, ra, dec) -> np.ndarray:
    """True where a sky position (deg) falls on the image's pixel grid."""
    x, y = band.wcs.all_world2pix(np.asarray(ra, float), np.asarray(dec, float), 0)
    ny, nx = band.image.shape
    return np.isfinite(x) & np.isfinite(y) & (x >= -0.5) & (x <= nx - 0.5) & (y >= -0.5) & (y <= ny - 0.5)


def cutout_shard(band: cutouts.Band, cat: pd.DataFrame, cfg: dict, shard: int, provenance: dict,
                 log: Callable[[str], None] = print) -> tuple[np.ndarray, pd.DataFrame]:
    """One shard of F160W stamps (N, 1, stamp, stamp) float32 + catalogue (label r_e_arcsec, circularised).

    Galaxies outside the mosaic (the catalogue covers five fields) are left out; stamps touching the
    image edge or blank/NaN pixels carry ``cutout_flag`` and are left out too when
    ``cfg['drop_flagged']``.  Pixel values are the mosaic's (e.g. electrons/s) per output pixel.
    """
    on = in_footprint(band, cat["ra"], cat["dec"])
    sub = cat[on].reset_index(drop=True)
    rows = shard_rows(len(sub), int(cfg["shards"]), shard)
    part = sub.iloc[rows].reset_index(drop=True)
    stamps, flags = cutouts.cut([band], part["ra"], part["dec"], int(cfg["stamp"]), float(cfg["pixel_scale"]),
                                window=16, blank=cfg.get("blank_value"))
    part = part.assign(
        cutout_flag=flags.astype(np.int32),
        cutout_flags=[",".join(n for b, n in cutouts.FLAG_NAMES.items() if f & b) for f in flags],
        pixel_scale=float(cfg["pixel_scale"]),
        native_pixel_scale=cutouts.pixel_scale_arcsec(band.wcs),
        dataset="candels", shard=np.int32(shard),
        **{k: v for k, v in provenance.items()},
    )
    log(f"shard {shard}: {len(part)} of {on.sum()} in-mosaic galaxies ({len(cat) - on.sum()} outside it); "
        f"flags {cutouts.describe_flags(flags)}")
    if cfg.get("drop_flagged", True):
        keep = flags == cutouts.OK
        stamps, part = stamps[keep], part[keep].reset_index(drop=True)
    part["index"] = np.arange(len(part), dtype=np.int32)
    return np.ascontiguousarray(stamps, dtype=np.float32), part


def provenance(cfg: dict, mosaic_path: str | os.PathLike) -> dict:
    """Columns recording where the stamps came from: catalogue, mosaic file, PSF image (+ its SHA-256)."""
    psf = cfg.get("psf")
    psf_sha = ""
    if psf:
        if is_url(psf):
            raise ValueError(f"candels.psf {psf!r}: give a local path to the PSF image")
        if not Path(psf).exists():
            raise FileNotFoundError(f"candels.psf {psf} does not exist")
        psf_sha = io.file_digest(psf)
    return {"catalog": cfg["catalog"], "mosaic": Path(mosaic_path).name, "psf": psf or "", "psf_sha256": psf_sha}
