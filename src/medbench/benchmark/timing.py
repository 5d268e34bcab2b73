"""Latency: time the very encode and decode that are measured, repeat only while cheap.

A cell's first encode gives the bytes that are measured and its first decode the pixels
that are scored; those calls are timed too. More calls are added only to steady the
median of *cheap* calls (in the spirit of ``timeit``'s autorange): another encode+decode
pair runs only when a pair takes under a tenth of :data:`AUTO_BUDGET_S` and all the pairs
so far plus one more stay within it. So a 1-second (or a 50 ms) 2048² encode is timed
once, at no extra cost, and a 1 ms one up to :data:`MAX_AUTO_CALLS` times. When repeated,
the first (cold) pair is left out of the median. A fixed ``repeats=N`` forces one untimed
warm-up pair and N timed pairs; ``repeats=0`` times the measured pair alone. GPU work is
synchronised before each clock read.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

A = TypeVar("A")
B = TypeVar("B")
T = TypeVar("T")

#: Wall seconds an automatically repeated encode+decode pair may cost in all.
AUTO_BUDGET_S = 0.2
#: Most timed pairs an automatic cell runs.
MAX_AUTO_CALLS = 25
#: Most timed pairs ``--repeats`` may ask for.
MAX_REPEATS = 100


def _synchronize() -> None:
    """Wait for queued GPU work so that a timing covers it (no-op on the CPU)."""
    try:
        import torch
    except ImportError:  # pragma: no cover
        return
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def _once(fn: Callable[[], T]) -> tuple[T, float]:
    """``fn()`` and its wall time in milliseconds."""
    start = time.perf_counter()
    result = fn()
    _synchronize()
    return result, (time.perf_counter() - start) * 1000.0


@dataclass(frozen=True)
class PairTiming(Generic[A, B]):
    """The measured encode result and decode result, and their median latencies."""

    encoded: A
    decoded: B
    encode_ms: float
    decode_ms: float
    #: Timed encode (and decode) calls behind each median.
    calls: int


def timed_pair(encode: Callable[[], A], decode: Callable[[A], B],
               repeats: int | None = None, budget_s: float = AUTO_BUDGET_S) -> PairTiming[A, B]:
    """Run ``encode`` then ``decode`` on its result, timing both as the module describes.

    Parameters
    ----------
    encode
        Makes the bitstream; its first result is the one returned (and measured).
    decode
        Takes the first bitstream; its first result is the one returned.
    repeats
        None: automatic (repeat only while cheap). N >= 0: one warm-up pair, then N timed
        pairs (0: the measured pair alone is timed).
    budget_s
        The automatic mode's wall-time budget for all pairs.

    Returns
    -------
    PairTiming
        First results, median milliseconds of encode and decode, and the timed calls.
    """
    if repeats is not None and not 0 <= repeats <= MAX_REPEATS:
        raise ValueError(f"repeats must be 0..{MAX_REPEATS} or None (automatic), got {repeats}")
    _synchronize()
    encoded, enc_first = _once(encode)
    decoded, dec_first = _once(lambda: decode(encoded))
    enc: list[float] = []
    dec: list[float] = []
    if repeats is None:
        spent = enc_first + dec_first
        def next_pair() -> float:
            return enc[-1] + dec[-1] if enc else enc_first + dec_first

        while (len(enc) + 1 < MAX_AUTO_CALLS
               and next_pair() <= budget_s * 100.0  # a tenth of the budget, in ms
               and spent + next_pair() <= budget_s * 1000.0):
            enc.append(_once(encode)[1])
            dec.append(_once(lambda: decode(encoded))[1])
            spent += enc[-1] + dec[-1]
    else:
        for _ in range(repeats):
            enc.append(_once(encode)[1])
            dec.append(_once(lambda: decode(encoded))[1])
    if not enc:  # the measured pair was the only one: it is the timing
        enc, dec = [enc_first], [dec_first]
    return PairTiming(encoded, decoded, float(statistics.median(enc)),
                      float(statistics.median(dec)), len(enc))
