"""Timing helper shared by the benchmark scripts (run as ``python benchmarks/<name>.py``)."""

from __future__ import annotations

import time

import numpy as np


def median_time(fn, repeat: int = 5) -> float:
    """Median wall time of ``fn()`` over ``repeat`` calls, after one warm-up call (imports, caches)."""
    fn()
    ts = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return float(np.median(ts))
