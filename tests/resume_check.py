"""Run by tests/unit/test_resume_manifest.py in a subprocess (one Keras backend per process):

trains a small dropout + batch-norm CNN for 4 epochs uninterrupted, then again with a simulated kill
right after the epoch-2 checkpoint followed by a resume in a fresh model, and prints a JSON report
comparing the two (history, optimizer step count, every weight, dropout RNG state).
"""

import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import keras  # noqa: E402

from deepsky.learn import models, train  # noqa: E402

CFG = {"epochs": 4, "batch_size": 32, "learning_rate": 0.002, "schedule": "cosine", "patience": 10,
       "augment": True}
rng = np.random.default_rng(0)
x = rng.normal(size=(192, 16, 16, 1)).astype("float32")
y = (x[:, 4:12, 4:12].mean(axis=(1, 2, 3)) * 4).astype("float32")[:, None]


class Killed(Exception):
    pass


def fit(scratch, kill_after=None):
    def log(msg):
        if kill_after is not None and msg.startswith(f"epoch {kill_after}:"):
            raise Killed  # after the checkpoint of that epoch was written, like a kill -9 there

    train.configure_determinism(7)
    m = models.build("cnn", (16, 16, 1), 1, width=4, dropout=0.3)
    return train.fit_model(m, x[:160], y[:160], x[160:], y[160:], CFG, 7, scratch, log=log)


def last_epoch(scratch):
    ckpt = train.latest_checkpoint(scratch)
    m = keras.models.load_model(ckpt / "last.keras")
    return m, json.loads((ckpt / "state.json").read_text())


tmp = Path(tempfile.mkdtemp())
m1, h1 = fit(tmp / "a")
full, state_a = last_epoch(tmp / "a")
try:
    fit(tmp / "b", kill_after=2)
    raise SystemExit("the simulated kill did not happen")
except Killed:
    pass
killed_state = json.loads((train.latest_checkpoint(tmp / "b") / "state.json").read_text())
m2, h2 = fit(tmp / "b")
resumed, state_b = last_epoch(tmp / "b")
report = {
    "backend": keras.backend.backend(),
    "killed_after_epoch": killed_state["epoch"] + 1,
    "history_equal": h1.drop(columns="seconds").equals(h2.drop(columns="seconds")),
    "history_columns_equal": list(h1.columns) == list(h2.columns),
    "losses": [list(h1["loss"]), list(h2["loss"])],
    "iterations": [int(keras.ops.convert_to_numpy(full.optimizer.iterations)),
                   int(keras.ops.convert_to_numpy(resumed.optimizer.iterations))],
    "last_weights_equal": all(np.array_equal(a, b) for a, b in zip(full.get_weights(), resumed.get_weights())),
    "best_weights_equal": all(np.array_equal(a, b) for a, b in zip(m1.get_weights(), m2.get_weights())),
    "optimizer_vars_equal": all(
        np.array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b))
        for a, b in zip(full.optimizer.variables, resumed.optimizer.variables)),
    # values only: automatic generator names depend on what else the process built
    "rng_equal": [s["value"] for s in state_a["rng"]] == [s["value"] for s in state_b["rng"]],
    "rng_advanced": [s["value"] for s in state_a["rng"]] != [s["value"] for s in killed_state["rng"]],
}
shutil.rmtree(tmp, ignore_errors=True)
print("REPORT " + json.dumps(report))
