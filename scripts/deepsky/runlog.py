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

    The logger writes to the log file and also to the console the job was started from, so a user
    watching ``snakemake`` sees progress (epochs, stamps/s) of long jobs; library noise stays in the
    log file only.  Lines carry wall-clock time.
    """
    console = sys.stderr
    if log_path:
        fh = open(log_path, "a", buffering=1)
        # C++ libraries (TensorFlow, XLA) write to file descriptors 1 and 2 directly: point those
        # at the log too, and keep a duplicate of the original stderr for the progress lines.
        sys.stdout.flush()
        sys.stderr.flush()
        console = os.fdopen(os.dup(2), "w", buffering=1)
        os.dup2(fh.fileno(), 1)
        os.dup2(fh.fileno(), 2)
        sys.stdout = fh
        sys.stderr = fh
    logger = logging.getLogger("deepsky")
    logger.handlers.clear()
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S")
    for stream in {id(sys.stderr): sys.stderr, id(console): console}.values():
        handler = logging.StreamHandler(stream)
        handler.setFormatter(fmt)
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    sys.excepthook = _one_line_hook(logger, sys.excepthook)
    return logger


def _one_line_hook(logger: logging.Logger, default):
    """An excepthook that reports errors marked ``one_line`` (e.g. deepsky.io.CorruptFileError: the
    message names the file and how to rebuild it) as one line, and anything else as usual."""

    def hook(exc_type, exc, tb):
        if getattr(exc, "one_line", False):
            logger.error(str(exc))
            for handler in logger.handlers:
                handler.flush()
            os._exit(1)  # the line is all the user needs; skip interpreter teardown noise
        default(exc_type, exc, tb)

    return hook


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
