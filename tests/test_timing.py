"""Latency timing: the measured calls are timed; repeats only while cheap."""

from __future__ import annotations

import time

import pytest

from medbench.benchmark.timing import MAX_AUTO_CALLS, timed_pair


class Counter:
    def __init__(self, sleep_s: float = 0.0):
        self.calls = 0
        self.sleep_s = sleep_s

    def encode(self):
        self.calls += 1
        time.sleep(self.sleep_s)
        return f"stream{self.calls}"

    def decode(self, data):
        return data.upper()


def test_a_slow_pair_is_timed_once_and_its_results_are_the_measured_ones():
    c = Counter(sleep_s=0.006)
    t = timed_pair(c.encode, c.decode, None, budget_s=0.01)
    assert c.calls == 1 and t.calls == 1
    assert (t.encoded, t.decoded) == ("stream1", "STREAM1")
    assert t.encode_ms >= 6.0


def test_a_cheap_pair_is_repeated_within_the_budget_and_the_cold_pair_left_out():
    c = Counter()
    t = timed_pair(c.encode, c.decode, None, budget_s=10.0)
    assert t.calls == MAX_AUTO_CALLS - 1 and c.calls == MAX_AUTO_CALLS
    assert t.encoded == "stream1"  # repeats never replace the measured bitstream


@pytest.mark.parametrize("repeats", [0, 1, 5])
def test_fixed_repeats_are_one_warm_up_and_n_timed_pairs(repeats):
    c = Counter()
    t = timed_pair(c.encode, c.decode, repeats)
    assert t.calls == max(repeats, 1)
    assert c.calls == repeats + 1
    assert t.encoded == "stream1"


def test_repeats_out_of_range_are_refused():
    with pytest.raises(ValueError, match="0..100"):
        timed_pair(lambda: b"", lambda d: d, 101)
