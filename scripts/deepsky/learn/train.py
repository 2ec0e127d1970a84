"""Seeded, resumable training of registry models on shard caches (Keras 3, any backend).

``fit_model`` trains with a seeded batch order and seeded flips/rotations, early stopping on the
validation loss (best weights restored), and an epoch checkpoint in a scratch folder: if the job is
killed, the next run resumes from the last finished epoch and ends with the same weights as an
uninterrupted run (batch order and augmentation depend only on (seed, epoch), and the optimizer
state, step count and random-generator states travel in the checkpoint).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from .. import io
from . import data, inference, modelfile, models, tasks


# --------------------------------------------------------------------------- determinism
def configure_determinism(seed: int) -> None:
    """Reset Keras' global state, seed Python, numpy and the backend; make TensorFlow ops deterministic.

    ``clear_session`` resets the automatic layer names (which enter the checkpoint digest through
    ``model.to_json()``) and the global seed generator, so a model built after this call is the same
    whether it is the first or the tenth one built in the process.
    """
    keras.backend.clear_session()
    keras.utils.set_random_seed(int(seed))
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf  # only the TF backend needs (and has) this switch

        tf.config.experimental.enable_op_determinism()


PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")


def configure_precision(precision: str = "float32") -> None:
    """Set Keras' global dtype policy before a model is built.

    ``mixed_float16`` (GPUs with tensor cores) or ``mixed_bfloat16`` (recent CPUs, TPUs, A100+) compute
    in half precision with float32 weights; Keras wraps the optimizer in a loss-scale optimizer for
    float16 by itself. Model heads are float32 (see deepsky.learn.models) so losses and outputs stay exact
    enough. Results differ from float32 runs: the choice is part of the training config digest.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"train.precision must be one of {PRECISIONS}, got {precision!r}")
    keras.mixed_precision.set_global_policy(precision)


def device_summary() -> str:
    """One line naming the Keras backend and the accelerators it sees (for job logs)."""
    backend = keras.backend.backend()
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "<unset>")
    devices = "?"
    try:
        if backend == "jax":
            import jax

            devices = ",".join(sorted({d.platform for d in jax.devices()}))
        elif backend == "tensorflow":
            import tensorflow as tf

            devices = ",".join(sorted({d.device_type for d in tf.config.list_logical_devices()}))
        elif backend == "torch":
            import torch

            devices = "cuda" if torch.cuda.is_available() else "cpu"
    except Exception as exc:  # reporting only: never fail a job over it
        devices = f"unknown ({exc})"
    return f"keras backend {backend}, devices {devices}, CUDA_VISIBLE_DEVICES={visible}"


