"""Metrics on the CPU at 2048², 12 bits: SSIM/MS-SSIM against pytorch-msssim, and the
perceptual metrics and display windows (``run --metrics``, ``--display``).

Run with ``python -m pytest benchmarks/bench_metrics.py --benchmark-only``. The pair is
synthetic radiograph 0 and its JPEG 2000 ``ratio=10`` decoding, as in ``bench_core``.
pytorch-msssim (float64, CPU) is timed on the same pair in the same process; each test
prints both times, the speedup and the largest difference of the values. Rounds are few
(3 for medbench, 2 for pytorch-msssim, after a warm-up each); ``MEDBENCH_BENCH_ROUNDS``
raises them. Speed is reported here, never asserted.
"""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

from medbench.benchmark import metrics
from medbench.benchmark.metrics import structural
from medbench.codecs import get_codec

SIZE = 2048


def _rounds(default: int) -> int:
    return int(os.environ.get("MEDBENCH_BENCH_ROUNDS", "0")) or default


@pytest.fixture(scope="module")
def pair(synthetic_image):
    """(reference, decoded, n_bytes, bit_depth) at 2048², 12 bits."""
    image = synthetic_image(SIZE)
    codec = get_codec("jpeg2000")
    reason = codec.unavailable_reason()
    if reason:
        pytest.skip(reason)
    data = codec.encode(image, "ratio=10")
    return image.pixels, codec.decode(data), len(data), image.bit_depth


@pytest.fixture(autouse=True)
def _cpu(monkeypatch):
    """The CPU path even where there is a GPU: that is what is compared."""
    monkeypatch.setenv("MEDBENCH_METRICS_DEVICE", "cpu")


def _best_time(fn, rounds: int):
    fn()  # warm-up
    best, value = float("inf"), None
    for _ in range(rounds):
        start = time.perf_counter()
        value = fn()
        best = min(best, time.perf_counter() - start)
    return best, value


def _report(benchmark, capsys, name, ref_s, ref_value, ours_value):
    ours_s = benchmark.stats.stats.min
    diff = float(np.max(np.abs(np.subtract(ours_value, ref_value))))
    benchmark.extra_info.update(pytorch_msssim_s=ref_s, speedup=ref_s / ours_s, max_diff=diff,
                                threads=structural._threads())
    with capsys.disabled():
        print(f"\n{name} {SIZE}² 12-bit: medbench {ours_s:.3f} s, pytorch-msssim float64 "
              f"{ref_s:.3f} s, speedup {ref_s / ours_s:.1f}×, max |diff| {diff:.2e} "
              f"({structural._threads()} thread(s))")


def test_ms_ssim_vs_pytorch_msssim(benchmark, capsys, pair):
    import torch
    from pytorch_msssim import ms_ssim as pt_ms_ssim

    ref, dec, _, bits = pair
    peak = float(2**bits - 1)
    x = torch.from_numpy(ref.astype(np.float64))[None, None]
    y = torch.from_numpy(dec.astype(np.float64))[None, None]
    ref_s, ref_value = _best_time(lambda: float(pt_ms_ssim(x, y, data_range=peak)), _rounds(2))
    benchmark.group = f"ms_ssim {SIZE}"
    ours = benchmark.pedantic(metrics.ms_ssim, args=(ref, dec), kwargs={"data_range": peak},
                              rounds=_rounds(3), warmup_rounds=1)
    _report(benchmark, capsys, "ms_ssim", ref_s, ref_value, ours)


def test_measure_vs_torch_path(benchmark, capsys, pair, monkeypatch):
    """``measure`` (every result column) with the CPU path against the same call with the
    structural metrics on pytorch-msssim's float64 CPU convolutions, as before."""
    import torch

    def torch_measure():
        with monkeypatch.context() as patch:
            patch.setattr(structural, "_structural_numpy", lambda r, t, peak, levels, _=None:
                          structural._structural_torch(r, t, peak, levels, torch.device("cpu")))
            row = metrics.measure(*pair)
        return row["ssim"], row["ms_ssim"]

    ref_s, ref_value = _best_time(torch_measure, _rounds(2))
    benchmark.group = f"measure {SIZE}"
    row = benchmark.pedantic(metrics.measure, args=pair, rounds=_rounds(3), warmup_rounds=1)
    _report(benchmark, capsys, "measure", ref_s, ref_value, (row["ssim"], row["ms_ssim"]))


