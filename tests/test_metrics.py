"""Metrics against an independent float64 NumPy/SciPy implementation of Wang et al.

The reference below is written from the papers (Wang et al. 2004 for SSIM, Wang et al.
2003 for MS-SSIM) with the conventions pytorch-msssim documents: 11-tap Gaussian window
with σ = 1.5 applied separably without padding ("valid"), K = (0.01, 0.03), 2×2 average
pooling between scales with one pixel of zero padding on each side of an odd dimension,
negative contrast terms clipped to zero, weights (0.0448, 0.2856, 0.3001, 0.2363, 0.1333).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.ndimage import correlate1d

from medbench.benchmark import metrics
from medbench.benchmark.metrics import structural
from tests.conftest import radiograph_like

WEIGHTS = np.array([0.0448, 0.2856, 0.3001, 0.2363, 0.1333])


def _gauss(size=11, sigma=1.5):
    x = np.arange(size, dtype=np.float64) - size // 2
    g = np.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def _filter_valid(img):
    g = _gauss()
    half = len(g) // 2
    out = correlate1d(img, g, axis=0, mode="constant")[half:-half, :]
    return correlate1d(out, g, axis=1, mode="constant")[:, half:-half]


def ref_ssim_cs(x, y, peak):
    c1, c2 = (0.01 * peak) ** 2, (0.03 * peak) ** 2
    mx, my = _filter_valid(x), _filter_valid(y)
    sxx = _filter_valid(x * x) - mx * mx
    syy = _filter_valid(y * y) - my * my
    sxy = _filter_valid(x * y) - mx * my
    cs = (2 * sxy + c2) / (sxx + syy + c2)
    lum = (2 * mx * my + c1) / (mx * mx + my * my + c1)
    return float(np.mean(lum * cs)), float(np.mean(cs))


def _pool(img):
    ph, pw = img.shape[0] % 2, img.shape[1] % 2
    img = np.pad(img, ((ph, ph), (pw, pw)))
    h, w = img.shape[0] // 2 * 2, img.shape[1] // 2 * 2
    img = img[:h, :w]
    return img.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))


def ref_ms_ssim(x, y, peak, levels=5):
    x, y = x.astype(np.float64), y.astype(np.float64)
    w = WEIGHTS if levels == 5 else WEIGHTS[:levels] / WEIGHTS[:levels].sum()
    terms = []
    for level in range(levels):
        s, cs = ref_ssim_cs(x, y, peak)
        if level < levels - 1:
            terms.append(max(cs, 0.0))
            x, y = _pool(x), _pool(y)
    terms.append(max(s, 0.0))
    return float(np.prod(np.array(terms) ** w))


def _pair(shape, bit_depth, noise, seed=1):
    ref = radiograph_like(shape, bit_depth, seed)
    rng = np.random.default_rng(seed + 100)
    peak = 2**bit_depth - 1
    test = np.clip(ref + rng.normal(0, noise * peak, ref.shape), 0, peak)
    return ref, np.rint(test).astype(ref.dtype), peak


def test_psnr_exact_value():
    ref = np.zeros((10, 10), dtype=np.uint16)
    test = ref.copy()
    test[3, 4] = 7  # one pixel off by 7 on a 12-bit scale
    expected = 10 * math.log10(4095**2 / (49 / 100))
    assert metrics.psnr(ref, test, data_range=4095) == pytest.approx(expected, abs=1e-12)
    assert metrics.mse(ref, test) == 49 / 100
    assert metrics.max_abs_error(ref, test) == 7


def test_psnr_identical_is_inf_and_peak_is_explicit():
    a = radiograph_like(32, 12)
    assert metrics.psnr(a, a, data_range=4095) == math.inf
    b = a.copy()
    b[0, 0] += 1
    # The same error reads 24 dB better against a 16-bit peak than a 12-bit one.
    gap = metrics.psnr(a, b, data_range=65535) - metrics.psnr(a, b, data_range=4095)
    assert gap == pytest.approx(20 * math.log10(65535 / 4095))


def test_psnr_from_mse_is_the_formula_psnr_uses():
    # 10·log10(255² / 65.025) = 30 dB exactly; MSE 0 is inf, NaN stays NaN.
    assert metrics.psnr_from_mse(65.025, 255) == pytest.approx(30.0, abs=1e-12)
    assert metrics.psnr_from_mse(1e-3, 1.0) == pytest.approx(30.0, abs=1e-12)
    assert metrics.psnr_from_mse(0.0, 4095) == math.inf
    assert math.isnan(metrics.psnr_from_mse(math.nan, 255))
    with pytest.raises(ValueError, match="must be >= 0"):
        metrics.psnr_from_mse(-1.0, 255)


def test_shape_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"\(4, 4\).*\(4, 5\)"):
        metrics.mse(np.zeros((4, 4)), np.zeros((4, 5)))


def test_data_range_is_required_and_positive():
    a = np.zeros((4, 4))
    with pytest.raises(TypeError):
        metrics.psnr(a, a, 255)  # type: ignore[misc]  (keyword only)
    with pytest.raises(ValueError, match="positive"):
        metrics.psnr(a, a, data_range=0)


@pytest.mark.parametrize("shape,bits,noise", [((192, 176), 8, 0.02), ((200, 171), 12, 0.01)])
def test_ms_ssim_matches_reference(shape, bits, noise):
    ref, test, peak = _pair(shape, bits, noise)
    ours = metrics.ms_ssim(ref, test, data_range=peak)
    assert ours == pytest.approx(ref_ms_ssim(ref, test, peak), abs=1e-4)
    assert 0.5 < ours < 1.0


def test_ssim_matches_reference():
    ref, test, peak = _pair((64, 80), 10, 0.02)
    assert metrics.ssim(ref, test, data_range=peak) == pytest.approx(
        ref_ssim_cs(ref.astype(float), test.astype(float), peak)[0], abs=1e-6
    )


@pytest.mark.parametrize("side,levels", [(160, 4), (81, 4), (80, 3), (40, 2), (21, 2), (11, 1)])
def test_ms_ssim_small_images_use_fewer_scales(side, levels):
    assert metrics.ms_ssim_levels(side, side + 7) == levels
    ref, test, peak = _pair((side, side + 7), 8, 0.03)
    ours = metrics.ms_ssim(ref, test, data_range=peak)
    assert ours == pytest.approx(ref_ms_ssim(ref, test, peak, levels), abs=1e-4)


def test_ms_ssim_tiny_image_is_nan_not_crash():
    a = np.zeros((8, 8), dtype=np.uint8)
    assert math.isnan(metrics.ms_ssim(a, a, data_range=255))
    assert math.isnan(metrics.ssim(a, a, data_range=255))


def test_rate_formulas():
    assert metrics.bits_per_pixel(1000, 100, 80) == 1.0
    assert metrics.compression_ratio(1000, 100, 80, 12) == 12.0
    row = metrics.measure(np.zeros((8, 8), np.uint8), np.zeros((8, 8), np.uint8), 4, 8)
    assert row["bpp"] == 0.5 and row["ratio"] == 16.0 and row["lossless_exact"] is True


def test_ms_ssim_equals_pytorch_msssim_on_large_images():
    import torch
    from pytorch_msssim import ms_ssim as pt_ms_ssim
    from pytorch_msssim import ssim as pt_ssim

    ref, test, peak = _pair((200, 171), 12, 0.01)
    x = torch.from_numpy(ref.astype(np.float64))[None, None]
    y = torch.from_numpy(test.astype(np.float64))[None, None]
    assert metrics.ms_ssim(ref, test, data_range=peak) == pytest.approx(
        float(pt_ms_ssim(x, y, data_range=peak)), abs=1e-12)
    assert metrics.ssim(ref, test, data_range=peak) == pytest.approx(
        float(pt_ssim(x, y, data_range=peak)), abs=1e-12)


def test_measure_agrees_with_the_single_metrics():
    ref, test, peak = _pair((180, 190), 10, 0.02)
    row = metrics.measure(ref, test, 1234, 10)
    assert row["ssim"] == metrics.ssim(ref, test, data_range=peak)
    assert row["ms_ssim"] == metrics.ms_ssim(ref, test, data_range=peak)
    assert row["psnr"] == metrics.psnr(ref, test, data_range=peak)


@pytest.mark.parametrize("gpu", [True, False])
@pytest.mark.parametrize("setting, expected", [
    (None, {True: "cuda", False: "cpu"}),  # auto: the GPU when there is one
    ("auto", {True: "cuda", False: "cpu"}),
    ("cpu", {True: "cpu", False: "cpu"}),
    ("CUDA", {True: "cuda", False: "cuda"}),  # asked for: no silent fallback
])
def test_metrics_device_follows_the_environment(monkeypatch, gpu, setting, expected):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpu)
    if setting is None:
        monkeypatch.delenv("MEDBENCH_METRICS_DEVICE", raising=False)
    else:
        monkeypatch.setenv("MEDBENCH_METRICS_DEVICE", setting)
    assert metrics.metrics_device().type == expected[gpu]


def test_gpu_and_cpu_structural_metrics_agree(monkeypatch):
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA device on this machine")
    ref, test, peak = _pair((300, 280), 12, 0.01)
    monkeypatch.setenv("MEDBENCH_METRICS_DEVICE", "cuda")
    gpu = metrics.measure(ref, test, 100, 12)
    monkeypatch.setenv("MEDBENCH_METRICS_DEVICE", "cpu")
    cpu = metrics.measure(ref, test, 100, 12)
    assert gpu["ms_ssim"] == pytest.approx(cpu["ms_ssim"], abs=1e-10)
    assert gpu["ssim"] == pytest.approx(cpu["ssim"], abs=1e-10)


# -- the CPU path against pytorch-msssim (float64 torch on the CPU) ---------------------
def _torch_reference(ref, test, peak, levels):
    """(SSIM, MS-SSIM) of the torch path, run on the CPU: pytorch-msssim's ``_ssim`` per
    scale, with medbench's renormalized weights under 161 px."""
    import torch

    return structural._structural_torch(ref.astype(np.float64), test.astype(np.float64), peak,
                                     levels, torch.device("cpu"))


