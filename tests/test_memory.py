"""Peak memory of a block: Linux's resettable peak RSS."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medbench.benchmark.memory import peak_memory

if not Path("/proc/self/clear_refs").exists():
    pytest.skip("no /proc/self/clear_refs (not Linux)", allow_module_level=True)


def _touch(mib: int) -> None:
    block = np.ones(mib * 2**20, np.uint8)  # ones: every page is written
    assert block[-1] == 1


def test_a_block_that_touches_64_mib_peaks_at_least_that_much():
    with peak_memory() as peak:
        _touch(64)
    assert peak.mb is not None and 63 <= peak.mb < 200


def test_a_later_smaller_block_is_not_given_the_earlier_peak():
    """What ru_maxrss cannot do: each block starts from a reset peak."""
    with peak_memory() as first:
        _touch(96)
    with peak_memory() as second:
        _touch(8)
    assert first.mb >= 95 and 7 <= second.mb < 48


def test_an_unmeasurable_system_leaves_it_empty(monkeypatch):
    from medbench.benchmark import memory

    monkeypatch.setattr(memory, "_PROC", Path("/nonexistent"))
    with peak_memory() as peak:
        _touch(1)
    assert peak.mb is None
