"""Shard I/O: deterministic bytes, atomic writes, consistency checks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from deepsky import io


def test_npz_bytes_are_deterministic(tmp_path):
    arr = np.arange(24, dtype=np.float32).reshape(2, 1, 3, 4)
    io.write_npz(tmp_path / "a.npz", {"images": arr})
    io.write_npz(tmp_path / "b.npz", {"images": arr})
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    np.testing.assert_array_equal(io.read_npz(tmp_path / "a.npz")["images"], arr)


def test_failed_write_leaves_old_file_and_no_temporaries(tmp_path):
    target = tmp_path / "x.json"
    io.write_json(target, {"ok": 1})
    with pytest.raises(TypeError):
        io.write_json(target, {"bad": object()})
    assert target.read_text().strip().startswith("{") and '"ok": 1' in target.read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.json"]


def test_shard_roundtrip_and_mismatch(tmp_path):
    imgs = np.ones((3, 2, 4, 4), dtype=np.float32)
    cat = pd.DataFrame({"id": ["a", "b", "c"]})
    io.write_shard(tmp_path / "s.npz", tmp_path / "s.parquet", imgs, cat)
    got, gcat = io.read_shards([tmp_path / "s.npz"] * 2, [tmp_path / "s.parquet"] * 2)
    assert got.shape == (6, 2, 4, 4) and list(gcat["id"]) == ["a", "b", "c"] * 2
    with pytest.raises(ValueError, match="catalogue has 2 rows but images hold 3"):
        io.write_shard(tmp_path / "t.npz", tmp_path / "t.parquet", imgs, cat.iloc[:2])
    with pytest.raises(ValueError, match="float32"):
        io.write_shard(tmp_path / "t.npz", tmp_path / "t.parquet", imgs.astype(np.float64), cat)
    assert not (tmp_path / "t.npz").exists()


def test_manifest_lists_digests_and_skips_logs(tmp_path):
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "x.log").write_text("time-dependent")
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "f.txt").write_text("hello")
    m = io.manifest(tmp_path)
    assert list(m["path"]) == ["a/f.txt"]
    assert m["sha256"][0] == "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
