"""Fault injection: shared use of a checkout (issue 16, item 7).

* results respect the user's umask (a group-shared project folder stays shared);
* a finished run that is copied or moved to another folder is still finished (rule inputs are
  paths relative to the working directory, not absolute paths of the checkout).
"""

from __future__ import annotations

import os
import shutil
import stat

import numpy as np
import pandas as pd
import pytest

import snakerun
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


@pytest.mark.workflow
@pytest.mark.parametrize("how", ["copy", "move"])
def test_copied_or_moved_checkout_has_nothing_to_do(tmp_path, how):
    """A finished run inside its checkout (the normal layout: results/ beside workflow/), copied with
    its metadata (cp -a) or moved to another folder, is still finished there."""
    a = snakerun.copy_workflow(tmp_path / "a")
    target = "results/size/split.parquet"
    snakerun.run(a, target, snakefile=a / "workflow" / "Snakefile", configfiles=[a / "tests/configs/tiny.yaml"])
    b = tmp_path / "elsewhere" / "b"
    if how == "copy":
        shutil.copytree(a, b, symlinks=True)  # copy2: modification times kept, as cp -a does
    else:
        b.parent.mkdir()
        a.rename(b)
    proc = snakerun.run(b, "-n", target, snakefile=b / "workflow" / "Snakefile",
                        configfiles=[b / "tests/configs/tiny.yaml"])
    assert snakerun.planned_jobs(proc) == {}, snakerun.output(proc)[-3000:]
    # and a code change there still reruns what depends on it (relative inputs are still inputs)
    lib = b / "scripts" / "deepsky" / "learn" / "data.py"
    lib.write_text(lib.read_text() + "\n")
    proc = snakerun.run(b, "-n", target, snakefile=b / "workflow" / "Snakefile",
                        configfiles=[b / "tests/configs/tiny.yaml"])
    assert snakerun.planned_jobs(proc) == {"split": 1}, snakerun.output(proc)[-3000:]
