"""CPU inference time per galaxy of saved models, measured so that it compares with the Sersic fit.

The fit (``baselines.fit_sersic``) runs on one core and its clock covers the whole fit of one stamp.
A model is timed the same way: on a fixed number of compute threads (``set_threads``, before the
backend runs anything), end to end from raw stamps in electrons -- preprocessing, the network in
batches, decoding to arcsec -- after one warm-up pass (graph tracing is a one-off cost, not a per-galaxy
one), as the median of ``repeats`` passes over the same stamps.
"""

from __future__ import annotations

import os
import time

import numpy as np
import pandas as pd


def set_threads(n: int) -> str:
    """Limit the Keras backend to ``n`` compute threads; call before the backend runs any op.

    Returns a short description of what was set (written into the timing table).
    """
    n = int(n)
    if n < 1:
        raise ValueError(f"study.baseline.threads must be >= 1, got {n}")
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    if backend == "tensorflow":
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(n)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    elif backend == "torch":
        import torch

        torch.set_num_threads(n)
    elif backend == "jax":
        # XLA:CPU reads its thread settings once, when jax first starts
        flags = os.environ.get("XLA_FLAGS", "")
        os.environ["XLA_FLAGS"] = (f"{flags} --xla_cpu_multi_thread_eigen={'true' if n > 1 else 'false'} "
                                   f"intra_op_parallelism_threads={n}").strip()
    else:
        raise ValueError(f"cannot limit threads of Keras backend {backend!r}")
    return f"{backend}, {n} thread(s)"


def end_to_end(model, meta: dict, images: np.ndarray, cat: pd.DataFrame, batch_size: int = 512) -> np.ndarray:
    """Raw stamps -> sizes in the target's unit, with the preprocessing saved beside the model."""
    from ..learn import data, inference, tasks

    x = data.preprocess(images, meta["preprocess"], psf_fwhm=inference.psf_fwhm(cat, meta["preprocess"]))
    out = inference.predict(model, x, batch_size=batch_size)
    return tasks.get_task(meta["task"]).decode(out, meta["target"])["pred"].to_numpy()


def time_model(model, meta: dict, images: np.ndarray, cat: pd.DataFrame, repeats: int = 5,
               batch_size: int = 512) -> dict:
    """Median wall-clock seconds per galaxy of ``end_to_end`` over ``repeats`` passes (after a warm-up)."""
    if len(images) == 0:
        raise ValueError("no stamps to time the model on")
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    end_to_end(model, meta, images[:batch_size], cat.iloc[:batch_size], batch_size)  # warm-up
    passes = []
    for _ in range(int(repeats)):
        t0 = time.perf_counter()
        end_to_end(model, meta, images, cat, batch_size)
        passes.append(time.perf_counter() - t0)
    sec = float(np.median(passes)) / len(images)
    return {"stamps": int(len(images)), "repeats": int(repeats), "batch_size": int(batch_size),
            "seconds_per_galaxy": sec, "stamps_per_s": 1.0 / sec,
            "spread": float((max(passes) - min(passes)) / np.median(passes))}
