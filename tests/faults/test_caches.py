"""Fault injection: corrupt caches (issue 16, item 3).

Every shard (NPZ + Parquet), Parquet table and model a run writes is checked when it is read back: a
flipped bit or a truncated file stops the reader with ONE line that names the file and how to
rebuild it, never a traceback deep in numpy and never different values with no error.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import snakerun
from deepsky import io


def shard(tmp_path, n=40):
    rng = np.random.default_rng(5)
    images = rng.normal(size=(n, 2, 8, 8)).astype(np.float32)
    cat = pd.DataFrame({"id": [f"s-{i:04d}" for i in range(n)], "r_e_arcsec": rng.uniform(0.1, 1.0, n),
                        "sersic_n": rng.uniform(0.5, 6, n), "is_star": rng.integers(0, 2, n).astype(bool),
                        "shard": np.zeros(n, np.int32)})
    npz, pq = tmp_path / "shard0000.npz", tmp_path / "shard0000.parquet"
    io.write_shard(npz, pq, images, cat)
    return npz, pq, images, cat


def flipped(src, dst, pos, bit=0):
    raw = bytearray(src.read_bytes())
    raw[pos] ^= 1 << bit
    dst.write_bytes(bytes(raw))


def positions(size, n=60):
    """``n`` positions spread over a file of ``size`` bytes, both ends included."""
    return sorted(set(np.linspace(0, size - 1, n).astype(int).tolist()))


def assert_one_line_naming(exc, path):
    msg = str(exc)
    assert str(path) in msg, msg
    assert "\n" not in msg, msg
    assert "rm " in msg or "snakemake" in msg, f"no rebuild hint: {msg}"


@pytest.mark.parametrize("which", ["npz", "parquet"])
def test_every_flipped_bit_in_a_shard_is_caught(tmp_path, which):
    npz, pq, images, cat = shard(tmp_path / "good")
    victim = npz if which == "npz" else pq
    bad = tmp_path / "bad"
    bad.mkdir()
    for i, pos in enumerate(positions(victim.stat().st_size)):
        (bad / npz.name).write_bytes(npz.read_bytes())
        (bad / pq.name).write_bytes(pq.read_bytes())
        flipped(victim, bad / victim.name, pos, bit=i % 8)
        with pytest.raises(ValueError) as e:
            io.read_shards([bad / npz.name], [bad / pq.name])
        assert_one_line_naming(e.value, bad / victim.name)


@pytest.mark.parametrize("which", ["npz", "parquet"])
def test_truncated_shard_is_named(tmp_path, which):
    npz, pq, _, _ = shard(tmp_path)
    victim = npz if which == "npz" else pq
    raw = victim.read_bytes()
    for keep in (0, 10, len(raw) // 2, len(raw) - 1):
        victim.write_bytes(raw[:keep])
        with pytest.raises(ValueError) as e:
            io.read_shards([npz], [pq])
        assert_one_line_naming(e.value, victim)


def test_shard_files_must_belong_together(tmp_path):
    """A catalogue from another shard (same row count) is not silently paired with these images."""
    npz, pq, images, cat = shard(tmp_path / "a")
    other = cat.assign(r_e_arcsec=cat["r_e_arcsec"] * 2)
    io.write_parquet(pq, other)
    with pytest.raises(ValueError) as e:
        io.read_shards([npz], [pq])
    assert_one_line_naming(e.value, pq)


def test_parquet_pages_are_checksummed(tmp_path):
    """A stand-alone table (split, history, predictions): a flipped bit in its data pages is an error
    or reads back the same values, never different ones."""
    _, _, _, cat = shard(tmp_path)
    path = tmp_path / "t.parquet"
    io.write_parquet(path, cat)
    raw = path.read_bytes()
    footer = len(raw) - 8 - int.from_bytes(raw[-8:-4], "little")
    caught = 0
    for i, pos in enumerate(range(4, footer, max(1, footer // 150))):
        flipped(path, tmp_path / "bad.parquet", pos, bit=i % 8)
        try:
            got = io.read_parquet(tmp_path / "bad.parquet")
        except ValueError as exc:
            assert_one_line_naming(exc, tmp_path / "bad.parquet")
            caught += 1
            continue
        pd.testing.assert_frame_equal(got, io.read_parquet(path))
    assert caught > 100


def test_foreign_npz_still_reads(tmp_path):
    """An NPZ written by numpy itself (e.g. stamps given to deepsky predict) has no digest and reads."""
    arr = np.arange(12, dtype=np.float32).reshape(1, 1, 3, 4)
    np.savez(tmp_path / "mine.npz", images=arr)
    np.testing.assert_array_equal(io.read_npz(tmp_path / "mine.npz")["images"], arr)
    with pytest.raises(ValueError) as e:  # but a shard must carry its digest
        io.read_shards([tmp_path / "mine.npz"], [tmp_path / "none.parquet"])
    assert_one_line_naming(e.value, tmp_path / "mine.npz")


def test_rule_script_reports_corrupt_file_in_one_line(tmp_path):
    """What a user sees when a rule script meets a corrupt cache: one line, no traceback."""
    npz, pq, _, _ = shard(tmp_path)
    flipped(npz, npz, 100)
    log = tmp_path / "job.log"
    code = ("from deepsky import io, runlog\n"
            f"log = runlog.redirect({str(log)!r})\n"
            f"io.read_shards([{str(npz)!r}], [{str(pq)!r}])\n")
    proc = subprocess.run([sys.executable, "-c", code], env=snakerun.env(), capture_output=True, text=True)
    assert proc.returncode == 1
    err = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(err) == 1 and str(npz) in err[0] and "rm " in err[0], proc.stderr
    assert "Traceback" not in proc.stderr and "Traceback" not in log.read_text()
    assert str(npz) in log.read_text()
