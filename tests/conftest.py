"""Shared fixtures: the repository root, a tiny recipe, and a copy of the workflow for snakemake runs."""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

TINY = ROOT / "tests" / "configs" / "tiny.yaml"


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


def tiny_config() -> dict:
    return yaml.safe_load(TINY.read_text())


@pytest.fixture
def tiny_recipe() -> dict:
    """The tiny size recipe with every schema default filled in (as the workflow would)."""
    from snakemake.utils import validate

    cfg = copy.deepcopy(tiny_config())
    validate(cfg, str(ROOT / "workflow" / "schemas" / "config.schema.yaml"), set_default=True)
    return cfg["sims"]["size"]


def copy_workflow(dest: Path) -> Path:
    """Copy the parts of the repo a workflow run needs into ``dest`` (so tests may edit them)."""
    for part in ("workflow", "scripts", "config", "tests/configs"):
        shutil.copytree(ROOT / part, dest / part, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return dest


def run_snakemake(workdir: Path, *args: str, timeout: int = 900, check: bool = True, env=None) -> subprocess.CompletedProcess:
    """Run snakemake in ``workdir`` (a copy of the workflow); returns the completed process."""
    cmd = [sys.executable, "-m", "snakemake", "--cores", "2", *args]
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}")
    return proc


def planned_jobs(proc: subprocess.CompletedProcess) -> dict[str, int]:
    """Rule -> job count from a dry run's 'Job stats' table (empty when nothing is to be done)."""
    out = proc.stdout + proc.stderr
    jobs: dict[str, int] = {}
    if "Job stats:" not in out:
        return jobs
    table = out.split("Job stats:", 1)[1].splitlines()
    for line in table[3:]:
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit():
            break
        if parts[0] != "total":
            jobs[parts[0]] = int(parts[1])
    return jobs
