"""Transfer learning of the size model to a target domain: strategies and label budgets.

Strategies (all share the base model's preprocessing, so every model sees the same inputs):

* ``zeroshot``: the simulation-trained size model as is (no target labels, budget 0);
* ``head``: the base model with every layer frozen except its head (layers named ``head_*``),
  the head retrained from its pre-trained weights; frozen batch-norm layers stay in inference mode;
* ``full``: every layer trained from the base weights at the (low) fine-tuning learning rate;
* ``scratch``: the same architecture and options, freshly initialised, trained on target labels
  only (its target standardisation is fitted on those labels).

Target split (``target_split``): a seeded permutation puts ``test_size`` stamps in the held-out
test set and ranks the rest as the labelled *pool*; budget n uses the first n pool stamps, so
budgets are nested (n=50 is inside n=100 ...).  Inside a budget a seeded ``val_fraction`` is carved
off for early stopping (``budget_subsets``); the test set is never used for fitting or stopping.
The summary table and checks of the comparison are in ``deepsky.reports.transfer_report``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pandas as pd

from . import data, tasks

STRATEGIES = ("zeroshot", "head", "full", "scratch")
TRAINED = ("head", "full", "scratch")


def check_strategy(strategy: str) -> None:
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown transfer strategy {strategy!r}; known: {list(STRATEGIES)}")


# --------------------------------------------------------------------------- splits
def target_split(ids, test_size: int, max_budget: int = 0, seed: int = 0) -> pd.DataFrame:
    """Table (id, split, pool_rank): ``test_size`` test stamps, the rest a ranked labelled pool.

    ``pool_rank`` is -1 for test stamps and 0, 1, ... for pool stamps (budget n = ranks < n).
    Raises ValueError when the pool cannot hold ``max_budget`` (the workflow leaves that check to
    ``budget_subsets``, so that adding a budget does not rewrite the split).
    """
    ids = pd.Series(ids, dtype="string")
    n = len(ids)
    if test_size < 1 or test_size >= n:
        raise ValueError(f"transfer.test_size={test_size} must be between 1 and the {n - 1} target stamps")
    if n - test_size < max_budget:
        raise ValueError(f"transfer.budgets: the largest budget {max_budget} exceeds the {n - test_size} "
                         f"labelled target stamps left after transfer.test_size={test_size}; simulate more "
                         "target stamps or lower the budgets")
    perm = np.random.default_rng(np.random.SeedSequence([seed, 0x7A25])).permutation(n)
    rank = np.full(n, -1, dtype=np.int64)
    rank[perm[test_size:]] = np.arange(n - test_size)
    split = np.where(rank < 0, "test", "pool")
    return pd.DataFrame({"id": ids, "split": pd.Series(split, dtype="string"), "pool_rank": rank})


def budget_subsets(split: pd.DataFrame, budget: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Row indices (into ``split``) of the training and validation stamps of one label budget.

    The budget is the ``budget`` lowest pool ranks; ``max(1, round(val_fraction * budget))`` of
    them, chosen with a generator seeded by (seed, budget), are held out for early stopping.
    """
    rank = split["pool_rank"].to_numpy()
    pool = np.flatnonzero((rank >= 0) & (rank < budget))
    if len(pool) != budget:
        raise ValueError(f"transfer.budgets: budget {budget} needs {budget} labelled target stamps but only "
                         f"{len(pool)} are left after transfer.test_size; simulate more target stamps or "
                         "lower the budget")
    pool = pool[np.argsort(rank[pool])]
    n_val = max(1, int(round(val_fraction * budget)))
    if n_val >= budget:
        raise ValueError(f"budget {budget} is too small to hold out {n_val} validation stamps")
    pick = np.random.default_rng(np.random.SeedSequence([seed, 0xB0D6, budget])).permutation(budget)
    val = np.sort(pool[pick[:n_val]])
    train = np.sort(pool[pick[n_val:]])
    return train, val


def repeat_to(idx: np.ndarray, min_samples: int) -> np.ndarray:
    """Tile an index array so one training epoch holds at least ``min_samples`` stamps.

    With a few dozen labels an epoch would otherwise be a single batch; repeated stamps get
    different random flips/rotations, and the epoch count (and patience) keeps its meaning.
    """
    reps = max(1, math.ceil(min_samples / max(len(idx), 1)))
    return np.tile(idx, reps)


# --------------------------------------------------------------------------- models
def is_head(layer) -> bool:
    """Head layers of the registry models are named ``head_*`` (see models._head)."""
    return layer.name.startswith("head")


