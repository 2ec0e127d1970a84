"""What users hand to ``deepsky predict``: model files, catalogues, FITS images, stamp cubes.

Every reader checks its file before anything costly happens and turns each way it can be bad
(missing, empty, truncated, of another format, corrupt, of the wrong shape or type) into a
:class:`~deepsky.errors.UserError` of one line that names the file and what is wrong with it.

Stamp cubes (``.npz`` or ``.npy``) are read in chunks of rows: a member stored uncompressed (as
``numpy.savez`` and deepsky write them) is read at its byte offset inside the zip, a compressed
one is decompressed as a stream, so memory stays constant in the number of stamps.
"""

from __future__ import annotations

import json
import struct
import warnings
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .. import cutouts
from ..errors import UserError

RA_NAMES = ["ra", "RA", "RAJ2000", "ra_deg", "RA_ICRS", "RAdeg", "ALPHA_J2000", "alpha"]
DEC_NAMES = ["dec", "DEC", "Dec", "DEJ2000", "dec_deg", "DE_ICRS", "DEdeg", "DELTA_J2000", "delta"]
#: astropy reader for each catalogue file extension (anything else: astropy guesses from the content)
TABLE_FORMATS = {".csv": "ascii.csv", ".ecsv": "ascii.ecsv", ".fits": "fits", ".fit": "fits", ".fts": "fits",
                 ".fits.gz": "fits", ".vot": "votable", ".votable": "votable", ".xml": "votable",
                 ".parquet": "parquet", ".pq": "parquet", ".hdf5": "hdf5", ".h5": "hdf5"}
