"""Seeds and per-stamp random draws shared by every simulation recipe.

Every stamp is a pure function of (seed, dataset, shard, index): the helpers here turn that tuple
into seeds and uniform draws (``numpy.random.SeedSequence``) and into the provenance columns that
start every shard catalogue.
"""

from __future__ import annotations

import zlib

import numpy as np


def dataset_key(dataset: str) -> int:
    """Stable 32-bit integer for a dataset name (CRC-32 of its UTF-8 bytes)."""
    return zlib.crc32(dataset.encode("utf-8"))


def stamp_seed(seed: int, dataset: str, shard: int, index: int) -> int:
    """Positive 31-bit seed for one stamp's GalSim deviate (0 would mean 'seed from the clock')."""
    state = np.random.SeedSequence([seed, dataset_key(dataset), shard, index]).generate_state(1)
    return int(state[0] % (2**31 - 1)) + 1


def stamp_identity(dataset: str, shard: int, n: int) -> dict:
    """The provenance columns every shard catalogue starts with: id, dataset, shard, index."""
    return {
        "id": [f"{dataset}-{shard:04d}-{i:06d}" for i in range(n)],
        "dataset": dataset,
        "shard": np.full(n, shard, dtype=np.int32),
        "index": np.arange(n, dtype=np.int32),
    }


def stamp_uniforms(seed: int, dataset: str, shard: int, index: int, k: int) -> np.ndarray:
    """k uniform [0, 1) draws that belong to one stamp alone (independent of the shard's length)."""
    return np.random.default_rng(np.random.SeedSequence([seed, dataset_key(dataset), shard, index, 1])).random(k)


def log_uniform(rng: np.random.Generator, lo: float, hi: float, size: int) -> np.ndarray:
    """Draws uniform in ln(x) between lo and hi (both > 0)."""
    return np.exp(rng.uniform(np.log(lo), np.log(hi), size))