@pytest.fixture
def cpu_metrics(monkeypatch):
    """Select the CPU path even where there is a GPU."""
    monkeypatch.setenv("MEDBENCH_METRICS_DEVICE", "cpu")


@pytest.mark.parametrize("shape,bits", [
    ((171, 203), 8), ((333, 257), 12), ((257, 333), 16), ((161, 161), 12), ((161, 190), 16),
    ((300, 280), 16),
])
def test_cpu_path_equals_pytorch_msssim(cpu_metrics, shape, bits):
    import torch
    from pytorch_msssim import ms_ssim as pt_ms_ssim
    from pytorch_msssim import ssim as pt_ssim

    ref, test, peak = _pair(shape, bits, 0.01)
    x = torch.from_numpy(ref.astype(np.float64))[None, None]
    y = torch.from_numpy(test.astype(np.float64))[None, None]
    assert metrics.ssim(ref, test, data_range=peak) == pytest.approx(
        float(pt_ssim(x, y, data_range=peak)), abs=1e-9)
    assert metrics.ms_ssim(ref, test, data_range=peak) == pytest.approx(
        float(pt_ms_ssim(x, y, data_range=peak)), abs=1e-9)


@pytest.mark.parametrize("shape,bits", [
    ((160, 167), 16), ((100, 90), 12), ((81, 95), 8), ((40, 47), 16), ((21, 30), 12),
    ((11, 12), 8),
])
def test_cpu_path_equals_torch_path_under_161_px(cpu_metrics, shape, bits):
    ref, test, peak = _pair(shape, bits, 0.01)
    levels = metrics.ms_ssim_levels(*shape)
    single, multi = _torch_reference(ref, test, peak, levels)
    assert metrics.ssim(ref, test, data_range=peak) == pytest.approx(single, abs=1e-9)
    assert metrics.ms_ssim(ref, test, data_range=peak) == pytest.approx(multi, abs=1e-9)


