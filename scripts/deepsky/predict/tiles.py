"""Sky tiles for survey-scale prediction: split a catalogue by position, predict each tile as its
own job (the workflow's scatter, spread over nodes by the Slurm profile), check the gather.

``split`` cuts a catalogue into ``n`` tiles of nearly equal counts: declination strips (about
sqrt(n) of them), each cut in right ascension, so a tile is a compact patch of sky and its job reads
one region of the mosaics.  Right ascension is measured from the largest empty gap in RA, so a
field across RA = 0 is not cut in two.  Rows keep their order within a tile and gain
``catalogue_row`` (their 0-based row in the input), which lets ``gather`` check that every input
row was predicted exactly once.  Rows without a finite position go to the last tile (they are
flagged there, not lost).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from .. import io
from ..errors import UserError
from . import inputs, outputs

ROW = "catalogue_row"


def _ra_from_gap(ra: np.ndarray) -> np.ndarray:
    """RA (deg) shifted so that 0 falls in the widest gap between the objects' RAs."""
    r = np.sort(np.mod(ra, 360.0))
    if r.size < 2:
        return np.mod(ra, 360.0)
    gaps = np.diff(np.concatenate([r, [r[0] + 360.0]]))
    k = int(np.argmax(gaps))
    start = r[(k + 1) % r.size]
    return np.mod(ra - start, 360.0)


def tile_index(ra, dec, n: int) -> np.ndarray:
    """(N,) tile of each position (0..n-1), nearly equal counts, compact on the sky (module notes)."""
    ra, dec = np.asarray(ra, float), np.asarray(dec, float)
    if n < 1:
        raise UserError(f"the number of tiles must be >= 1, got {n}")
    good = np.isfinite(ra) & np.isfinite(dec)
    out = np.full(ra.size, n - 1, dtype=np.int64)
    idx = np.flatnonzero(good)
    strips = max(1, int(np.sqrt(n)))
    per_strip = [n // strips + (1 if s < n % strips else 0) for s in range(strips)]
    order = idx[np.lexsort((idx, dec[idx]))]  # by dec, ties by row: deterministic
    bounds = np.round(np.cumsum([0] + per_strip) / n * order.size).astype(int)
    ra_shift = _ra_from_gap(ra[idx]) if idx.size else ra[idx]
    ra_of = np.empty(ra.size)
    ra_of[idx] = ra_shift
    first = 0
    for s, k in enumerate(per_strip):
        members = order[bounds[s]:bounds[s + 1]]
        members = members[np.lexsort((members, ra_of[members]))]
        cuts = np.round(np.arange(k + 1) / k * members.size).astype(int)
        for t in range(k):
            out[members[cuts[t]:cuts[t + 1]]] = first + t
        first += k
    return out


def split(catalogue, tile_paths: list, ra_col: str | None = None, dec_col: str | None = None,
          catalogue_format: str | None = None) -> list[int]:
    """Write the catalogue's tiles (Parquet, one per path, atomically); returns the row counts."""
    cat = inputs.read_catalogue(catalogue, catalogue_format).reset_index(drop=True)
    ra = inputs.find_column(cat, inputs.RA_NAMES, ra_col, "ra")
    dec = inputs.find_column(cat, inputs.DEC_NAMES, dec_col, "dec")
    if ROW in cat.columns:
        raise UserError(f"catalogue {catalogue} already has a column {ROW!r}: rename it")
    t = tile_index(pd.to_numeric(cat[ra], errors="coerce"), pd.to_numeric(cat[dec], errors="coerce"),
                   len(tile_paths))
    cat[ROW] = np.arange(len(cat), dtype=np.int64)
    counts = []
    for k, path in enumerate(tile_paths):
        part = cat[t == k].reset_index(drop=True)
        io.write_parquet(path, part)
        counts.append(len(part))
    return counts


def finish_tile(scratch, out) -> None:
    """Move a completed tile dataset from its scratch folder to the rule's output (one rename)."""
    scratch, out = Path(scratch), Path(out)
    outputs.read_manifest(scratch)
    if out.exists():
        if any(out.iterdir()):
            raise RuntimeError(f"{out} exists and is not empty")
        out.rmdir()
    out.parent.mkdir(parents=True, exist_ok=True)
    os.replace(scratch, out)
    with contextlib.suppress(OSError):  # the scratch folder, once its last tile has moved out
        scratch.parent.rmdir()


def empty_tile(out, info: dict) -> None:
    """The dataset of a tile without objects: a complete manifest and no parts."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    io.write_json(out / outputs.MANIFEST, {"complete": True, "parts": [], "provenance": info, "rows": 0,
                                           "flagged": 0, "flags": {}})


def gather(tile_catalogues: list, tile_datasets: list, out) -> dict:
    """Check that the tiles' predictions cover every catalogue row exactly once and write a summary
    (JSON: tiles, rows, flag counts, provenance); UserError naming the first incomplete tile."""
    import pyarrow.parquet as pq

    tiles, rows_seen, total, flagged, provenance = [], [], 0, 0, None
    for cat_path, folder in zip(tile_catalogues, tile_datasets, strict=True):
        m = outputs.read_manifest(folder)
        want = pq.read_metadata(cat_path).num_rows
        got = [pq.read_table(Path(folder) / p, columns=[ROW])[ROW].to_numpy() for p in m["parts"]]
        got = np.concatenate(got) if got else np.zeros(0, np.int64)
        if got.size != want:
            raise UserError(f"{folder}: {got.size} predicted rows for the {want} rows of {cat_path}")
        expected = pq.read_table(cat_path, columns=[ROW])[ROW].to_numpy()
        if not np.array_equal(got, expected):
            raise UserError(f"{folder}: its rows are not those of {cat_path}")
        rows_seen.append(got)
        total += got.size
        flagged += int(m.get("flagged", 0))
        provenance = provenance or (m.get("provenance") if m["parts"] else None)
        tiles.append({"tile": Path(folder).name, "rows": int(got.size), "parts": len(m["parts"]),
                      "flagged": int(m.get("flagged", 0))})
    allrows = np.sort(np.concatenate(rows_seen)) if rows_seen else np.zeros(0, np.int64)
    if not np.array_equal(allrows, np.arange(allrows.size)):
        raise UserError("the tiles do not cover the catalogue's rows exactly once")
    summary = {"complete": True, "rows": total, "flagged": flagged, "tiles": tiles, "provenance": provenance,
               "read_with": "pandas.read_parquet(<this folder>/parts)"}
    io.write_json(out, summary)
    return summary


def remove_scratch(path) -> None:
    shutil.rmtree(path, ignore_errors=True)


__all__ = ["ROW", "empty_tile", "finish_tile", "gather", "remove_scratch", "split", "tile_index"]