# -- perceptual metrics and display windows (run --metrics, --display) -----------------
@pytest.mark.parametrize("name", ["vif", "gmsd", "haarpsi", "fsim"])
@pytest.mark.parametrize("reference", ["shared", "fresh"])
def test_perceptual_metric(benchmark, capsys, pair, name, reference):
    """One perceptual metric of one cell at 2048², 12 bits. ``shared``: the image's
    :class:`Reference` already holds the original's side (every cell after the first of
    an image, as in a run); ``fresh``: computed from scratch (``metrics.vifp`` etc.)."""
    from medbench.benchmark.metrics import perceptual

    ref, dec, _, bits = pair
    peak = float(2**bits - 1)
    shared = metrics.Reference(ref)
    perceptual.perceptual_metrics(shared, dec, data_range=peak, names=(name,))

    def one():
        source = shared if reference == "shared" else ref
        return perceptual.perceptual_metrics(source, dec, data_range=peak, names=(name,))

    benchmark.group = f"perceptual {SIZE}"
    value = benchmark.pedantic(one, rounds=_rounds(3), warmup_rounds=1)[name]
    benchmark.extra_info.update(value=value)
    with capsys.disabled():
        print(f"\n{name} ({reference} reference) {SIZE}² 12-bit: "
              f"{benchmark.stats.stats.min:.3f} s, value {value:.6f}")


@pytest.mark.parametrize("choice", ["basic", "all", "all+display"])
def test_measure_with_perceptual_metrics(benchmark, capsys, pair, choice):
    """A cell's whole :func:`measure` at 2048², 12 bits, with a shared Reference (as in a
    run): ``basic`` (PSNR, SSIM, MS-SSIM), ``all`` (+ VIFp, GMSD, HaarPSI, FSIM), and
    ``all+display`` (+ the lung window's display_* columns)."""
    from medbench.benchmark.metrics.display import DisplayReference, display_window

    ref, dec, n_bytes, bits = pair
    perceptual = () if choice == "basic" else metrics.PERCEPTUAL
    display = (DisplayReference(display_window("lung", ref, {}), ref)
               if choice == "all+display" else None)
    scoring = metrics.Scoring(metrics.Reference(ref), None, perceptual, display)
    scoring.measure(dec, n_bytes, bits)  # the original's side, once per image
    benchmark.group = f"measure {SIZE} by --metrics"
    benchmark.pedantic(scoring.measure, args=(dec, n_bytes, bits), rounds=_rounds(3),
                       warmup_rounds=1)
    with capsys.disabled():
        print(f"\nmeasure --metrics {choice} {SIZE}² 12-bit: {benchmark.stats.stats.min:.3f} s "
              f"({structural._threads()} thread(s))")


@pytest.mark.parametrize("choice", ["basic", "all"])
def test_measure_at_the_paper_size(benchmark, capsys, synthetic_image, choice):
    """A cell's :func:`measure` at 256², 8 bits (the paper protocol, where ``--metrics
    auto`` computes the perceptual metrics): JPEG 2000 ``ratio=10``."""
    image = synthetic_image(256, 8)
    codec = get_codec("jpeg2000")
    if codec.unavailable_reason():
        pytest.skip(codec.unavailable_reason())
    data = codec.encode(image, "ratio=10")
    decoded = codec.decode(data)
    perceptual = () if choice == "basic" else metrics.PERCEPTUAL
    scoring = metrics.Scoring(metrics.Reference(image.pixels), None, perceptual, None)
    scoring.measure(decoded, len(data), 8)
    benchmark.group = "measure 256 by --metrics"
    benchmark.pedantic(scoring.measure, args=(decoded, len(data), 8), rounds=_rounds(20),
                       warmup_rounds=1)
    with capsys.disabled():
        print(f"\nmeasure --metrics {choice} 256² 8-bit: "
              f"{benchmark.stats.stats.min * 1000:.1f} ms")