# --------------------------------------------------------------------------- data feed
class StampBatches(keras.utils.PyDataset):
    """Training batches from in-memory arrays, shuffled and augmented as a pure function of (seed, epoch)."""

    def __init__(self, x: np.ndarray, y: np.ndarray, batch_size: int, seed: int, augment: bool, epoch: int = 0):
        super().__init__()
        self.x, self.y = x, y
        self.batch_size = int(batch_size)
        self.seed, self.augment = int(seed), bool(augment)
        self.set_epoch(epoch)

    def set_epoch(self, epoch: int) -> None:
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, 0xBA7C, int(epoch)]))
        self.order = rng.permutation(len(self.x))
        self.codes = rng.integers(0, 8, len(self.x)) if self.augment else None
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return max(1, len(self.x) // self.batch_size)  # drop the ragged last batch: fixed shapes

    def __getitem__(self, i: int):
        sel = slice(i * self.batch_size, (i + 1) * self.batch_size)
        idx = self.order[sel]
        xb = self.x[idx]
        if self.codes is not None:
            xb = data.dihedral(xb, self.codes[sel])
        return xb, self.y[idx]

    def on_epoch_end(self) -> None:
        self.set_epoch(self.epoch + 1)


# --------------------------------------------------------------------------- checkpointing
#: a committed checkpoint folder: ``epoch-NNNNN`` (the number of finished epochs)
CHECKPOINT = re.compile(r"^epoch-(\d{5})$")
CHECKPOINT_FILES = ("last.keras", "best.weights.h5")


def latest_checkpoint(scratch: str | os.PathLike) -> Path | None:
    """The newest committed checkpoint folder under ``scratch`` (``epoch-NNNNN``), or None."""
    scratch = Path(scratch)
    if not scratch.is_dir():
        return None
    found = sorted((int(m.group(1)), p) for p in scratch.iterdir() if (m := CHECKPOINT.match(p.name)) and p.is_dir())
    return found[-1][1] if found else None


def _fsync(path: Path) -> None:
    """Flush a file or folder to disk (so a committed checkpoint survives a power cut too)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class ResumableTraining(keras.callbacks.Callback):
    """Per-epoch checkpoint + early stopping whose state survives a kill.

    Scratch layout: one committed folder ``epoch-NNNNN/`` holding ``last.keras`` (model + optimizer),
    ``best.weights.h5`` and ``state.json`` (epoch, history, best validation loss, epochs without
    improvement, configuration digest, elapsed seconds, random-generator states and the SHA-256 of
    the two other files). A checkpoint is written into a temporary folder beside it and renamed to
    ``epoch-NNNNN`` when complete; that rename is the commit, so the three files always come from
    the same epoch, whenever the job is killed (a model of epoch k beside the state of epoch k-1
    would train epoch k twice). Older folders are removed after the rename. A checkpoint that fails
    its digests or is for another configuration is discarded and training starts over.
    """

    def __init__(self, scratch: Path, digest: str, patience: int, feed: StampBatches,
                 log: Callable[[str], None] = print):
        super().__init__()
        self.scratch, self.digest, self.patience, self.feed, self.log = Path(scratch), digest, patience, feed, log
        self.state = {"digest": digest, "epoch": -1, "history": [], "best": None, "wait": 0, "seconds": 0.0}
        self._t0 = time.perf_counter()

    # -- resume
    def load(self) -> keras.Model | None:
        ckpt = latest_checkpoint(self.scratch)
        if ckpt is None:
            if (self.scratch / "state.json").exists():
                self.log(f"checkpoint in {self.scratch} has an older layout; starting over")
            self._discard()
            return None
        try:
            state = json.loads((ckpt / "state.json").read_text())
        except (OSError, ValueError) as exc:
            return self._start_over(f"checkpoint {ckpt} is unreadable ({exc})")
        if state.get("digest") != self.digest:
            return self._start_over(f"checkpoint in {self.scratch} is for another configuration")
        files = state.get("files", {})
        if set(files) != set(CHECKPOINT_FILES) or any(
                not (ckpt / n).is_file() or io.file_digest(ckpt / n) != files[n] for n in CHECKPOINT_FILES):
            return self._start_over(f"checkpoint {ckpt} is damaged (its files do not match state.json)")
        self.state = state
        self.log(f"resuming from the checkpoint after epoch {state['epoch'] + 1}")
        model = keras.models.load_model(ckpt / "last.keras", safe_mode=True)
        restore_rng_state(model, state.get("rng", []))
        return model

    def _start_over(self, why: str) -> None:
        self.log(f"{why}; starting over")
        self._discard()
        return None

    def _discard(self) -> None:
        """Remove every checkpoint (committed or partial) of this scratch folder."""
        if self.scratch.is_dir():
            for p in self.scratch.iterdir():
                shutil.rmtree(p) if p.is_dir() else p.unlink()

    def best_weights(self) -> Path:
        return latest_checkpoint(self.scratch) / "best.weights.h5"

    def on_epoch_begin(self, epoch, logs=None):
        self._t0 = time.perf_counter()
        self.feed.set_epoch(epoch)

    def on_epoch_end(self, epoch, logs=None):
        logs = {k: float(v) for k, v in (logs or {}).items()}
        self.state["seconds"] += time.perf_counter() - self._t0
        row = {"epoch": epoch + 1, **logs, "lr": float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)),
               "seconds": self.state["seconds"]}
        self.state["history"].append(row)
        val = logs.get("val_loss", logs.get("loss"))
        improved = self.state["best"] is None or val < self.state["best"]
        if improved:
            self.state["best"], self.state["wait"] = val, 0
        else:
            self.state["wait"] += 1
        self.state["epoch"] = epoch
        self.state["rng"] = rng_state(self.model)
        self._commit(epoch, improved)
        self.log(
            f"epoch {epoch + 1}: " + " ".join(f"{k}={v:.4g}" for k, v in logs.items())
            + f" ({self.state['seconds']:.0f} s so far)"
        )
        if self.state["wait"] >= self.patience:
            self.log(f"early stop: no validation improvement for {self.patience} epochs")
            self.model.stop_training = True

    def _commit(self, epoch: int, improved: bool) -> None:
        """Write the checkpoint of ``epoch`` into a temporary folder, then rename it into place."""
        previous = latest_checkpoint(self.scratch)
        name = f"epoch-{epoch + 1:05d}"
        part = self.scratch / io.temp_name(name)
        part.mkdir(parents=True)
        modelfile.write_keras(self.model, part / "last.keras")
        best = part / "best.weights.h5"
        if improved or previous is None:
            self.model.save_weights(best)
        else:  # unchanged best weights: share the previous checkpoint's file (copy where links fail)
            try:
                os.link(previous / "best.weights.h5", best)
            except OSError:
                shutil.copy2(previous / "best.weights.h5", best)
        self.state["files"] = {n: io.file_digest(part / n) for n in CHECKPOINT_FILES}
        io.write_json(part / "state.json", self.state)
        for p in (*[part / n for n in (*CHECKPOINT_FILES, "state.json")], part):
            _fsync(p)
        os.rename(part, self.scratch / name)  # the commit
        _fsync(self.scratch)
        for p in self.scratch.iterdir():  # earlier checkpoints and leftovers of killed commits
            if p.name != name:
                shutil.rmtree(p) if p.is_dir() else p.unlink()


def _rng_variables(model: keras.Model) -> list:
    """The model's random-generator states (e.g. Dropout's SeedGenerator), in a stable order.

    ``.keras`` files store weights and optimizer state but not these: without them a resumed run
    would draw different dropout masks from an uninterrupted one.
    """
    weights = {id(v) for v in model.weights}
    return [v for v in model.variables if id(v) not in weights]


def rng_state(model: keras.Model) -> list[dict]:
    """JSON-able snapshot of the model's random-generator states."""
    return [{"path": v.path, "value": keras.ops.convert_to_numpy(v).tolist()} for v in _rng_variables(model)]


