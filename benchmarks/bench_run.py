"""Whole-run throughput: ``medbench run`` of JPEG and JPEG 2000 over ``synthetic``.

Run with ``python -m pytest benchmarks/bench_run.py --benchmark-only``. Each round is a
fresh run (new results folder) of 24 synthetic 512² images, all splits, ``paper``
protocol, ``--repeats 0``, coded in-process (1 worker) and by 2 local worker processes
(whose start-up is part of the time, as it is for a user). ``extra_info`` gives cells/s.
"""

from __future__ import annotations

import itertools

import pytest

from medbench.benchmark.runner import RunConfig, run

IMAGES = 24
_counter = itertools.count()


@pytest.mark.parametrize("workers", [1, 2])
def test_run_synthetic(benchmark, tmp_path, workers):
    config = RunConfig(codecs=["jpeg", "jpeg2000"], datasets=[f"synthetic:{IMAGES}"],
                       split="all", repeats=0, workers=workers)

    def fresh_folder():
        return (config, tmp_path / f"round{next(_counter)}"), {}

    benchmark.group = "run synthetic"
    result = benchmark.pedantic(run, setup=fresh_folder, rounds=2, warmup_rounds=0)
    cells = len(result.rows)
    assert cells == IMAGES * 16 and (result.rows["status"] == "ok").all()
    benchmark.extra_info["cells"] = cells
    benchmark.extra_info["cells_per_s"] = cells / benchmark.stats.stats.mean
