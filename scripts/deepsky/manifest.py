"""Content manifests of a run's results, so that two runs can be compared file by file.

Most results are byte-deterministic (NPZ with fixed member timestamps, Parquet, sorted-key JSON,
PNG without a timestamp) and are digested on their bytes.  ``.keras`` files are zip archives whose
``metadata.json`` records the save date, so their digest is defined on the content instead: the
model's ``config.json`` and every array of ``model.weights.h5`` (name, dtype, shape, bytes).  Logs,
benchmarks (wall-clock timings) and hidden files (scratch checkpoints, temporary parts) are skipped;
the study's leaderboard and Sersic-fit comparison, which quote timings, are listed without a digest.

The ``deepsky manifest`` sub-command writes a manifest (``deepsky manifest results -o
results/manifest.tsv``) or compares two (``deepsky manifest --compare a.tsv b.tsv``).
"""

from __future__ import annotations

import argparse
import hashlib
import io as _io
import json
import os
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from . import io

#: top-level folders under results/ that differ from run to run by nature
SKIP_DIRS = ("logs", "benchmarks")
#: results that report wall-clock times by design (the study's leaderboard and its speed comparison
#: with the Sersic fit): listed with kind 'wall-clock' and no digest, so two runs are checked to both
#: have them, never for equal bytes (their accuracy figures are in the per-model metrics JSONs)
WALLCLOCK = ("study/leaderboard.md", "study/leaderboard.parquet", "study/baseline/")
#: the manifest never lists itself
SELF = "manifest.tsv"
COLUMNS = ["path", "kind", "digest"]


def _h5_digest(h: hashlib._Hash, raw: bytes) -> None:
    import h5py  # installed with keras

    with h5py.File(_io.BytesIO(raw), "r") as f:
        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                arr = np.ascontiguousarray(obj[()])
                h.update(f"{name}|{arr.dtype.str}|{arr.shape}\n".encode())
                h.update(arr.tobytes())
        f.visititems(visit)


def canonical_config(obj):
    """A Keras config without its ``shared_object_id`` entries, keys sorted.

    Those ids are Python ``id()`` values (different in every process) that mark objects shared at
    save time, e.g. one dtype policy used by every layer of a freshly built model; a model loaded
    from a checkpoint (a resumed training) has one policy object per layer and writes no ids. Layer
    sharing in a functional model is recorded in its inbound nodes, so nothing of substance is lost.
    """
    if isinstance(obj, dict):
        return {k: canonical_config(obj[k]) for k in sorted(obj) if k != "shared_object_id"}
    if isinstance(obj, list):
        return [canonical_config(v) for v in obj]
    return obj


def keras_digest(path: str | os.PathLike) -> str:
    """SHA-256 over a .keras file's model config (canonical JSON) and weight arrays.

    Ignores what differs between saves of the same model: the save date in ``metadata.json`` and the
    ``shared_object_id`` bookkeeping in ``config.json`` (see :func:`canonical_config`).
    """
    h = hashlib.sha256()
    with zipfile.ZipFile(path) as zf:
        names = set(zf.namelist())
        if "config.json" not in names:
            raise ValueError(f"{path} is not a Keras 3 model archive (no config.json)")
        config = canonical_config(json.loads(zf.read("config.json")))
        h.update(json.dumps(config, sort_keys=True).encode())
        for name in sorted(names - {"config.json", "metadata.json"}):
            h.update(f"\n{name}\n".encode())
            raw = zf.read(name)
            if name.endswith(".h5"):
                _h5_digest(h, raw)
            else:
                h.update(raw)
    return h.hexdigest()


def content_digest(path: str | os.PathLike) -> tuple[str, str]:
    """(kind, SHA-256) of one result file: 'keras-content' for .keras models, 'bytes' otherwise."""
    if str(path).endswith(".keras"):
        return "keras-content", keras_digest(path)
    return "bytes", io.file_digest(path)


def build(root: str | os.PathLike, skip_dirs: tuple[str, ...] = SKIP_DIRS) -> pd.DataFrame:
    """Manifest of every result file under ``root`` (sorted relative paths), see the module docstring."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"no results folder at {root}")
    rows = []
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if (not p.is_file() or rel.parts[0] in skip_dirs or rel.as_posix() == SELF
                or any(part.startswith(".") for part in rel.parts)):
            continue
        kind, digest = (("wall-clock", "-") if rel.as_posix().startswith(WALLCLOCK) else content_digest(p))
        rows.append({"path": rel.as_posix(), "kind": kind, "digest": digest})
    return pd.DataFrame(rows, columns=COLUMNS)


def write(table: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write a manifest as a tab-separated table (atomic)."""
    with io.atomic_path(path) as tmp:
        table.to_csv(tmp, sep="\t", index=False, lineterminator="\n")


def read(path: str | os.PathLike) -> pd.DataFrame:
    table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    missing = set(COLUMNS) - set(table.columns)
    if missing:
        raise ValueError(f"{path} is not a deepsky manifest (missing columns {sorted(missing)})")
    return table[COLUMNS]


def compare(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    """Rows whose digest differs or that exist in only one manifest ('a'/'b' NaN where missing)."""
    m = a.merge(b, on="path", how="outer", suffixes=("_a", "_b"))
    diff = m[(m["digest_a"] != m["digest_b"])]
    return diff[["path", "digest_a", "digest_b"]].reset_index(drop=True)


# --------------------------------------------------------------------------- CLI
def run(args: argparse.Namespace) -> int:
    if args.compare:
        a, b = (read(p) for p in args.compare)
        diff = compare(a, b)
        if diff.empty:
            print(f"identical: {len(a)} files")
            return 0
        for row in diff.itertuples():
            if pd.isna(row.digest_a) or pd.isna(row.digest_b):
                what = "only in " + ("B" if pd.isna(row.digest_a) else "A")
            else:
                what = "differs"
            print(f"{what}\t{row.path}")
        n = len(set(a["path"]) | set(b["path"]))
        print(f"{len(diff)} of {n} files differ", file=sys.stderr)
        return 1
    table = build(args.root)
    if args.output:
        write(table, args.output)
        print(f"wrote {len(table)} entries to {args.output}", file=sys.stderr)
    else:
        table.to_csv(sys.stdout, sep="\t", index=False, lineterminator="\n")
    return 0


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("manifest", help="content digests of every result file; compare two runs",
                              description=__doc__.split("\n\n")[0],
                              formatter_class=argparse.RawDescriptionHelpFormatter,
                              epilog="examples:\n  deepsky manifest results -o results/manifest.tsv\n"
                                     "  deepsky manifest --compare runA/results/manifest.tsv runB/results/manifest.tsv")
    p.add_argument("root", nargs="?", default="results", help="results folder (default: results)")
    p.add_argument("-o", "--out", "--output", dest="output", metavar="TSV",
                   help="write the manifest here (TSV) instead of stdout")
    p.add_argument("--compare", nargs=2, metavar=("A", "B"),
                   help="compare two manifest TSVs; exit 1 and list the paths that differ")
    p.set_defaults(func=run)