#: numeric kinds a stamp cube may hold (float, signed and unsigned integers)
STAMP_KINDS = "fiu"
#: bytes read at a time when a zip member's CRC is checked
_BLOCK = 1 << 22


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def existing_file(path, what: str) -> Path:
    """``path`` as a Path; UserError unless it is a non-empty regular file."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{what} {path} does not exist")
    if path.is_dir():
        raise UserError(f"{what} {path} is a directory, not a file")
    if path.stat().st_size == 0:
        raise UserError(f"{what} {path} is empty (0 bytes)")
    return path


def verify_zip(path: Path, what: str) -> zipfile.ZipFile:
    """Open a zip archive after reading every member through its CRC check (constant memory)."""
    if not zipfile.is_zipfile(path):
        raise UserError(f"{what} {path} is not a zip archive, or is truncated (no zip directory at its end)")
    try:
        zf = zipfile.ZipFile(path)
        for info in zf.infolist():
            with zf.open(info) as fh:
                while fh.read(_BLOCK):
                    pass
    except (zipfile.BadZipFile, EOFError, OSError, zlib.error, NotImplementedError) as exc:
        raise UserError(f"{what} {path} is corrupt: {_first_line(exc)}") from exc
    return zf


# --------------------------------------------------------------------------- models
def read_model_meta(model_path) -> tuple[Path, dict]:
    """Check a ``.keras`` model file (a zip whose members pass their CRC check) and read the
    metadata JSON beside it; the Keras load itself comes later (``load_model``)."""
    model_path = existing_file(model_path, "model")
    if model_path.suffix.lower() in (".h5", ".hdf5"):
        raise UserError(f"model {model_path}: legacy HDF5 models are refused (Keras' safe mode does not apply "
                        "to them); deepsky models are .keras files")
    verify_zip(model_path, "model").close()
    meta_path = model_path.with_suffix(".json")
    if not meta_path.exists():
        raise UserError(f"{meta_path} is missing: deepsky models carry their preprocessing in it")
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"model metadata {meta_path} is not valid JSON: {_first_line(exc)}") from exc
    if not isinstance(meta, dict) or not isinstance(meta.get("preprocess"), dict):
        raise UserError(f"model metadata {meta_path} has no 'preprocess' section: not a deepsky model")
    return model_path, meta


def load_model(model_path: Path):
    """The Keras model of a checked file (``read_model_meta``); a load failure is a UserError."""
    from ..learn import modelfile

    try:
        model, _ = modelfile.load_model(model_path)
    except Exception as exc:  # any failure to rebuild the model is a bad model file
        raise UserError(f"model {model_path} cannot be loaded: {_first_line(exc)}") from exc
    return model


# --------------------------------------------------------------------------- catalogues
def _table_format(path: Path) -> str | None:
    name = path.name.lower()
    for ext in sorted(TABLE_FORMATS, key=len, reverse=True):
        if name.endswith(ext):
            return TABLE_FORMATS[ext]
    return None


def read_catalogue(path, fmt: str | None = None) -> pd.DataFrame:
    """A table of objects from any file astropy reads (CSV, ECSV, FITS, VOTable, Parquet, HDF5, ...).

    The format comes from ``fmt`` (an astropy format name, e.g. ``ascii.basic``), else the file's
    extension (``TABLE_FORMATS``), else astropy's guess from the content.  Multidimensional columns
    are dropped, byte strings decoded, masked values become NaN/None.
    """
    from astropy.table import Table

    path = existing_file(path, "catalogue")
    fmt = fmt or _table_format(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # units astropy does not know, VOTable version notes
            table = Table.read(path, format=fmt) if fmt else Table.read(path)
    except Exception as exc:  # astropy raises many types (IORegistryError, OSError, ValueError, ...)
        msg = _first_line(exc)
        if "could not be identified" in msg:
            msg = ("its format is unknown: use a .csv, .ecsv, .fits, .vot/.xml (VOTable), .parquet or .hdf5 "
                   "file, or name astropy's format with --catalogue-format (e.g. ascii.basic)")
        raise UserError(f"catalogue {path} cannot be read{' as ' + fmt if fmt else ''}: {msg}") from exc
    table = table[[c for c in table.colnames if len(table[c].shape) <= 1]]
    for c in table.colnames:
        if table[c].dtype.kind == "S":
            table[c] = np.char.decode(table[c], "utf-8")
    return table.to_pandas()


def find_column(table: pd.DataFrame, names: list[str], given: str | None, what: str) -> str:
    """The catalogue column holding ``what`` (``given``, else the first of ``names`` present)."""
    if given:
        if given not in table.columns:
            raise UserError(f"catalogue has no column {given!r} for {what}; columns: {list(table.columns)}")
        return given
    for n in names:
        if n in table.columns:
            return n
    raise UserError(f"catalogue has no {what} column (tried {names}); name it with --{what}-col")


# --------------------------------------------------------------------------- FITS images
@dataclass
class FitsImage:
    """An open FITS file (memory-mapped) and the band read from it; ``close()`` releases the file."""

    band: cutouts.Band
    hdul: object = field(repr=False)
    hdu: int = 0

    def close(self) -> None:
        self.hdul.close()


def _data_bytes(header) -> int:
    n = abs(int(header.get("BITPIX", 8))) // 8
    for i in range(1, int(header.get("NAXIS", 0)) + 1):
        n *= int(header.get(f"NAXIS{i}", 0))
    return n if int(header.get("NAXIS", 0)) else 0


def open_fits_image(path, hdu: int | None = None) -> FitsImage:
    """The first 2-D image HDU with a celestial WCS in a FITS file (or HDU ``hdu``), memory-mapped.

    UserError when the file is missing, empty or not FITS, ``hdu`` is out of range, the data are
    truncated (the file is shorter than its header says), or no image has a celestial WCS.
    """
    from astropy.io import fits
    from astropy.wcs import WCS

    path = existing_file(path, "image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            hdul = fits.open(path, memmap=True)
            hdul.readall()
    except Exception as exc:  # astropy: OSError for non-FITS, various for damaged headers
        raise UserError(f"image {path} is not a readable FITS file: {_first_line(exc)}") from exc
    try:
        if hdu is not None and not -len(hdul) <= hdu < len(hdul):
            raise UserError(f"image {path}: --hdu {hdu} is out of range; the file has {len(hdul)} HDU(s) "
                            f"(0..{len(hdul) - 1})")
        indices = [hdu % len(hdul)] if hdu is not None else range(len(hdul))
        size = path.stat().st_size
        found_image = False
        for i in indices:
            h = hdul[i]
            if int(h.header.get("NAXIS", 0)) != 2 or not isinstance(h, (fits.PrimaryHDU, fits.ImageHDU,
                                                                         fits.CompImageHDU)):
                continue
            found_image = True
            if not isinstance(h, fits.CompImageHDU):
                need = hdul.fileinfo(i)["datLoc"] + _data_bytes(h.header)
                if need > size:
                    raise UserError(f"image {path} is truncated: HDU {i} needs {need} bytes, the file has {size}")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # non-standard keywords the WCS ignores
                wcs = WCS(h.header)
            if not wcs.has_celestial:
                continue
            try:
                data = h.data
            except Exception as exc:
                raise UserError(f"image {path}: HDU {i} data cannot be read: {_first_line(exc)}") from exc
            return FitsImage(cutouts.Band(data, wcs, name=path.name), hdul, i)
        where = f"HDU {hdu}" if hdu is not None else "the file"
        if not found_image:
            raise UserError(f"image {path}: {where} holds no 2-D image")
        raise UserError(f"image {path}: {where} has no celestial WCS (need CTYPE1/2 = RA---TAN/DEC--TAN, CRVAL, "
                        f"CRPIX, CD or CDELT); cannot place catalogue positions on it")
    except BaseException:
        hdul.close()
        raise


def read_fits_band(path, hdu: int | None = None) -> cutouts.Band:
    """The band of ``open_fits_image`` (the file stays memory-mapped while the band is in use)."""
    return open_fits_image(path, hdu).band


# --------------------------------------------------------------------------- stamp cubes
@dataclass
class StampCube:
    """A (N, bands, H, W) or (N, H, W) array in an ``.npz`` member or a ``.npy`` file, read by rows.

    ``offset`` is the byte offset of the array's data in ``path`` when they can be read in place
    (a ``.npy`` file, or an NPZ member stored uncompressed); None means a compressed member, read
    as a stream (rows in increasing order are cheap, going back restarts the stream).
    """

    path: Path
    member: str | None
    shape: tuple
    dtype: np.dtype
    offset: int | None
    _zip: zipfile.ZipFile | None = field(default=None, repr=False)
    _stream: object = field(default=None, repr=False)
    _stream_row: int = 0

    @property
    def n(self) -> int:
        return int(self.shape[0])

    @property
    def row_bytes(self) -> int:
        return int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize

    def read(self, lo: int, hi: int) -> np.ndarray:
        """Rows ``lo:hi`` as a new array (native byte order)."""
        lo, hi = max(0, lo), min(hi, self.n)
        count = max(hi - lo, 0) * self.row_bytes
        if self.offset is not None:
            with open(self.path, "rb") as fh:
                fh.seek(self.offset + lo * self.row_bytes)
                raw = fh.read(count)
        else:
            if self._stream is None or self._stream_row > lo:
                self._open_stream()
            skip = (lo - self._stream_row) * self.row_bytes
            while skip > 0:
                skip -= len(self._stream.read(min(skip, _BLOCK)))
            raw = self._stream.read(count)
            self._stream_row = hi
        if len(raw) != count:
            raise UserError(f"stamps {self.path}{':' + self.member if self.member else ''} is truncated: "
                            f"rows {lo}..{hi - 1} are missing")
        arr = np.frombuffer(raw, dtype=self.dtype).reshape((hi - lo, *self.shape[1:]))
        return arr.astype(self.dtype.newbyteorder("="), copy=True)

    def _open_stream(self) -> None:
        self.close_stream()
        self._stream = self._zip.open(self.member)
        _read_npy_header(self._stream, self.path)
        self._stream_row = 0

    def close_stream(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None

    def close(self) -> None:
        self.close_stream()
        if self._zip is not None:
            self._zip.close()


def _read_npy_header(fh, path) -> tuple[tuple, bool, np.dtype]:
    fmt = np.lib.format
    try:
        version = fmt.read_magic(fh)
        if version == (1, 0):
            shape, fortran, dtype = fmt.read_array_header_1_0(fh)
        else:
            shape, fortran, dtype = fmt.read_array_header_2_0(fh)
    except Exception as exc:  # numpy: ValueError for a bad magic string or header
        raise UserError(f"stamps {path} is not a valid .npy array: {_first_line(exc)}") from exc
    return shape, fortran, dtype


def _check_array(path, shape, fortran, dtype, available: int) -> None:
    if dtype.hasobject:
        raise UserError(f"stamps {path} hold Python objects (pickles are never loaded); store numbers")
    if dtype.kind not in STAMP_KINDS or dtype.fields is not None:
        kind = {"c": "complex", "b": "boolean"}.get(dtype.kind, str(dtype))
        raise UserError(f"stamps {path} hold {kind} values ({dtype}); stamps must be real numbers "
                        "(float or integer pixel values in flux units)")
    if fortran and len(shape) > 1:
        raise UserError(f"stamps {path} are stored in Fortran order; save them C-ordered "
                        "(numpy.ascontiguousarray) so that they can be read by rows")
    need = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if need > available:
        raise UserError(f"stamps {path} are truncated: an array of shape {shape} ({dtype}) needs {need} bytes "
                        f"of data, the file holds {available}")


def open_stamp_cube(path) -> StampCube:
    """Open the stamps of an ``.npz`` (its ``images`` array, or its only array) or a ``.npy`` file.

    Checks format, integrity (an NPZ's members are read once through their CRC check), array type
    (real numbers only: no complex, boolean or object arrays) and that the data are complete.
    """
    path = existing_file(path, "stamps")
    with open(path, "rb") as fh:
        magic = fh.read(6)
    if magic == b"\x93NUMPY":
        with open(path, "rb") as fh:
            shape, fortran, dtype = _read_npy_header(fh, path)
            offset = fh.tell()
        _check_array(path, shape, fortran, dtype, path.stat().st_size - offset)
        return StampCube(path, None, tuple(shape), dtype, offset)
    if not magic.startswith(b"PK"):
        raise UserError(f"stamps {path} is neither an .npz (zip) archive nor a .npy array")
    zf = verify_zip(path, "stamps")
    try:
        names = [i.filename for i in zf.infolist() if i.filename.endswith(".npy")]
        if not names:
            raise UserError(f"stamps {path} holds no arrays (an .npz needs an 'images' array)")
        if "images.npy" in names:
            member = "images.npy"
        elif len(names) == 1:
            member = names[0]
        else:
            raise UserError(f"stamps {path} holds {sorted(n[:-4] for n in names)}; expected an 'images' array")
        info = zf.getinfo(member)
        with zf.open(info) as fh:
            shape, fortran, dtype = _read_npy_header(fh, f"{path}:{member}")
            header_len = fh.tell() if info.compress_type == zipfile.ZIP_STORED else None
        offset = None
        if info.compress_type == zipfile.ZIP_STORED:
            with open(path, "rb") as raw:  # the member's data start after its local header
                raw.seek(info.header_offset)
                local = raw.read(30)
                if local[:4] != b"PK\x03\x04":
                    raise UserError(f"stamps {path} is corrupt: bad local header for {member}")
                name_len, extra_len = struct.unpack("<HH", local[26:30])
            offset = info.header_offset + 30 + name_len + extra_len + header_len
            available = info.file_size - header_len
        else:
            available = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize  # checked by the CRC pass
        _check_array(f"{path}:{member}", shape, fortran, dtype, available)
        return StampCube(path, member, tuple(shape), dtype, offset, _zip=zf)
    except BaseException:
        zf.close()
        raise


def fingerprint(path) -> str:
    """A cheap identity of an input file for resuming a job: its size and the SHA-256 of its first
    and last MiB (reading a whole mosaic of many GB on every rerun would cost more than it saves)."""
    import hashlib

    path = Path(path)
    size = path.stat().st_size
    h = hashlib.sha256(str(size).encode())
    with open(path, "rb") as fh:
        h.update(fh.read(1 << 20))
        if size > 2 << 20:
            fh.seek(size - (1 << 20))
            h.update(fh.read())
    return h.hexdigest()[:32]
