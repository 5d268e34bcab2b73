"""Peak memory of a cell: how much resident memory its encode and decode calls add.

``peak_mem_mb`` is the growth of the process's resident set (RSS) during a cell's timed
encode and decode calls, at its highest: Linux keeps the process's peak RSS
(``VmHWM`` in ``/proc/self/status``) and resets it to the current RSS when ``5`` is
written to ``/proc/self/clear_refs`` (proc(5), Linux 4.0+). So the peak is that of
everything the calls touch, whoever allocates it: native codec libraries (OpenJPEG,
x265, libavif), numpy and torch's CPU allocator alike, with no sampling to miss a short
spike and no cost inside the timed calls.

Why not the alternatives: ``getrusage(RUSAGE_SELF).ru_maxrss`` is the same peak but can
never be reset, so after the first large cell every later one would read the same;
``tracemalloc`` sees Python's and numpy's allocations but not a native library's or
torch's; a thread sampling RSS misses peaks shorter than its period (a 256² cell lasts a
few milliseconds).

What it leaves out, by design or by necessity:

- What was resident before the cell: the loaded codec library and the model's weights
  (a learned codec's ``params``, 4 bytes each, are loaded before the cell starts), the
  image itself.
- Memory the allocator reuses without touching new pages. Free heap pages are given back
  to the system first (glibc's ``malloc_trim``), so that a cell re-faulting them counts;
  an allocator that keeps pages resident anyway makes the number a lower bound.
- GPU memory (a learned codec on CUDA): host memory only.
- Other threads of the same process: a worker codes one cell at a time (local workers
  and the ``dask`` LocalCluster's are single-threaded); several threads coding at once
  in one process (a remote Dask worker with ``--nthreads`` above 1) would share one peak.

Where ``/proc/self/clear_refs`` cannot be written (not Linux, or a restricted
container), the column is empty rather than wrong.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path

log = logging.getLogger(__name__)

_PROC = Path("/proc/self")


@dataclass
class PeakMemory:
    """Filled in when the measured block ends: ``mb``, the RSS growth in MiB, or None."""

    mb: float | None = None


@cache
def _malloc_trim():
    """glibc's ``malloc_trim``, or None where the C library has none."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None)
        return libc.malloc_trim
    except (AttributeError, OSError):
        return None


def _status_kb(field: str) -> int | None:
    """``field`` (``VmRSS``, ``VmHWM``) of ``/proc/self/status`` in kB, or None."""
    try:
        for line in (_PROC / "status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def _reset_peak() -> int | None:
    """Give free heap pages back, reset the peak RSS; the RSS now (kB), or None when the
    peak cannot be reset here."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
    try:
        (_PROC / "clear_refs").write_text("5")
    except OSError as exc:
        log.debug("peak memory not measured: %s", exc)
        return None
    return _status_kb("VmRSS")


@contextmanager
def peak_memory() -> Iterator[PeakMemory]:
    """Measure the peak RSS growth of the block (see the module notes).

    Yields
    ------
    PeakMemory
        Its ``mb`` is set when the block ends: MiB above the RSS at the start, or None
        where it cannot be measured.
    """
    result = PeakMemory()
    start = _reset_peak()
    try:
        yield result
    finally:
        peak = _status_kb("VmHWM") if start is not None else None
        if peak is not None and start is not None:
            result.mb = round(max(0, peak - start) / 1024.0, 3)
