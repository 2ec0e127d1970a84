"""Prediction tables on disk: one file (Parquet, FITS or ECSV) or a partitioned Parquet dataset.

Every output carries its provenance (``provenance``): deepsky version, the model file and its
content digest, the model's training-config digest, task and unit, the prediction options, and
the date, which honours ``SOURCE_DATE_EPOCH`` (reproducible builds) or is left out, so that the
same inputs give byte-identical files.  Parquet keeps it as JSON under the schema metadata key
``deepsky``; FITS as header keywords (``DSKY*``, long values continued); ECSV in its YAML meta.

Writes are atomic (temporary name in the destination folder, renamed when complete).  A single
Parquet file is streamed one row group per chunk; FITS and ECSV hold the table (a few numbers
per row, never pixels) until the end.  A dataset (``--partitioned``) is a folder of
``part-NNNNN.parquet`` files, one per chunk, each written atomically, plus ``_job.json`` (what
the parts were made from: a rerun of the same job skips the parts already there, a different job
is refused) and, once every part is there, ``_manifest.json`` (parts, rows, flag counts,
provenance; ``complete: true``).  Files starting with ``_`` or ``.`` are skipped by Parquet
dataset readers, so ``pandas.read_parquet(folder)`` reads the predictions.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from .. import __version__, io
from ..errors import UserError

FORMATS = {"parquet": (".parquet", ".pq"), "fits": (".fits", ".fit", ".fts"), "ecsv": (".ecsv",)}
JOB, MANIFEST = "_job.json", "_manifest.json"
PART = "part-{:05d}.parquet"


def resolve_format(out, fmt: str | None, partitioned: bool) -> str:
    """The output format (``fmt`` or from the extension); UserError for a path that cannot be written."""
    out = Path(out)
    if partitioned:
        if fmt not in (None, "parquet"):
            raise UserError(f"--partitioned writes Parquet parts; --format {fmt} is not possible with it")
        if out.exists() and not out.is_dir():
            raise UserError(f"output {out} exists and is not a folder: --partitioned writes a folder of parts")
        return "parquet"
    if out.is_dir():
        raise UserError(f"output {out} is a directory; give a file name (.parquet, .fits or .ecsv), or "
                        "--partitioned to write a dataset of parts into it")
    if fmt is None:
        name = out.name.lower()
        fmt = next((f for f, exts in FORMATS.items() if name.endswith(exts)), None)
        if fmt is None:
            raise UserError(f"output {out}: unknown extension; use .parquet, .fits or .ecsv, or give --format")
    elif fmt not in FORMATS:
        raise UserError(f"--format {fmt!r}: use one of {sorted(FORMATS)}")
    parent = out.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise UserError(f"output {out}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK):
        raise UserError(f"output {out}: folder {parent} is not writable")
    return fmt


def date_stamp(date: str | None = "now") -> str | None:
    """The provenance date: None (omitted), an explicit ISO string, or "now" (UTC), where "now"
    honours ``SOURCE_DATE_EPOCH`` (seconds since 1970, as reproducible builds set it)."""
    if date != "now":
        return date
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch:
        try:
            t = _dt.datetime.fromtimestamp(int(epoch), _dt.timezone.utc)
        except ValueError as exc:
            raise UserError(f"SOURCE_DATE_EPOCH={epoch!r} is not an integer number of seconds") from exc
    else:
        t = _dt.datetime.now(_dt.timezone.utc)
    return t.replace(microsecond=0).isoformat().replace("+00:00", "Z")


def provenance(meta: dict, model_path, model_digest: str, options: dict, date: str | None) -> dict:
    """What made a prediction table (module notes); JSON-able, keys sorted when written."""
    info = {"deepsky_version": __version__, "model": Path(model_path).name, "model_digest": model_digest,
            "config_digest": meta.get("config_digest"), "task": meta.get("task"), "unit": meta.get("unit"),
            "label": meta.get("label"), "pixel_scale": (meta.get("preprocess") or {}).get("pixel_scale"),
            "options": options}
    if date:
        info["date"] = date
    return info


def _arrow_schema(table: pd.DataFrame, info: dict, base: pd.DataFrame | None = None):
    """Arrow schema of ``table`` with the provenance; columns also in ``base`` (the whole input
    catalogue) take their type from it, so that every chunk has the same schema (a chunk whose
    string column holds only missing values would otherwise be typed null)."""
    import pyarrow as pa

    schema = pa.Schema.from_pandas(table, preserve_index=False)
    if base is not None:
        known = pa.Schema.from_pandas(base, preserve_index=False)
        fields = [known.field(f.name) if f.name in known.names else f for f in schema]
        schema = pa.schema(fields, metadata=schema.metadata)
    return schema.with_metadata({**(schema.metadata or {}), b"deepsky": json.dumps(info, sort_keys=True).encode()})


def _to_arrow(table: pd.DataFrame, schema):
    import pyarrow as pa

    return pa.Table.from_pandas(table, schema=schema, preserve_index=False)


def write_table(path, table: pd.DataFrame, fmt: str, info: dict) -> None:
    """One prediction table in ``fmt`` with its provenance ``info``, atomically."""
    with io.atomic_path(path) as tmp:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            pq.write_table(_to_arrow(table, _arrow_schema(table, info)), tmp)
        else:
            _astropy_table(table, info, fmt).write(tmp, format="fits" if fmt == "fits" else "ascii.ecsv",
                                                     overwrite=True)


def _astropy_table(table: pd.DataFrame, info: dict, fmt: str):
    from astropy.table import Table

    t = Table.from_pandas(table)
    if fmt == "fits":
        keys = {"deepsky_version": "DSKYVER", "model": "DSKYMOD", "model_digest": "DSKYMSHA",
                "config_digest": "DSKYCFG", "task": "DSKYTASK", "unit": "DSKYUNIT", "label": "DSKYLAB",
                "pixel_scale": "DSKYPIX", "date": "DSKYDATE"}
        for k, card in keys.items():
            if info.get(k) is not None:
                t.meta[card] = info[k]
        t.meta["DSKYOPT"] = json.dumps(info["options"], sort_keys=True)
    else:
        t.meta["deepsky"] = json.loads(json.dumps(info, sort_keys=True))
    return t


class FileWriter:
    """Chunks -> one output file (Parquet streamed by row groups; FITS/ECSV at ``close``)."""

    def __init__(self, path, fmt: str, info: dict, base: pd.DataFrame | None = None):
        self.path, self.fmt, self.info, self.base = Path(path), fmt, info, base
        self._ctx = io.atomic_path(self.path)
        self._tmp = self._ctx.__enter__()
        self._writer = self._schema = None
        self._tables: list[pd.DataFrame] = []
        self.rows = 0

    def done(self, k: int) -> bool:
        return False  # a single file is written whole or not at all

    def write(self, k: int, table: pd.DataFrame) -> None:
        self.rows += len(table)
        if self.fmt != "parquet":
            self._tables.append(table)
            return
        import pyarrow.parquet as pq

        if self._writer is None:
            self._schema = _arrow_schema(table, self.info, self.base)
            self._writer = pq.ParquetWriter(self._tmp, self._schema)
        self._writer.write_table(_to_arrow(table, self._schema))

    def close(self, summary: dict) -> None:
        if self.fmt == "parquet":
            if self._writer is None:
                raise UserError("nothing to write: the input holds no rows")
            self._writer.close()
        else:
            table = pd.concat(self._tables, ignore_index=True)
            _astropy_table(table, self.info, self.fmt).write(
                self._tmp, format="fits" if self.fmt == "fits" else "ascii.ecsv", overwrite=True)
        self._ctx.__exit__(None, None, None)

    def abort(self, exc: BaseException) -> None:
        if self._writer is not None:
            self._writer.close()
        self._ctx.__exit__(type(exc), exc, exc.__traceback__)


class DatasetWriter:
    """Chunks -> a folder of Parquet parts, resumable (module notes)."""

    def __init__(self, folder, info: dict, job: dict, log=print, base: pd.DataFrame | None = None):
        self.folder, self.info, self.base = Path(folder), info, base
        self.folder.mkdir(parents=True, exist_ok=True)
        job_path = self.folder / JOB
        job = json.loads(json.dumps(job, sort_keys=True, default=str))
        if job_path.exists():
            try:
                old = json.loads(job_path.read_text())
            except (OSError, json.JSONDecodeError):
                old = None
            if old != job:
                changed = sorted(k for k in set(job) | set(old or {}) if (old or {}).get(k) != job.get(k))
                raise UserError(f"output {folder} holds parts of another job (differs in {changed}); remove it or "
                                "choose another --out")
            n = sum(1 for k in range(job["chunks"]) if self.done(k))
            if n:
                log(f"resuming: {n} of {job['chunks']} part(s) already in {folder}")
        else:
            leftovers = [p.name for p in self.folder.iterdir() if not p.name.startswith(".")]
            if leftovers:
                raise UserError(f"output {folder} is not empty and holds no deepsky job ({leftovers[:3]}...); "
                                "choose an empty or new folder")
            io.write_json(job_path, job)
        (self.folder / MANIFEST).unlink(missing_ok=True)
        self.job, self.rows = job, 0
        self._schema = None

    def part(self, k: int) -> Path:
        return self.folder / PART.format(k)

    def done(self, k: int) -> bool:
        return self.part(k).exists()

    def write(self, k: int, table: pd.DataFrame) -> None:
        import pyarrow.parquet as pq

        if self._schema is None:
            self._schema = _arrow_schema(table, self.info, self.base)
        with io.atomic_path(self.part(k)) as tmp:
            pq.write_table(_to_arrow(table, self._schema), tmp)
        self.rows += len(table)

    def close(self, summary: dict) -> None:
        import pyarrow.parquet as pq

        parts = [PART.format(k) for k in range(self.job["chunks"])]
        missing = [p for p in parts if not (self.folder / p).exists()]
        if missing:
            raise RuntimeError(f"{self.folder}: parts {missing[:3]} missing after the run")
        # totals over every part, those of earlier (resumed) runs included
        flags = np.concatenate([pq.read_table(self.folder / p, columns=["flag"])["flag"].to_numpy()
                                for p in parts]) if parts else np.zeros(0, np.int32)
        from .stamps import describe_flags

        summary = {**summary, "rows": int(flags.size), "rows_per_part": self.job["chunk_size"],
                   "flagged": int((flags != 0).sum()), "flags": describe_flags(flags)}
        io.write_json(self.folder / MANIFEST, {"complete": True, "parts": parts, "provenance": self.info,
                                               **summary})
        self.summary = summary

    def abort(self, exc: BaseException) -> None:
        pass  # parts written so far stay: a rerun resumes from them


def dataset_done(folder, job: dict) -> bool:
    """Whether ``folder`` already holds every part of ``job`` (a rerun has nothing to predict)."""
    folder = Path(folder)
    try:
        old = json.loads((folder / JOB).read_text())
    except (OSError, json.JSONDecodeError):
        return False
    job = json.loads(json.dumps(job, sort_keys=True, default=str))
    return old == job and all((folder / PART.format(k)).exists() for k in range(job["chunks"]))


def read_manifest(folder) -> dict:
    """A dataset's manifest, checked complete (UserError naming the folder otherwise)."""
    path = Path(folder) / MANIFEST
    if not path.exists():
        raise UserError(f"{folder}: no {MANIFEST}: the prediction job did not finish (rerun it to resume)")
    m = json.loads(path.read_text())
    missing = [p for p in m.get("parts", []) if not (Path(folder) / p).exists()]
    if not m.get("complete") or missing:
        raise UserError(f"{folder}: incomplete dataset (missing {missing[:3]})")
    return m


def empty_like(columns: list[str], n: int) -> pd.DataFrame:
    """NaN prediction columns for ``n`` rows."""
    return pd.DataFrame(np.full((n, len(columns)), np.nan), columns=columns)
