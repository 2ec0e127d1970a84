"""Shard caches, atomic writes and content manifests.

Every dataset, simulated or retrieved, is stored as shards of two files:

* ``shardNNN.npz`` with ``images`` of shape (N, bands, H, W), float32, in physical flux units
  (electrons for the HST-like sims, nanomaggies for SDSS-like stamps);
* ``shardNNN.parquet`` with one row per stamp (id, labels, observing conditions, provenance).

Writers here are byte-deterministic: NPZ members carry a fixed timestamp (``numpy.savez`` would stamp
the current time) and every file is written to a temporary name in the destination folder and
renamed only once complete, so an interrupted job never leaves a half file that looks valid.
Temporary files are created with the user's umask (mode 0666 minus umask), like any other file.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import secrets
import socket
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

#: Fixed member timestamp for NPZ archives (the earliest date a zip file can hold).
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def _host() -> str:
    """This machine's short name, as it appears in temporary file names (no dots)."""
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname().split(".")[0]) or "host"


def _new_temp(path: Path) -> Path:
    """Create an empty temporary file beside ``path``, honouring the umask (unlike mkstemp's 0600)."""
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{_host()}.{os.getpid()}.{secrets.token_hex(4)}.part")
        try:
            os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
        except FileExistsError:
            continue
        return tmp
    raise FileExistsError(f"could not create a temporary file beside {path}")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    The temporary file lives in the same folder (same file system), so the final ``os.replace`` is
    atomic: readers see either the old complete file or the new complete file, never a partial one.
    It is created with mode 0666 minus the umask, so results are as readable as any file the user
    makes (a group-shared project folder stays shared). Its name carries the host and process id,
    so a leftover from a killed writer can be told from one being written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = _new_temp(path)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def write_npz(path: str | os.PathLike, arrays: Mapping[str, np.ndarray]) -> None:
    """Write arrays to an uncompressed NPZ with fixed member timestamps, atomically."""
    with atomic_path(path) as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
            for name in sorted(arrays):
                buf = io.BytesIO()
                np.lib.format.write_array(buf, np.ascontiguousarray(arrays[name]), allow_pickle=False)
                info = zipfile.ZipInfo(f"{name}.npy", date_time=ZIP_EPOCH)
                info.external_attr = 0o644 << 16
                zf.writestr(info, buf.getvalue())


def read_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read every array of an NPZ into memory (no pickles)."""
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def write_parquet(path: str | os.PathLike, table: pd.DataFrame) -> None:
    """Write a DataFrame to Parquet atomically, without the index (deterministic bytes)."""
    with atomic_path(path) as tmp:
        table.to_parquet(tmp, index=False, engine="pyarrow")


def write_json(path: str | os.PathLike, obj) -> None:
    """Write JSON with sorted keys and a trailing newline, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def write_shard(npz_path, parquet_path, images: np.ndarray, catalogue: pd.DataFrame) -> None:
    """Write one shard (images + catalogue) after checking they describe the same stamps."""
    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(f"images must be (N, bands, H, W), got shape {images.shape}")
    if images.dtype != np.float32:
        raise ValueError(f"images must be float32, got {images.dtype}")
    if len(catalogue) != images.shape[0]:
        raise ValueError(
            f"catalogue has {len(catalogue)} rows but images hold {images.shape[0]} stamps"
        )
    write_npz(npz_path, {"images": images})
    write_parquet(parquet_path, catalogue)


def read_shards(npz_paths, parquet_paths) -> tuple[np.ndarray, pd.DataFrame]:
    """Concatenate shards in the given order into one image cube and one catalogue."""
    images, tables = [], []
    for npz, pq in zip(npz_paths, parquet_paths, strict=True):
        arr = read_npz(npz)["images"]
        cat = pd.read_parquet(pq)
        if len(cat) != arr.shape[0]:
            raise ValueError(f"shard {npz} holds {arr.shape[0]} stamps but {pq} has {len(cat)} rows")
        images.append(arr)
        tables.append(cat)
    if not images:
        raise ValueError("no shards given")
    return np.concatenate(images), pd.concat(tables, ignore_index=True)


def file_digest(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def manifest(root: str | os.PathLike, exclude_dirs: tuple[str, ...] = ("logs", "benchmarks")) -> pd.DataFrame:
    """Content digests of every file under ``root`` (sorted paths), skipping run-specific folders.

    Logs and benchmark timings differ from run to run by nature; everything else a run makes is
    expected to be byte-identical for the same config on the same machine and backend.
    """
    root = Path(root)
    rows = []
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if not p.is_file() or rel.parts[0] in exclude_dirs or p.name.startswith("."):
            continue
        if rel.parts[0] == "manifest.tsv":
            continue
        rows.append({"path": rel.as_posix(), "bytes": p.stat().st_size, "sha256": file_digest(p)})
    return pd.DataFrame(rows, columns=["path", "bytes", "sha256"])
