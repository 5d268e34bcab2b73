"""What a native 2048² run costs beyond the codecs' own calls (a script, not a pytest suite).

    python benchmarks/native_overhead.py [--images 3] [--size 2048] [--bit-depth 12]
                                         [--codecs jpeg2000,jpegls,htj2k] [--workers 2]

On the same ``synthetic:N@SIZE`` images under the ``native`` protocol (``--bit-depth``
overrides the synthetic 12 bits, e.g. 16), with the codecs at their default settings and
default timing (``--repeats`` automatic), it prints:

- the wall seconds of ``medbench run`` with 1 worker (in-process: reading, coding,
  metrics, store writes, CSV; no report);
- the sum of the bare encode + decode calls of the same cells, one each, on images
  prepared beforehand (not timed);
- their ratio (issue goal: <= 1.5);
- with ``--workers N`` (N > 1), the same run on N local worker processes, its wall time,
  cells/s against 1 worker, and the peak resident memory of the largest worker
  (``ru_maxrss`` of the terminated children).

Say the machine and its load with the numbers: on a shared machine they move.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path


def bare_seconds(spec: str, codec_names: list[str], bit_depth: str | None) -> tuple[float, int]:
    """Seconds of one encode + one decode per cell, summed, and the number of cells."""
    from medbench.codecs import get_codec
    from medbench.datasets import get_dataset
    from medbench.datasets.protocols import parse_protocol

    protocol = parse_protocol("native", None, bit_depth)
    dataset = get_dataset(spec)
    codecs = [get_codec(name) for name in codec_names]
    total, cells = 0.0, 0
    for record in dataset.records():
        image = protocol.apply(dataset.load(record))
        for codec in codecs:
            for setting in codec.settings():
                start = time.perf_counter()
                data = codec.encode(image, setting)
                codec.decode(data)
                total += time.perf_counter() - start
                cells += 1
    return total, cells


def run_seconds(spec: str, codec_names: list[str], bit_depth: str | None,
                workers: int) -> tuple[float, int]:
    from medbench.benchmark.runner import RunConfig, run

    config = RunConfig(codecs=codec_names, datasets=[spec], protocol="native",
                       bit_depth=bit_depth, split="all", workers=workers, use_cache=False)
    with tempfile.TemporaryDirectory(prefix="medbench-native-") as tmp:
        start = time.perf_counter()
        result = run(config, Path(tmp) / "out")
        seconds = time.perf_counter() - start
    bad = result.rows[result.rows["status"] != "ok"]
    if len(bad):
        raise SystemExit(f"the run produced {len(bad)} non-ok rows, e.g. {bad.iloc[0]['error']}")
    return seconds, len(result.rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=3)
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--bit-depth", default=None)
    parser.add_argument("--codecs", default="jpeg2000,jpegls,htj2k")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    spec = f"synthetic:{args.images}@{args.size}"
    names = args.codecs.split(",")
    print(f"{spec}, native{', ' + args.bit_depth + '-bit' if args.bit_depth else ''}, "
          f"codecs {args.codecs}; cores {os.cpu_count()}, load {os.getloadavg()[0]:.2f}")
    bare, cells = bare_seconds(spec, names, args.bit_depth)  # also warms the codecs up
    wall, rows = run_seconds(spec, names, args.bit_depth, 1)
    print(f"run, 1 worker: {wall:.1f} s wall for {rows} cells ({rows / wall:.2f} cells/s)")
    print(f"bare encode + decode, one each: {bare:.1f} s for {cells} cells")
    print(f"ratio run / bare: {wall / bare:.2f}  (load {os.getloadavg()[0]:.2f})")
    if args.workers > 1:
        wall_n, rows_n = run_seconds(spec, names, args.bit_depth, args.workers)
        peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print(f"run, {args.workers} workers: {wall_n:.1f} s wall ({rows_n / wall_n:.2f} "
              f"cells/s, {wall / wall_n:.2f}x 1 worker); peak RSS of the largest worker "
              f"{peak_mib:.0f} MiB (load {os.getloadavg()[0]:.2f})")


if __name__ == "__main__":
    main()