def prepare_model(strategy: str, base_model, base_meta: dict):
    """The model a strategy starts from (keras.Model, uncompiled).

    ``base_model`` is a freshly loaded copy of the base model: ``head`` and ``full`` modify it in
    place (trainable flags); ``scratch`` builds a new model of the same architecture.
    """
    check_strategy(strategy)
    if strategy == "scratch":
        from . import models

        return models.build(base_meta["model"], data.input_shape(base_meta["preprocess"]),
                            tasks.get_task(base_meta["task"]).outputs, **base_meta.get("model_options", {}))
    if strategy == "head":
        heads = [layer for layer in base_model.layers if is_head(layer)]
        if not heads:
            raise ValueError(f"model {base_meta['model']!r} has no layer named head_*: nothing to retrain")
        for layer in base_model.layers:
            layer.trainable = is_head(layer)
    else:
        for layer in base_model.layers:
            layer.trainable = True
    return base_model


def check_compatible(base_meta: dict, cat: pd.DataFrame, images: np.ndarray) -> None:
    """Refuse a target whose stamps differ from what the base model was trained on."""
    spec = base_meta["preprocess"]
    if images.shape[2:] != (spec["stamp"], spec["stamp"]):
        raise ValueError(f"target stamps are {images.shape[2]}x{images.shape[3]} px, the base model "
                         f"expects {spec['stamp']}x{spec['stamp']}")
    if "pixel_scale" in cat:
        scales = np.unique(cat["pixel_scale"].to_numpy(float))
        if not np.allclose(scales, spec["pixel_scale"], rtol=1e-6):
            raise ValueError(f"target pixel scale {scales.tolist()} arcsec/px differs from the base model's "
                             f"{spec['pixel_scale']} arcsec/px")


def fit_strategy(strategy: str, base_model, base_meta: dict, images: np.ndarray, cat: pd.DataFrame,
                 train_idx: np.ndarray, val_idx: np.ndarray, cfg: dict, seed: int, scratch,
                 log: Callable[[str], None] = print):
    """Train one strategy on a label budget; returns (model, meta, history).

    ``cfg`` is the ``transfer`` config section (``train``, ``learning_rate`` per strategy,
    ``min_epoch_samples``).  ``zeroshot`` returns the base model unchanged (empty history).
    """
    from . import modelfile, train

    check_strategy(strategy)
    check_compatible(base_meta, cat, images)
    task = tasks.get_task(base_meta["task"])
    meta = {**base_meta, "strategy": strategy, "base_model": base_meta.get("model"),
            "base_config_digest": base_meta.get("config_digest"), "budget": 0, "n_train": 0, "n_val": 0,
            "n_train_base": base_meta.get("n_train")}
    if strategy == "zeroshot":
        return base_model, meta, pd.DataFrame()

    spec = base_meta["preprocess"]
    labels = cat[task.label].to_numpy(float)
    target = task.fit_target(labels[train_idx]) if strategy == "scratch" else base_meta["target"]
    x = data.preprocess(images, spec)
    y = task.encode(labels, target)
    train_cfg = {**cfg["train"], "learning_rate": float(cfg["learning_rate"][strategy])}
    fit_idx = repeat_to(train_idx, int(cfg["min_epoch_samples"]))
    train.configure_determinism(seed)
    model = prepare_model(strategy, base_model, base_meta)
    n_trainable = int(sum(np.prod(w.shape) for w in model.trainable_weights))
    log(f"{strategy}: {len(train_idx)} train + {len(val_idx)} validation target stamps "
        f"({len(fit_idx)} per epoch), {n_trainable} of {model.count_params()} parameters trainable, "
        f"lr {train_cfg['learning_rate']}")
    model, history = train.fit_model(model, x[fit_idx], y[fit_idx], x[val_idx], y[val_idx], train_cfg, seed,
                                     scratch, loss=task.loss,
                                     digest_extra={"strategy": strategy, "spec": spec, "target": target,
                                                   "train_idx": train_idx.tolist()}, log=log)
    history = history.drop(columns=["seconds"], errors="ignore")
    meta.update({
        "target": target, "train": train_cfg, "seed": seed,
        "budget": int(len(train_idx) + len(val_idx)), "n_train": int(len(train_idx)), "n_val": int(len(val_idx)),
        "trainable_params": n_trainable, "epochs_run": int(len(history)),
        "best_epoch": int(history["val_loss"].idxmin() + 1) if len(history) else 0,
        "config_digest": modelfile.config_digest({"base": base_meta.get("config_digest"), "strategy": strategy,
                                              "train": train_cfg, "seed": seed, "train_idx": train_idx.tolist()}),
    })
    return model, meta, history
