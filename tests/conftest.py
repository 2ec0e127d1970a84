"""Shared by every test: the repository's scripts/ on sys.path, the tiny recipe, shared fixtures.

tests/unit holds library tests, tests/workflow the snakemake runs (marked ``workflow`` here);
helpers shared by both live beside this file (snakerun: the one snakemake runner; fakes of SDSS
and CANDELS; a tiny trained model).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "tests"))

from candels_fixtures import field, server  # noqa: E402,F401  (fixtures of the fake CANDELS server)
from tiny_model import model_file  # noqa: E402,F401  (fixture: a tiny trained size model)

TINY = ROOT / "tests" / "configs" / "tiny.yaml"
WORKFLOW_TESTS = ROOT / "tests" / "workflow"


def pytest_collection_modifyitems(items):
    """Every test under tests/workflow runs snakemake: mark it (``-m "not workflow"`` skips them)."""
    for item in items:
        if WORKFLOW_TESTS in Path(item.path).parents:
            item.add_marker(pytest.mark.workflow)


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture
def tiny_recipe() -> dict:
    """The tiny size recipe with every schema default filled in (as the workflow would)."""
    from snakemake.utils import validate

    cfg = yaml.safe_load(TINY.read_text())
    validate(cfg, str(ROOT / "workflow" / "schemas" / "config.schema.yaml"), set_default=True)
    return cfg["sims"]["size"]