PINNED_SSIM, PINNED_MS_SSIM = 0.9430918525375063, 0.9945699985358505


def test_cpu_path_pinned_value(cpu_metrics):
    # pytorch-msssim float64 on this pair; pins the definition, not just agreement.
    ref, test, peak = _pair((200, 171), 12, 0.01)
    row = metrics.measure(ref, test, 100, 12)
    assert row["ssim"] == pytest.approx(PINNED_SSIM, abs=1e-12)
    assert row["ms_ssim"] == pytest.approx(PINNED_MS_SSIM, abs=1e-12)


@pytest.mark.parametrize("bits", [8, 12, 16])
def test_identical_images_score_one(cpu_metrics, bits):
    ref = radiograph_like((190, 173), bits)
    assert metrics.ssim(ref, ref, data_range=2**bits - 1) == pytest.approx(1.0, abs=1e-15)
    assert metrics.ms_ssim(ref, ref, data_range=2**bits - 1) == pytest.approx(1.0, abs=1e-15)


def test_bands_on_threads_give_the_same_result(cpu_metrics, monkeypatch):
    ref, test, peak = _pair((333, 257), 16, 0.01)
    monkeypatch.setattr(structural, "_threads", lambda: 3)
    threaded = metrics.measure(ref, test, 100, 16)
    monkeypatch.setattr(structural, "_threads", lambda: 1)
    serial = metrics.measure(ref, test, 100, 16)
    assert (threaded["ssim"], threaded["ms_ssim"]) == (serial["ssim"], serial["ms_ssim"])


