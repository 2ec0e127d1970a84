"""Shard caches, atomic writes and content manifests.

Every dataset, simulated or retrieved, is stored as shards of two files:

* ``shardNNN.npz`` with ``images`` of shape (N, bands, H, W), float32, in physical flux units
  (electrons for the HST-like sims, nanomaggies for SDSS-like stamps);
* ``shardNNN.parquet`` with one row per stamp (id, labels, observing conditions, provenance).

Writers here are byte-deterministic: NPZ members carry a fixed timestamp (``numpy.savez`` would stamp
the current time) and every file is written to a temporary name in the destination folder and
renamed only once complete, so an interrupted job never leaves a half file that looks valid.
Temporary files are created with the user's umask (mode 0666 minus umask), like any other file.

Verified caches (readers stop on a damaged file with one line naming it and how to rebuild it,
:class:`CorruptFileError`):

* NPZ files end with a digest trailer in the zip archive comment: ``deepsky-npz-v1 [parquet-sha256=H]
  sha256=H``, where the final SHA-256 covers every byte of the file before it (members, headers,
  central directory). ``numpy.load`` ignores archive comments, so the files stay plain NPZ files.
* A shard's NPZ also records the SHA-256 of its Parquet catalogue (written first), so the pair is
  checked as a whole: a flipped bit anywhere in either file, a truncated file or a catalogue from
  another shard is an error.
* Every Parquet file is written with page checksums (CRC-32 of each data page) and read with their
  verification on. A stand-alone table (not a shard catalogue) has no whole-file digest: a bit
  flipped in its footer (schema, offsets) is caught only when it breaks decoding.
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
import time
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

#: Fixed member timestamp for NPZ archives (the earliest date a zip file can hold).
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


class CorruptFileError(ValueError):
    """A file failed its integrity check or could not be decoded.

    The message is one line: the file, what is wrong, and how to get an intact copy (by default:
    delete it and rerun snakemake, whose rule makes it again).
    """

    #: rule scripts report it as one line, without a traceback (deepsky.runlog)
    one_line = True

    def __init__(self, path: str | os.PathLike, why: str, rebuild: str | None = None):
        self.path = Path(path)
        hint = rebuild or f"rebuild it: rm {path} and rerun snakemake (the rule that made it runs again)"
        super().__init__(" ".join(f"{path}: {why}; {hint}".split()))


def _host() -> str:
    """This machine's short name, as it appears in temporary file names (no dots)."""
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname().split(".")[0]) or "host"


#: temporary names made by :func:`atomic_path`: ``.<name>.<host>.<pid>.<8 hex>.part``, possibly with
#: a suffix a library insists on (``.part.keras``); group 1 is the host, group 2 the writer's pid
PART_NAME = re.compile(r"^\..+\.([A-Za-z0-9-]+)\.(\d+)\.[0-9a-f]{8}\.part(\.[A-Za-z0-9.]+)?$")
#: temporary names of earlier versions (``tempfile.mkstemp``: no host or pid)
LEGACY_PART_NAME = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.part(\.[A-Za-z0-9.]+)?$")


def temp_name(name: str) -> str:
    """A temporary name for ``name`` in the same folder: hidden, with this host and pid (:data:`PART_NAME`)."""
    return f".{name}.{_host()}.{os.getpid()}.{secrets.token_hex(4)}.part"


