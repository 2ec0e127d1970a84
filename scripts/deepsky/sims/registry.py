"""Simulation recipes by ``kind``: explicit registration, modules imported only when used.

A *recipe* is one entry of ``config['sims']`` (validated and filled with defaults by the workflow's
schema); its ``kind`` names the module that simulates it.  Each recipe module exposes
``simulate_shard(recipe, seed, dataset, shard, progress=None) -> (images, catalogue)``: float32
images (N, bands, H, W) and a catalogue with one row per stamp.

The table below is the whole registry: adding a recipe means adding a module and a line here.
Nothing is imported at registration time, so a simulate job imports only its own recipe (and the
workflow derives each job's code inputs from this table: editing one recipe reruns only its shards).
"""

from __future__ import annotations

import importlib
from types import ModuleType

#: recipe kind -> module exposing ``simulate_shard``
RECIPES: dict[str, str] = {
    "sersic": "deepsky.sims.sersic",  # single-Sersic galaxies: the size task's pre-training data
    "hst_bulge_disk": "deepsky.sims.hst_target",  # HST-like bulge+disk galaxies: the offline transfer target
    "stargal": "deepsky.sims.stargal",  # SDSS-like ugriz stars and galaxies
}


def recipe_module(kind: str, dataset: str = "?") -> ModuleType:
    """The module that simulates recipes of ``kind`` (a ValueError names the known kinds)."""
    try:
        name = RECIPES[kind]
    except KeyError:
        raise ValueError(f"sims.{dataset}.kind: unknown recipe kind {kind!r}; known: {sorted(RECIPES)}") from None
    return importlib.import_module(name)


def simulate_shard(recipe: dict, seed: int, dataset: str, shard: int, progress=None):
    """One shard of ``recipe`` (dispatched on ``recipe['kind']``): (images, catalogue)."""
    return recipe_module(recipe["kind"], dataset).simulate_shard(recipe, seed, dataset, shard, progress=progress)