def restore_rng_state(model: keras.Model, saved: list[dict]) -> None:
    """Put back the random-generator states saved by :func:`rng_state` (same architecture)."""
    variables = _rng_variables(model)
    # compare count and shapes only: automatic names (seed_generator_1, ...) depend on what else
    # the process built before loading the checkpoint
    if len(variables) != len(saved) or any(tuple(v.shape) != np.shape(s["value"]) for v, s in zip(variables, saved)):
        raise ValueError("checkpoint random-generator states do not match the model's "
                         f"({[s['path'] for s in saved]} vs {[v.path for v in variables]})")
    for v, s in zip(variables, saved):
        v.assign(np.asarray(s["value"], dtype=v.dtype))


# --------------------------------------------------------------------------- fitting
def make_optimizer(train_cfg: dict, steps_per_epoch: int) -> keras.optimizers.Optimizer:
    lr = float(train_cfg["learning_rate"])
    if train_cfg.get("schedule", "cosine") == "cosine":
        lr = keras.optimizers.schedules.CosineDecay(lr, decay_steps=int(train_cfg["epochs"]) * steps_per_epoch,
                                                    alpha=0.02)
    return keras.optimizers.Adam(learning_rate=lr)


def fit_model(model: keras.Model, x_train, y_train, x_val, y_val, train_cfg: dict, seed: int,
              scratch: str | os.PathLike, loss="huber", digest_extra=None,
              log: Callable[[str], None] = print) -> tuple[keras.Model, pd.DataFrame]:
    """Train ``model`` (resuming from ``scratch`` when a matching checkpoint exists).

    Returns the model holding the best-validation weights and the per-epoch history table.
    """
    scratch = Path(scratch)
    scratch.mkdir(parents=True, exist_ok=True)
    feed = StampBatches(x_train, y_train, train_cfg["batch_size"], seed, train_cfg.get("augment", True))
    digest = modelfile.config_digest({"train": train_cfg, "seed": seed, "n": len(x_train), "extra": digest_extra,
                            "model": model.to_json()})
    ckpt = ResumableTraining(scratch, digest, int(train_cfg["patience"]), feed, log)
    resumed = ckpt.load()
    if resumed is not None:
        model = resumed
    else:
        model.compile(optimizer=make_optimizer(train_cfg, len(feed)), loss=loss)
    start = ckpt.state["epoch"] + 1
    epochs = int(train_cfg["epochs"])
    done = ckpt.state["wait"] >= int(train_cfg["patience"])
    if start < epochs and not done:
        model.fit(feed, validation_data=(x_val, y_val), epochs=epochs, initial_epoch=start,
                  callbacks=[ckpt], verbose=0, shuffle=False)
    model.load_weights(ckpt.best_weights())
    history = pd.DataFrame(ckpt.state["history"])
    # state.json stores rows with sorted keys: fix one column order so resumed == uninterrupted
    history = history[["epoch"] + sorted(c for c in history.columns if c != "epoch")] if len(history) else history
    return model, history


