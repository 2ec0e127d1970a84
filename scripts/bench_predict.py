#!/usr/bin/env python3
"""Survey-scale ``deepsky predict`` throughput (galaxies/s), printed (never asserted): run from the repo root.

    python scripts/bench_predict.py [--objects 20000] [--mosaic 4096] [--chunk-size 4096] [--model M.keras]

Builds a synthetic FITS mosaic (``--mosaic`` pixels square at 0.06"/px, white noise, GalSim Sersic
galaxies pasted at every catalogue position) and a Parquet catalogue of ``--objects`` positions, then
runs ``deepsky predict --partitioned`` over it exactly as a user would (chunks, one Parquet part each,
progress line), and prints

* galaxies/s over the chunk loop (reading, cutting, preprocessing, inference, writing), the
  start-up before it (checks, TensorFlow import, model load), the time per stage (cutting stamps
  through the WCS; the model, preprocessing included; writing parts) and the implied hours per
  10^6 and per 10^9 galaxies on this machine;
* the peak memory of the run (VmHWM), and that of a run over half as many objects (constant memory:
  they should match);
* the time a rerun takes to find every part written (resume).

The model: ``--model`` (e.g. results/size/models/sizenet.keras), else the default configuration's
architecture (sizenet, 64 px stamps at 0.06"/px) trained for one epoch on 256 simulated stamps:
inference speed depends on the architecture, not on the training.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

SCALE = 0.06


def make_model(d: Path) -> Path:
    """The default size model's architecture, trained one epoch on a small simulated shard."""
    import yaml

    from deepsky import sims
    from deepsky.learn import data, modelfile, tasks, train

    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    recipe = {**cfg["sims"]["size"], "per_shard": 256, "shards": 1, "method": "fft"}
    images, cat = sims.simulate_shard(recipe, 1, "size", 0)[:2]  # (images, catalogue[, psfs])
    split = pd.DataFrame({"id": cat["id"], "split": data.split_labels(len(cat), {"val": 0.2, "test": 0.1}, 1)})
    spec = tasks.preprocess_spec({"preprocess": cfg["size"]["preprocess"]}, recipe, 1)
    name = cfg["size"]["models"][0]
    train_cfg = {**cfg["train"], "epochs": 1, "batch_size": 64, "augment": False, "patience": 1}
    model, meta, _, _ = train.train_task("size", images, cat, split, spec, name, cfg["models"][name], train_cfg, 1,
                                         d / "scratch", log=lambda m: None)
    path = d / f"{name}.keras"
    modelfile.save_model(model, path, meta)
    return path


def make_field(d: Path, n: int, size: int, seed: int = 7) -> tuple[Path, Path]:
    """A size x size mosaic with n galaxies (pasted from 64 GalSim templates) and their catalogue."""
    import galsim
    from astropy.io import fits
    from astropy.wcs import WCS

    rng = np.random.default_rng(seed)
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval, w.wcs.crpix = [150.1, 2.2], [size / 2, size / 2]
    w.wcs.cd = np.array([[-SCALE, 0.0], [0.0, SCALE]]) / 3600
    image = rng.normal(0.0, 1.0, (size, size)).astype(np.float32)
    psf = galsim.Moffat(beta=2.5, fwhm=0.18)
    templates = []
    for _ in range(64):
        g = galsim.Sersic(n=float(rng.uniform(0.8, 4)), half_light_radius=float(rng.uniform(0.1, 0.6)), flux=2000)
        g = g.shear(q=float(rng.uniform(0.4, 1)), beta=float(rng.uniform(0, 180)) * galsim.degrees)
        templates.append(galsim.Convolve(g, psf).drawImage(nx=48, ny=48, scale=SCALE).array)
    x = rng.uniform(40, size - 40, n)
    y = rng.uniform(40, size - 40, n)
    for i in range(n):
        r, c = int(y[i]) - 24, int(x[i]) - 24
        image[r:r + 48, c:c + 48] += templates[i % 64]
    fits.PrimaryHDU(image, header=w.to_header()).writeto(d / "mosaic.fits", overwrite=True)
    ra, dec = w.all_pix2world(np.floor(x), np.floor(y), 0)
    pd.DataFrame({"id": np.arange(n), "ra": ra, "dec": dec}).to_parquet(d / "catalogue.parquet")
    return d / "mosaic.fits", d / "catalogue.parquet"


