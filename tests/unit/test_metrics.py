"""Metrics on known inputs."""

from __future__ import annotations

import numpy as np
import pytest

from deepsky.reports import metrics


def test_size_metrics_known_values():
    true = np.array([1.0, 1.0, 1.0, 1.0])
    pred = np.array([1.1, 0.9, 1.3, 1.0])
    m = metrics.size_metrics(true, pred)
    assert m["count"] == 4
    assert m["median_abs_rel"] == pytest.approx(0.1)
    assert m["bias"] == pytest.approx(0.05)
    assert m["outlier_frac"] == pytest.approx(0.25)
    # d = [.1, -.1, .3, 0]; median .05; |d - .05| = [.05, .15, .25, .05] -> median .1
    assert m["nmad"] == pytest.approx(1.4826 * 0.1)


def test_r2_perfect_and_mean():
    y = np.array([1.0, 2.0, 3.0])
    assert metrics.r2(y, y) == 1.0
    assert metrics.r2(y, np.full(3, 2.0)) == pytest.approx(0.0)


def test_binned_counts_cover_everything():
    x = np.linspace(0, 1, 101)
    rows = metrics.binned(metrics.size_metrics, np.ones(101), np.ones(101), x, np.array([0, 0.5, 1.0]))
    assert sum(r["count"] for r in rows) == 101