def clear_scratch(scratch: str | os.PathLike) -> None:
    """Remove a finished job's checkpoint folder."""
    shutil.rmtree(scratch, ignore_errors=True)


# --------------------------------------------------------------------------- tasks
def train_task(task_name: str, images: np.ndarray, cat: pd.DataFrame, split: pd.DataFrame, spec: dict,
               model_name: str, model_opts: dict, train_cfg: dict, seed: int, scratch,
               log: Callable[[str], None] = print):
    """Train ``model_name`` on the train split; returns (model, meta, history, timing)."""
    task = tasks.get_task(task_name)
    cat = data.split_frame(cat, split)
    tr, va = (cat["split"] == "train").to_numpy(), (cat["split"] == "val").to_numpy()
    tr = data.train_subset(tr, float(train_cfg.get("fraction", 1.0)), seed)
    target = task.fit_target(cat.loc[tr, task.label])
    x = data.preprocess(images, spec, psf_fwhm=inference.psf_fwhm(cat, spec))
    y = task.encode(cat[task.label], target)
    log(f"{task_name}/{model_name}: {tr.sum()} train, {va.sum()} validation stamps, input {x.shape[1:]}")
    configure_determinism(seed)
    configure_precision(train_cfg.get("precision", "float32"))
    log(device_summary())
    head = model_opts.get("head", "point")
    outputs, loss = (2 * task.outputs, models.gaussian_beta_nll) if head == "gaussian" else (task.outputs, task.loss)
    model = models.build(model_name, data.input_shape(spec), outputs, **model_opts)
    log(f"{model_name}: {model.count_params()} parameters")
    t0 = time.perf_counter()
    model, history = fit_model(model, x[tr], y[tr], x[va], y[va], train_cfg, seed, scratch,
                               loss=loss, digest_extra={"spec": spec, "opts": model_opts}, log=log)
    meta = {
        "task": task_name,
        "model": model_name,
        "label": task.label,
        "unit": task.unit,
        "preprocess": spec,
        "target": target,
        "model_options": model_opts,
        "train": train_cfg,
        "seed": seed,
        "params": int(model.count_params()),
        "epochs_run": int(len(history)),
        "best_epoch": int(history["val_loss"].idxmin() + 1) if len(history) else 0,
        "n_train": int(tr.sum()),
        "config_digest": modelfile.config_digest({"spec": spec, "opts": model_opts, "train": train_cfg,
                                                  "seed": seed, "model": model_name}),
    }
    timing = {"train_seconds": float(history["seconds"].iloc[-1]) if len(history) else time.perf_counter() - t0,
              "epochs_run": meta["epochs_run"], "n_train": meta["n_train"],
              "train_samples_per_s": meta["n_train"] * meta["epochs_run"] / max(
                  float(history["seconds"].iloc[-1]) if len(history) else 1.0, 1e-9)}
    # wall-clock figures differ from run to run: keep them out of the model metadata and history
    return model, meta, history.drop(columns=["seconds"], errors="ignore"), timing
