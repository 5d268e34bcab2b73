"""Speed of the learned codecs (ae, cnn, dcae): per image at 256², and batched throughput.

Run with ``python -m pytest benchmarks/bench_learned.py --benchmark-only``. Models are
whatever ``--models``-less lookup finds: the shipped ``sample`` models (or those in
``./medbench-models``); a codec with none is skipped. The image is synthetic radiograph
0 at 256², 8 bits (the ``paper`` protocol's format), from the ``synthetic_image`` fixture
of ``benchmarks/conftest.py``. Per-image times are batch size 1,
which is what the harness's ``encode_ms``/``decode_ms`` columns report; the batched cases
code ``BATCH`` copies in one call and record images/s in ``extra_info``. The device is
``auto`` (CUDA when present); ``MEDBENCH_BENCH_DEVICE=cpu`` forces the CPU. On a GPU,
``benchmarks/gpu_learned.py`` gives the fuller picture (training speed, batch 64).
"""

from __future__ import annotations

import os

import pytest

from medbench.codecs import CodecContext, get_codec

NAMES = ("ae", "cnn", "dcae")
BATCH = 16
ROUNDS = int(os.environ.get("MEDBENCH_BENCH_ROUNDS", "0")) or 5


def _codec(name: str):
    device = os.environ.get("MEDBENCH_BENCH_DEVICE", "auto")
    codec = get_codec(name, CodecContext(device=device))
    reason = codec.unavailable_reason()
    if reason:
        pytest.skip(reason)
    return codec


def _setting(codec, which: str) -> str:
    settings = codec.settings()
    return settings[0] if which == "low" else settings[-1]


@pytest.mark.parametrize("which", ["low", "high"])
@pytest.mark.parametrize("name", NAMES)
def test_encode_256(benchmark, synthetic_image, name, which):
    codec, image = _codec(name), synthetic_image(256, 8)
    setting = _setting(codec, which)
    benchmark.group = "learned encode 256 (batch 1)"
    benchmark.extra_info.update(setting=setting, device=str(codec.device))
    data = benchmark.pedantic(codec.encode, args=(image, setting), rounds=ROUNDS,
                              warmup_rounds=1)
    benchmark.extra_info["bpp"] = 8 * len(data) / (256 * 256)


@pytest.mark.parametrize("which", ["low", "high"])
@pytest.mark.parametrize("name", NAMES)
def test_decode_256(benchmark, synthetic_image, name, which):
    codec, image = _codec(name), synthetic_image(256, 8)
    setting = _setting(codec, which)
    data = codec.encode(image, setting)
    benchmark.group = "learned decode 256 (batch 1)"
    benchmark.extra_info.update(setting=setting, device=str(codec.device))
    pixels = benchmark.pedantic(codec.decode, args=(data,), rounds=ROUNDS, warmup_rounds=1)
    assert pixels.shape == (256, 256)


@pytest.mark.parametrize("name", NAMES)
def test_batched_round_trip_256(benchmark, synthetic_image, name):
    """Encode + decode of ``BATCH`` images in one call each; images/s in extra_info."""
    codec, image = _codec(name), synthetic_image(256, 8)
    setting = _setting(codec, "high")
    images = [image] * BATCH

    def round_trip():
        return codec.decode_batch(codec.encode_batch(images, setting))

    benchmark.group = f"learned encode+decode 256 (batch {BATCH})"
    out = benchmark.pedantic(round_trip, rounds=max(1, ROUNDS // 2), warmup_rounds=1)
    assert len(out) == BATCH
    benchmark.extra_info.update(
        setting=setting, device=str(codec.device), batch=BATCH,
        images_per_s=BATCH / benchmark.stats.stats.median,
    )
