"""Logging for rule scripts: everything a job prints goes to its Snakemake log file."""

from __future__ import annotations

import logging
import os
import sys
import time

# TensorFlow: keep warnings, drop the INFO banner lines
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")


def redirect(log_path: str | None) -> logging.Logger:
    """Send stdout/stderr (TensorFlow's chatter included) to ``log_path`` and return a logger.

    Progress lines carry wall-clock time so that long jobs can be followed with ``tail -f``.
    """
    if log_path:
        fh = open(log_path, "a", buffering=1)
        sys.stdout = fh
        sys.stderr = fh
    logger = logging.getLogger("deepsky")
    logger.handlers.clear()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger


class Progress:
    """Callable(done, total) that logs at most every ``every`` seconds, with a rate."""

    def __init__(self, logger: logging.Logger, what: str, every: float = 10.0):
        self.logger, self.what, self.every = logger, what, every
        self.t0 = self.last = time.perf_counter()

    def __call__(self, done: int, total: int) -> None:
        now = time.perf_counter()
        if done == total or now - self.last >= self.every:
            self.last = now
            rate = done / max(now - self.t0, 1e-9)
            self.logger.info(f"{self.what}: {done}/{total} ({rate:.0f}/s)")
