"""Encode and decode speed of the imagecodecs-backed codecs, 12-bit, at 256² and 2048².

Run with ``python -m pytest benchmarks/bench_codecs_extra.py --benchmark-only``
(``-k 256`` for the quick half). Images are the deterministic radiograph-like pictures
of the ``synthetic`` dataset (12 bits); webp, which stores only 8 bits, gets the same
picture requantized to 8 bits. ``jpeg2000`` (glymur) is included as the reference.
Each codec is timed at ``lossless`` and at one lossy point near 1-2 bpp. Rounds are
few on purpose (5 at 256², 1 after a warm-up at 2048², where JPEG XL, AVIF, PNG level 9
and lossless WebP take seconds per call; about 75 s in all on 2 cores); raise them
with ``MEDBENCH_BENCH_ROUNDS`` for tighter numbers.
"""

from __future__ import annotations

import os
from functools import lru_cache

import pytest

from medbench.codecs import get_codec
from medbench.datasets.protocols import requantize
from medbench.datasets.synthetic import BIT_DEPTH, generate
from medbench.image import Image

SIZES = (256, 2048)
# (codec, setting) pairs: lossless and one lossy point of each codec.
CASES = [
    ("png", "lossless"),
    ("jpegls", "lossless"),
    ("jpegls", "near=2"),
    ("htj2k", "lossless"),
    ("htj2k", "qstep=0.004"),
    ("jpeg12", "lossless"),
    ("jpeg12", "q=50"),
    ("jpegxl", "lossless"),
    ("jpegxl", "distance=1"),
    ("avif", "lossless"),
    ("avif", "q=80"),
    ("webp", "lossless"),
    ("webp", "q=80"),
    ("jpeg2000", "lossless"),
    ("jpeg2000", "ratio=10"),
]


def _rounds(size: int) -> int:
    extra = int(os.environ.get("MEDBENCH_BENCH_ROUNDS", "0"))
    return extra or (5 if size <= 256 else 1)


_ENCODED: dict[tuple[str, str, int], bytes] = {}


@lru_cache(maxsize=4)
def _image(size: int, bit_depth: int) -> Image:
    pixels = generate(0, size)
    if bit_depth != BIT_DEPTH:
        pixels = requantize(pixels, BIT_DEPTH, bit_depth)
    return Image(pixels, bit_depth, f"synthetic0@{size}")


def _codec_and_image(name: str, size: int):
    codec = get_codec(name)
    reason = codec.unavailable_reason()
    if reason:
        pytest.skip(reason)
    return codec, _image(size, 8 if name == "webp" else BIT_DEPTH)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize(("name", "setting"), CASES)
def test_encode(benchmark, name, setting, size):
    codec, image = _codec_and_image(name, size)
    benchmark.group = f"encode {size}"
    data = benchmark.pedantic(
        codec.encode, args=(image, setting), rounds=_rounds(size), warmup_rounds=1
    )
    _ENCODED[name, setting, size] = data  # reused by test_decode
    benchmark.extra_info["bpp"] = 8 * len(data) / image.pixels.size
    benchmark.extra_info["bit_depth"] = image.bit_depth


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize(("name", "setting"), CASES)
def test_decode(benchmark, name, setting, size):
    codec, image = _codec_and_image(name, size)
    data = _ENCODED.get((name, setting, size)) or codec.encode(image, setting)
    benchmark.group = f"decode {size}"
    decoded = benchmark.pedantic(codec.decode, args=(data,), rounds=_rounds(size), warmup_rounds=1)
    assert decoded.shape == image.pixels.shape
    benchmark.extra_info["bpp"] = 8 * len(data) / image.pixels.size
