"""Latency measurement: one warm-up call, then the median of ``repeats`` timed calls."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def _synchronize() -> None:
    """Wait for queued GPU work so that a timing covers it (no-op on the CPU)."""
    try:
        import torch
    except ImportError:  # pragma: no cover
        return
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def timed(fn: Callable[[], T], repeats: int = 3, warmup: int = 1) -> tuple[T, float]:
    """Result of ``fn()`` and its median wall time in milliseconds.

    ``repeats`` = 0 calls ``fn`` once and times that single call.
    """
    if repeats < 0 or warmup < 0:
        raise ValueError(f"repeats and warmup must be >= 0, got {repeats}, {warmup}")
    result = None
    for _ in range(warmup if repeats else 0):
        result = fn()
    _synchronize()
    samples = []
    for _ in range(max(repeats, 1)):
        start = time.perf_counter()
        result = fn()
        _synchronize()
        samples.append((time.perf_counter() - start) * 1000.0)
    return result, float(statistics.median(samples))  # type: ignore[return-value]