def test_threads_follow_the_omp_cap(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert structural._threads() == 1
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert structural._threads() >= 1


@pytest.mark.parametrize("shape", [(6, 8), (7, 8), (6, 9), (7, 9), (1, 1)])
def test_pooling_equals_torch_avg_pool2d(shape):
    import torch
    import torch.nn.functional as F

    a = np.random.default_rng(0).random(shape) * 4095
    padding = [s % 2 for s in shape]
    expected = F.avg_pool2d(torch.from_numpy(a)[None, None], 2, padding=padding)[0, 0]
    np.testing.assert_allclose(structural._pool2(a), expected.numpy(), rtol=0, atol=1e-12)


@pytest.mark.parametrize("shape,bits", [((300, 280), 12), ((171, 203), 8), ((97, 120), 16)])
def test_a_shared_reference_gives_bit_identical_metrics(shape, bits):
    """Reusing the original's statistics across cells changes no bit of any metric."""
    from medbench.benchmark.metrics import Reference, measure

    rng = np.random.default_rng(3)
    peak = 2**bits - 1
    ref = rng.integers(0, peak + 1, shape).astype(np.uint16 if bits > 8 else np.uint8)
    shared = Reference(ref)
    for seed in range(3):
        noise = np.random.default_rng(seed).integers(-40, 41, shape)
        dec = np.clip(ref.astype(np.int64) + noise, 0, peak).astype(ref.dtype)
        assert measure(shared, dec, 1000, bits) == measure(ref, dec, 1000, bits)


def test_an_exact_decode_scores_one_without_filtering():
    from medbench.benchmark.metrics import measure

    ref = np.random.default_rng(0).integers(0, 4096, (64, 80)).astype(np.uint16)
    row = measure(ref, ref.copy(), 100, 12)
    assert row["ssim"] == row["ms_ssim"] == 1.0 and row["lossless_exact"]
    assert row["ssim"] == metrics.ssim(ref, ref, data_range=4095)


# -- region metrics --------------------------------------------------------------------
def _torch_ssim_map(ref, test, peak):
    """The whole-image SSIM map from pytorch-msssim's own pieces (its window and
    ``gaussian_filter``, the formula of ``_ssim``), float64, valid filtering."""
    import torch
    from pytorch_msssim.ssim import _fspecial_gauss_1d, gaussian_filter

    win = _fspecial_gauss_1d(11, 1.5).repeat([1, 1, 1, 1]).double()
    x = torch.from_numpy(ref.astype(np.float64))[None, None]
    y = torch.from_numpy(test.astype(np.float64))[None, None]
    c1, c2 = (0.01 * peak) ** 2, (0.03 * peak) ** 2
    mu1, mu2 = gaussian_filter(x, win), gaussian_filter(y, win)
    s11 = gaussian_filter(x * x, win) - mu1 * mu1
    s22 = gaussian_filter(y * y, win) - mu2 * mu2
    s12 = gaussian_filter(x * y, win) - mu1 * mu2
    cs = (2 * s12 + c2) / (s11 + s22 + c2)
    return (((2 * mu1 * mu2 + c1) / (mu1 * mu1 + mu2 * mu2 + c1)) * cs)[0, 0].numpy()


def _disc(shape, cy, cx, r):
    rows, cols = np.ogrid[: shape[0], : shape[1]]
    return (rows - cy) ** 2 + (cols - cx) ** 2 <= r * r


@pytest.mark.parametrize("shape,bits,centre,radius", [
    ((180, 200), 12, (90, 100), 20),
    ((120, 97), 8, (3, 50), 9),  # crosses the top border: pixels without a window
    ((150, 160), 16, (140, 150), 15),  # crosses two borders
])
def test_region_metrics_equal_the_masked_whole_image_map(shape, bits, centre, radius):
    ref, test, peak = _pair(shape, bits, 0.02)
    mask = _disc(shape, *centre, radius)
    got = metrics.region_metrics(ref, test, mask, data_range=peak)
    # The full map belongs to pixels (5.., 5..): pad it back to the image with NaN.
    full = np.full(shape, np.nan)
    full[5:-5, 5:-5] = _torch_ssim_map(ref, test, peak)
    values = full[mask]
    assert got["roi_ssim"] == pytest.approx(np.nanmean(values), abs=1e-12)
    diff = ref[mask].astype(np.float64) - test[mask]
    assert got["roi_psnr"] == pytest.approx(10 * math.log10(peak**2 / np.mean(diff**2)),
                                            abs=1e-12)
    assert got["roi_max_abs_error"] == int(np.abs(diff).max())
    assert isinstance(got["roi_max_abs_error"], int)


def test_region_metrics_of_the_whole_image_are_the_whole_image_metrics():
    ref, test, peak = _pair((130, 140), 12, 0.01)
    whole = metrics.region_metrics(ref, test, np.ones(ref.shape, bool), data_range=peak)
    assert whole["roi_psnr"] == pytest.approx(metrics.psnr(ref, test, data_range=peak))
    assert whole["roi_ssim"] == pytest.approx(metrics.ssim(ref, test, data_range=peak),
                                              abs=1e-12)
    assert whole["roi_max_abs_error"] == metrics.max_abs_error(ref, test)


def test_region_metrics_exact_decode_and_border_only_region():
    ref, test, peak = _pair((60, 60), 8, 0.02)
    mask = _disc(ref.shape, 30, 30, 6)
    exact = metrics.region_metrics(ref, ref.copy(), mask, data_range=peak)
    assert exact == {"roi_psnr": math.inf, "roi_ssim": 1.0, "roi_max_abs_error": 0}
    rim = np.zeros(ref.shape, bool)
    rim[:3, :] = True  # no pixel of it has its 11x11 window inside the image
    border = metrics.region_metrics(ref, test, rim, data_range=peak)
    assert math.isnan(border["roi_ssim"]) and math.isfinite(border["roi_psnr"])


def test_region_metrics_refuse_bad_masks():
    ref, test, peak = _pair((40, 40), 8, 0.02)
    with pytest.raises(ValueError, match=r"\(40, 40\).*\(40, 41\)"):
        metrics.region_metrics(ref, test, np.ones((40, 41), bool), data_range=peak)
    with pytest.raises(ValueError, match="selects no pixel"):
        metrics.region_metrics(ref, test, np.zeros((40, 40), bool), data_range=peak)
    with pytest.raises(ValueError, match="data_range"):
        metrics.region_metrics(ref, test, np.ones((40, 40), bool), data_range=0)


def test_a_distortion_inside_the_region_shows_in_the_region_not_the_whole():
    ref, _, peak = _pair((512, 512), 12, 0.0)
    mask = _disc(ref.shape, 200, 300, 12)
    rng = np.random.default_rng(5)
    test = ref.astype(np.int32)
    test[mask] += rng.integers(-200, 201, int(mask.sum()))
    test = np.clip(test, 0, peak).astype(ref.dtype)
    roi = metrics.region_metrics(ref, test, mask, data_range=peak)
    whole = metrics.measure(ref, test, 1000, 12)
    assert roi["roi_psnr"] < whole["psnr"] - 25  # 450 of 262,144 pixels: ~27 dB apart
    assert roi["roi_ssim"] < whole["ssim"] - 0.2
    assert roi["roi_max_abs_error"] == whole["max_abs_error"]
