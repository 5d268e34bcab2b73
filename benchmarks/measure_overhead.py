"""Harness overhead and worker scaling of a fixed run (a script, not a pytest suite).

    python benchmarks/measure_overhead.py [--images 200] [--repeats N] [--workers 1 2]
                                          [--torch-threads N]

The fixed run is JPEG and JPEG 2000 over ``synthetic:N`` (all splits, ``paper``
protocol). It prints

- the wall time of ``runner.run`` (executor start-up, loading, protocol, coding, metrics,
  store writes and CSV export) for each ``--workers`` value;
- the *bare* time of the same cells: the same images prepared beforehand (not timed),
  then, per cell, exactly the codec calls the run makes (``timing.timed_pair`` with the
  same ``repeats``; default automatic, as the run) plus ``metrics.measure``, summed; and
  the same with one encode + decode + measure per cell;
- the overhead ratio: 1-worker wall time / bare time (goal <= 1.10).

Bare and 1-worker run share one process and one torch thread setting. Give
``--torch-threads 1`` on a machine that other jobs also load: torch's OpenMP threads then
lose far more to contention than they win.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path


def bare_seconds(images: int, repeats: int | None) -> tuple[float, float, int]:
    """(protocol-equivalent seconds, single-call seconds, cells) of the fixed run's cells."""
    from medbench.benchmark.metrics import measure
    from medbench.benchmark.timing import timed_pair
    from medbench.codecs import get_codec
    from medbench.datasets import get_dataset
    from medbench.datasets.protocols import PAPER

    dataset = get_dataset(f"synthetic:{images}")
    codecs = [get_codec("jpeg"), get_codec("jpeg2000")]
    protocol_total = single_total = 0.0
    cells = 0
    for record in dataset.records():
        image = PAPER.apply(dataset.load(record))
        for codec in codecs:
            for setting in codec.settings():
                start = time.perf_counter()
                timing = timed_pair(lambda c=codec, i=image, s=setting: c.encode(i, s),
                                    codec.decode, repeats)
                measure(image.pixels, timing.decoded, len(timing.encoded), image.bit_depth)
                middle = time.perf_counter()
                data = codec.encode(image, setting)
                decoded = codec.decode(data)
                measure(image.pixels, decoded, len(data), image.bit_depth)
                end = time.perf_counter()
                protocol_total += middle - start
                single_total += end - middle
                cells += 1
    return protocol_total, single_total, cells


def run_seconds(images: int, repeats: int | None, workers: int) -> tuple[float, int]:
    from medbench.benchmark.runner import RunConfig, run

    config = RunConfig(codecs=["jpeg", "jpeg2000"], datasets=[f"synthetic:{images}"],
                       split="all", repeats=repeats, workers=workers)
    with tempfile.TemporaryDirectory(prefix="medbench-overhead-") as tmp:
        start = time.perf_counter()
        result = run(config, Path(tmp) / "out")
        seconds = time.perf_counter() - start
    if (result.rows["status"] != "ok").any():
        raise SystemExit("the fixed run produced error rows; fix them before timing")
    return seconds, len(result.rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed encode+decode pairs per cell [default: automatic]")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--torch-threads", type=int, default=None)
    args = parser.parse_args()
    if args.torch_threads:
        os.environ["OMP_NUM_THREADS"] = str(args.torch_threads)
        import torch

        torch.set_num_threads(args.torch_threads)
    import torch

    print(f"cores: {os.cpu_count()}, torch threads: {torch.get_num_threads()}, "
          f"load average before: {os.getloadavg()[0]:.2f}")
    walls = {}
    for workers in args.workers:
        walls[workers], cells = run_seconds(args.images, args.repeats, workers)
        print(f"run, {workers} worker(s): {walls[workers]:.1f} s wall, {cells} cells, "
              f"{cells / walls[workers]:.1f} cells/s (load {os.getloadavg()[0]:.2f})")
    protocol_s, single_s, cells = bare_seconds(args.images, args.repeats)
    repeats = "automatic" if args.repeats is None else args.repeats
    print(f"bare, same calls as the run (repeats {repeats}): {protocol_s:.1f} s "
          f"for {cells} cells; one encode+decode+measure per cell: {single_s:.1f} s "
          f"(load {os.getloadavg()[0]:.2f})")
    if 1 in walls:
        print(f"overhead ratio (1-worker wall / bare same calls): {walls[1] / protocol_s:.3f}")
        print(f"            (1-worker wall / one call per cell):   {walls[1] / single_s:.3f}")


if __name__ == "__main__":
    main()