TIMED_RUN = """
import json, sys, time
from pathlib import Path
from deepsky.predict import pipeline, stamps
timers = {"cut": 0.0, "model": 0.0, "write": 0.0, "loop": 0.0}
def timed(obj, name, key):
    f = getattr(obj, name)
    def g(*a, **k):
        t0 = time.perf_counter()
        try:
            return f(*a, **k)
        finally:
            timers[key] += time.perf_counter() - t0
    setattr(obj, name, g)
timed(stamps.ImageSource, "chunk", "cut")
timed(pipeline.KerasPredictor, "__call__", "model")
from deepsky.predict import outputs
timed(outputs.DatasetWriter, "write", "write")
timed(pipeline, "_loop", "loop")
model, mosaic, cat, out, chunk = sys.argv[1:6]
lines = []
t0 = time.perf_counter()
pipeline.run(model, out, images=[mosaic], catalogue=cat, partitioned=True, chunk_size=int(chunk),
             log=lambda m: (lines.append(m), print("  " + m, file=sys.stderr, flush=True)))
wall = time.perf_counter() - t0
hwm = int([l.split()[1] for l in open("/proc/self/status") if l.startswith("VmHWM:")][0]) / 1024
print(json.dumps({"wall": wall, "peak_mb": hwm, **timers}))
"""


def timed_run(model, mosaic, cat, out, chunk) -> dict:
    import json

    env = {**os.environ, "PYTHONPATH": str(ROOT / "scripts"), "TF_CPP_MIN_LOG_LEVEL": "2"}
    p = subprocess.run([sys.executable, "-c", TIMED_RUN, str(model), str(mosaic), str(cat), str(out), str(chunk)],
                       env=env, stdout=subprocess.PIPE, text=True, check=True)
    return json.loads(p.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--objects", type=int, default=20_000)
    p.add_argument("--mosaic", type=int, default=4096, help="mosaic side in pixels (0.06\"/px)")
    p.add_argument("--chunk-size", type=int, default=4096)
    p.add_argument("--model", help="a trained .keras model (default: the default architecture, 1 epoch)")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench_predict.") as tmp:
        d = Path(tmp)
        t0 = time.perf_counter()
        model = Path(args.model) if args.model else make_model(d)
        mosaic, cat = make_field(d, args.objects, args.mosaic)
        half_cat = d / "half.parquet"
        pd.read_parquet(cat).iloc[: args.objects // 2].to_parquet(half_cat)
        print(f"setup: {time.perf_counter() - t0:.0f} s (model {model.name}, mosaic {args.mosaic}^2 px, "
              f"{args.objects} objects)", file=sys.stderr)
        full = timed_run(model, mosaic, cat, d / "out", args.chunk_size)
        half = timed_run(model, mosaic, half_cat, d / "half", args.chunk_size)
        t0 = time.perf_counter()
        timed_run(model, mosaic, cat, d / "out", args.chunk_size)
        rerun = time.perf_counter() - t0
    rate = args.objects / full["loop"]
    print(f"\ndeepsky predict --partitioned, {args.objects} galaxies, chunks of {args.chunk_size}, "
          f"{os.cpu_count()} CPU core(s)")
    print(f"  galaxies/s     : {rate:,.0f} over the chunk loop ({full['loop']:.1f} s: reading, cutting, "
          "preprocessing, inference, writing)")
    print(f"  start-up       : {full['wall'] - full['loop']:.1f} s (checks, TensorFlow import, model load); "
          f"end to end {args.objects / full['wall']:,.0f} galaxies/s")
    for k in ("cut", "model", "write"):
        print(f"  {k:<15}: {full[k]:6.1f} s  ({args.objects / max(full[k], 1e-9):,.0f} galaxies/s on its own)")
    print(f"  10^6 galaxies  : {1e6 / rate / 3600:.2f} h on this machine; 10^9: {1e9 / rate / 3600:,.0f} h")
    print(f"  peak memory    : {full['peak_mb']:.0f} MB ({args.objects} objects), {half['peak_mb']:.0f} MB "
          f"({args.objects // 2})")
    print(f"  rerun (resume) : {rerun:.1f} s with every part already written (process start included)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