def _new_temp(path: Path) -> Path:
    """Create an empty temporary file beside ``path``, honouring the umask (unlike mkstemp's 0600)."""
    for _ in range(100):
        tmp = path.with_name(temp_name(path.name))
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
    makes (a group-shared project folder stays shared). Its name carries the host and process id
    (see :func:`clean_partials`).
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


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def clean_partials(root: str | os.PathLike, started: float) -> list[Path]:
    """Remove temporary files and folders that killed writers left under ``root``; return them.

    A temporary name (:data:`PART_NAME`) from this host is removed when its writer's process is gone;
    one from another host (a cluster node) or of the old unnamed kind when it was last modified
    before ``started`` (the start of the snakemake run that calls this: its own jobs have finished).
    """
    root = Path(root)
    removed: list[Path] = []
    if not root.is_dir():
        return removed
    host = _host()
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        for name in filenames + dirnames:
            p = Path(dirpath) / name
            m = PART_NAME.match(name)
            if m:
                stale = (not _pid_alive(int(m.group(2)))) if m.group(1) == host else _mtime(p) < started
            elif LEGACY_PART_NAME.match(name):
                stale = _mtime(p) < started
            else:
                continue
            if stale:
                _remove(p)
                removed.append(p)
    return removed


def remove_empty_dirs(root: str | os.PathLike) -> list[Path]:
    """Remove ``root`` and every folder under it that holds no file (deepest first); return them."""
    root = Path(root)
    removed: list[Path] = []
    if not root.is_dir():
        return removed
    for dirpath, _, _ in os.walk(root, topdown=False):
        with contextlib.suppress(OSError):  # not empty (or filled meanwhile): keep it
            os.rmdir(dirpath)
            removed.append(Path(dirpath))
    return removed


def _mtime(p: Path) -> float:
    try:
        return p.lstat().st_mtime
    except FileNotFoundError:
        return time.time()


def _remove(p: Path) -> None:
    import shutil

    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        p.unlink(missing_ok=True)


#: the NPZ digest trailer (zip archive comment) and its pattern
NPZ_TRAILER_TAG = b"deepsky-npz-v1"
NPZ_TRAILER = re.compile(rb"deepsky-npz-v1(?: parquet-sha256=([0-9a-f]{64}))? sha256=([0-9a-f]{64})\Z")


