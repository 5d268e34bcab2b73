"""Speed of the core codecs (JPEG, JPEG 2000) and of the metrics at 256² and 2048².

Run with ``python -m pytest benchmarks/bench_core.py --benchmark-only`` (``-k 256`` for
the quick half). Images are synthetic radiographs (``medbench.datasets.synthetic``):
JPEG gets them requantized to 8 bits (it codes only 8), JPEG 2000 the native 12 bits.
Metrics compare an image with its JPEG 2000 ``ratio=10`` decoding, as the runner does.
Rounds are few at 2048² (3, after a warm-up) to keep the suite to about a minute on two
cores; ``MEDBENCH_BENCH_ROUNDS`` raises them.
"""

from __future__ import annotations

import os

import pytest

from medbench.benchmark import metrics
from medbench.codecs import get_codec

SIZES = (256, 2048)
CASES = [("jpeg", "q=50", 8), ("jpeg", "q=90", 8), ("jpeg2000", "ratio=10", 12),
         ("jpeg2000", "lossless", 12)]


def _rounds(size: int) -> int:
    return int(os.environ.get("MEDBENCH_BENCH_ROUNDS", "0")) or (10 if size <= 256 else 3)


def _codec(name: str):
    codec = get_codec(name)
    reason = codec.unavailable_reason()
    if reason:
        pytest.skip(reason)
    return codec


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize(("name", "setting", "bits"), CASES)
def test_encode(benchmark, synthetic_image, name, setting, bits, size):
    codec, image = _codec(name), synthetic_image(size, bits)
    benchmark.group = f"encode {size}"
    data = benchmark.pedantic(codec.encode, args=(image, setting), rounds=_rounds(size),
                              warmup_rounds=1)
    benchmark.extra_info["bpp"] = 8 * len(data) / image.pixels.size


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize(("name", "setting", "bits"), CASES)
def test_decode(benchmark, synthetic_image, name, setting, bits, size):
    codec, image = _codec(name), synthetic_image(size, bits)
    data = codec.encode(image, setting)
    benchmark.group = f"decode {size}"
    decoded = benchmark.pedantic(codec.decode, args=(data,), rounds=_rounds(size),
                                 warmup_rounds=1)
    assert decoded.shape == image.pixels.shape


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("metric", ["psnr", "ssim", "ms_ssim", "measure"])
def test_metric(benchmark, synthetic_image, metric, size):
    image = synthetic_image(size)
    codec = _codec("jpeg2000")
    data = codec.encode(image, "ratio=10")
    decoded = codec.decode(data)
    peak = float(2**image.bit_depth - 1)
    benchmark.group = f"metrics {size}"
    if metric == "measure":  # every column of a result row, as code_cell computes them
        fn, args, kwargs = metrics.measure, (image.pixels, decoded, len(data), image.bit_depth), {}
    else:
        fn, args, kwargs = getattr(metrics, metric), (image.pixels, decoded), {"data_range": peak}
    value = benchmark.pedantic(fn, args=args, kwargs=kwargs, rounds=_rounds(size),
                               warmup_rounds=1)
    assert value is not None
