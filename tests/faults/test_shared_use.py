"""Fault injection: shared use of a checkout (issue 16, item 7).

* results respect the user's umask (a group-shared project folder stays shared);
* a finished run that is copied or moved to another folder is still finished (rule inputs are
  paths relative to the working directory, not absolute paths of the checkout).
"""

from __future__ import annotations

import os
import stat

import numpy as np
import pandas as pd
import pytest

from deepsky import io


@pytest.fixture
def umask():
    old = os.umask(0o022)
    yield lambda m: os.umask(m)
    os.umask(old)


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_results_respect_umask(tmp_path, umask, mask, mode):
    umask(mask)
    io.write_json(tmp_path / "a.json", {"x": 1})
    io.write_parquet(tmp_path / "a.parquet", pd.DataFrame({"x": [1, 2]}))
    io.write_shard(tmp_path / "s.npz", tmp_path / "s.parquet", np.zeros((1, 1, 4, 4), np.float32),
                   pd.DataFrame({"id": ["a"]}))
    for name in ("a.json", "a.parquet", "s.npz", "s.parquet"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == mode, name
