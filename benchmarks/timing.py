"""What every benchmark here times with: the best of several runs within a time budget, and
the process's peak resident memory."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def best(fn: Callable[[], Any], budget: float = 2.0, repeats: int = 7) -> tuple[float, Any]:
    """``(seconds, result)``: the best of up to ``repeats`` runs of ``fn``, stopping once
    ``budget`` seconds are spent (after two runs at least, where one fits the budget)."""
    times, out = [], None
    for _ in range(repeats):
        out = None  # the previous result is freed before the next run allocates its own
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
        if sum(times) > budget and (len(times) >= 2 or times[0] > budget):
            break
    return min(times), out


def peak_mb() -> float:
    """The process's peak resident memory so far, in MB (Linux)."""
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) / 1024 for line in fh if line.startswith("VmHWM:"))
