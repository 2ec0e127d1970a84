#!/usr/bin/env python3
"""Speed and label figures for deepsky, printed (never asserted): run from the repo root.

    python scripts/benchmark.py sims [--stamps 600]      # stamps/s/core: ours vs GalSim's default FFT
    python scripts/benchmark.py containment              # light inside the stamp at the extremes

``sims`` draws the same stamps of the default recipe (config/config.yaml, defaults filled from the
schema) in one process (= one core) with our path (photon shooting, n sorted for GalSim's Sersic
cache) and with the naive path (GalSim's default FFT drawImage), prints stamps/s for each and their
ratio, and re-checks the labels (half-light ellipse holds half the light within 1%) on the extremes.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import yaml  # noqa: E402

from deepsky import sims  # noqa: E402
from deepsky.sims import sersic  # noqa: E402


def default_recipe(dataset: str = "size") -> dict:
    from snakemake.utils import validate

    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    validate(cfg, str(ROOT / "workflow" / "schemas" / "config.schema.yaml"), set_default=True)
    return cfg["sims"][dataset]


def one_core() -> None:
    """Pin this process to one CPU so 'per core' means one core."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})


def bench_sims(args) -> None:
    one_core()
    recipe = dict(default_recipe(), per_shard=args.stamps)
    rates = {}
    for method in ("phot", "fft"):
        n = args.stamps if method == "phot" else max(args.stamps // 5, 20)
        r = dict(recipe, per_shard=n)
        sims.simulate_shard(dict(r, per_shard=3), 1, "bench", 99)  # warm GalSim caches / imports
        t0 = time.perf_counter()
        sersic.simulate_shard(r, 1, "bench", 0, method=method)
        dt = time.perf_counter() - t0
        rates[method] = n / dt
        print(f"{method:>5}: {n:5d} stamps in {dt:6.2f} s -> {rates[method]:7.1f} stamps/s/core")
    print(f"ratio ours (phot) / naive (GalSim default FFT): {rates['phot'] / rates['fft']:.2f}x")
    worst = 0.0
    for n_s, r_e, q in [(recipe["sersic_n"]["max"], recipe["r_e"]["max"], recipe["q"]["min"]),
                        (recipe["sersic_n"]["min"], recipe["r_e"]["min"], 1.0)]:
        frac = sersic.half_light_check(n_s, r_e, q, 37.0)
        worst = max(worst, abs(frac - 0.5))
        print(f"label check n={n_s} R_e={r_e}\" q={q}: half-light ellipse holds {frac:.4f} of the light")
    print(f"labels {'PASS' if worst < 0.01 else 'FAIL'} (|fraction - 0.5| <= {worst:.4f}, limit 0.01)")


def bench_containment(args) -> None:
    recipe = default_recipe()
    side = recipe["stamp"] * recipe["pixel_scale"]
    print(f"light inside the {recipe['stamp']}x{recipe['stamp']} stamp ({side:.2f}\" a side), "
          f"PSF-convolved, round galaxy, centred:")
    print("| R_e [arcsec] | " + " | ".join(f"n={n}" for n in (0.5, 1, 2, 4, 6)) + " |")
    print("|---|" + "---|" * 5)
    for r_e in (0.1, 0.25, 0.5, 1.0):
        row = [sersic.stamp_containment(n, r_e, recipe) for n in (0.5, 1, 2, 4, 6)]
        print(f"| {r_e} | " + " | ".join(f"{f:.3f}" for f in row) + " |")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="what", required=True)
    s = sub.add_parser("sims", help="simulation stamps/s/core, ours vs naive, with the label check")
    s.add_argument("--stamps", type=int, default=600)
    s.set_defaults(func=bench_sims)
    c = sub.add_parser("containment", help="fraction of light inside the stamp")
    c.set_defaults(func=bench_containment)
    args = p.parse_args(argv)
    args.func(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