def _sha256_prefix(path: Path, size: int, chunk: int = 1 << 20) -> str:
    """SHA-256 of the first ``size`` bytes of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        left = size
        while left > 0 and (block := fh.read(min(chunk, left))):
            h.update(block)
            left -= len(block)
    return h.hexdigest()


def write_npz(path: str | os.PathLike, arrays: Mapping[str, np.ndarray], parquet_sha256: str | None = None) -> None:
    """Write arrays to an uncompressed NPZ with fixed member timestamps and a digest trailer, atomically.

    ``parquet_sha256`` (a shard's catalogue digest) is recorded in the trailer too (module notes).
    """
    head = NPZ_TRAILER_TAG + (f" parquet-sha256={parquet_sha256}".encode() if parquet_sha256 else b"") + b" sha256="
    with atomic_path(path) as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
            for name in sorted(arrays):
                buf = io.BytesIO()
                np.lib.format.write_array(buf, np.ascontiguousarray(arrays[name]), allow_pickle=False)
                info = zipfile.ZipInfo(f"{name}.npy", date_time=ZIP_EPOCH)
                info.external_attr = 0o644 << 16
                zf.writestr(info, buf.getvalue())
            zf.comment = head + b"0" * 64  # placeholder of the digest's length: the bytes before it are final
        size = tmp.stat().st_size
        digest = _sha256_prefix(tmp, size - 64)
        with open(tmp, "r+b") as fh:
            fh.seek(size - 64)
            fh.write(digest.encode())


def npz_trailer(path: str | os.PathLike) -> dict | None:
    """The digests an NPZ's trailer records (``sha256``, ``parquet_sha256`` or None), or None without one."""
    path = Path(path)
    with open(path, "rb") as fh:
        size = fh.seek(0, os.SEEK_END)
        fh.seek(max(0, size - 256))
        tail = fh.read()
    m = NPZ_TRAILER.search(tail)
    if not m:
        return None
    return {"sha256": m.group(2).decode(), "parquet_sha256": m.group(1).decode() if m.group(1) else None,
            "size": size}


def verify_npz(path: str | os.PathLike, require: bool = True) -> dict | None:
    """Check an NPZ against its digest trailer; return the trailer (None: no trailer and not required).

    Raises :class:`CorruptFileError` on a mismatch, or on a missing trailer when ``require`` (every
    deepsky cache has one: a missing trailer means a truncated file or one written by another tool).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    trailer = npz_trailer(path)
    if trailer is None:
        if require:
            raise CorruptFileError(path, "no deepsky digest at its end (truncated, or not written by deepsky)")
        return None
    if _sha256_prefix(path, trailer["size"] - 64) != trailer["sha256"]:
        raise CorruptFileError(path, "content does not match its recorded SHA-256 (corrupt)")
    return trailer


def read_npz(path: str | os.PathLike, verify: bool | None = None) -> dict[str, np.ndarray]:
    """Read every array of an NPZ into memory (no pickles).

    ``verify``: None (default) checks the digest trailer when the file has one (NPZ files from other
    tools have none and are read as they are); True requires it (caches); False skips the check.
    """
    path = Path(path)
    trailer = verify_npz(path, require=bool(verify)) if verify is not False else None
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except FileNotFoundError:
        raise
    except Exception as exc:  # zipfile/numpy errors: name the file, one line
        if trailer is not None or verify:
            raise CorruptFileError(path, f"not a readable NPZ file ({type(exc).__name__}: {exc})") from exc
        raise ValueError(f"{path}: not a readable NPZ file ({type(exc).__name__}: {exc})") from exc


def write_parquet(path: str | os.PathLike, table: pd.DataFrame) -> None:
    """Write a DataFrame to Parquet atomically, without the index, with page checksums (deterministic bytes)."""
    with atomic_path(path) as tmp:
        table.to_parquet(tmp, index=False, engine="pyarrow", write_page_checksum=True)


def read_parquet(path: str | os.PathLike, columns: list[str] | None = None) -> pd.DataFrame:
    """Read a Parquet table, verifying its page checksums; a damaged file is a :class:`CorruptFileError`.

    Asking for a column the file does not have is a KeyError naming the column and the file.
    """
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    try:
        names = pq.read_schema(path).names
    except Exception as exc:
        raise CorruptFileError(path, f"not a readable Parquet file ({type(exc).__name__}: {exc})") from exc
    missing = [c for c in (columns or []) if c not in names]
    if missing:
        raise KeyError(f"{path} has no column(s) {missing} (columns: {names})")
    try:
        return pd.read_parquet(path, columns=columns, engine="pyarrow", page_checksum_verification=True)
    except Exception as exc:
        raise CorruptFileError(path, f"not a readable Parquet file ({type(exc).__name__}: {exc})") from exc


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
    # the catalogue first: the NPZ's trailer records its digest, so the pair is verified together
    write_parquet(parquet_path, catalogue)
    write_npz(npz_path, {"images": images}, parquet_sha256=file_digest(parquet_path))


def verify_shard(npz_path, parquet_path) -> None:
    """Check a shard's NPZ against its digest and its catalogue against the digest the NPZ records."""
    trailer = verify_npz(npz_path, require=True)
    if not Path(parquet_path).is_file():
        raise FileNotFoundError(f"{parquet_path} does not exist")
    want = trailer["parquet_sha256"]
    if want is None:
        raise CorruptFileError(npz_path, "is not a shard (its trailer records no catalogue digest)")
    if file_digest(parquet_path) != want:
        raise CorruptFileError(parquet_path, f"does not match the catalogue digest recorded in {Path(npz_path).name} "
                                             "(corrupt, or from another shard or run)",
                               rebuild=f"rebuild the shard: rm {npz_path} {parquet_path} and rerun snakemake")


def read_shards(npz_paths, parquet_paths) -> tuple[np.ndarray, pd.DataFrame]:
    """Concatenate shards in the given order into one image cube and one catalogue (each pair verified)."""
    images, tables = [], []
    for npz, pq in zip(npz_paths, parquet_paths, strict=True):
        verify_shard(npz, pq)
        arr = read_npz(npz, verify=False)["images"]
        cat = read_parquet(pq)
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
