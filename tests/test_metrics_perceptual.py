"""VIFp, GMSD, HaarPSI and FSIM against outside reference implementations.

References and tolerances (absolute, on the metric's value):

- VIFp: ``sewar.full_ref.vifp`` (a transcription of the published ``vifp_mscale.m``),
  on the images scaled to 0-255 by the peak: 1e-10 (medbench filters separably, sewar
  with 2-D ``convolve2d``).
- GMSD and HaarPSI: piqa's ``gmsd`` and ``haarpsi`` (float64, the grey path: its
  functions on one channel after its 2x ``avg_pool2d``): 1e-12 on even sizes; on odd
  sizes against piqa on the image padded with a zero row/column, which is what the
  published MATLAB code's downsampling does (piqa's ``ceil_mode`` pooling does not).
- FSIM: piqa's ``pc_filters``/``phase_congruency``/``fsim`` (float64, grey) given the
  exact σ_f = −ln 0.55 and σ_θ = π/4.8: 3e-5 as shipped (the published code's ε = 1e-4
  and MATLAB median against piqa's 1e-8 and lower median, and piqa's angle convention
  on the Nyquist row/column of even sizes); with piqa's ε and median patched in, on odd
  sizes, 1e-9; and against a line-by-line transcription of the published
  ``FeatureSIM.m``/``phasecong2`` (written here from the MATLAB code), 1e-12.

piqa is loaded without running its package ``__init__``, which imports torchvision (for
LPIPS and FID) and would break the CPU torch. It is installed with ``pip install
--no-deps piqa`` for the same reason (see pyproject.toml).
"""

from __future__ import annotations

import importlib.util
import math
import sys
import types

import numpy as np
import pytest
from scipy.signal import convolve2d

from medbench.benchmark.metrics import perceptual
from medbench.benchmark.metrics.perceptual import _matlab, fsim_map
from medbench.benchmark.metrics.structural import Reference
from tests.conftest import radiograph_like

FUNCTIONS = {"vif": perceptual.vifp, "gmsd": perceptual.gmsd,
             "haarpsi": perceptual.haarpsi, "fsim": perceptual.fsim}


def _pair(shape, bits, noise=0.02, seed=1):
    ref = radiograph_like(shape, bits, seed)
    rng = np.random.default_rng(seed + 100)
    peak = 2**bits - 1
    test = np.clip(ref + rng.normal(0, max(noise * peak, 0.6), ref.shape), 0, peak)
    return ref, np.rint(test).astype(ref.dtype), peak


@pytest.fixture(scope="module")
def piqa():
    """piqa's metric modules, imported without its ``__init__`` (torchvision)."""
    spec = importlib.util.find_spec("piqa")
    if spec is None:
        pytest.skip("piqa is not installed: pip install --no-deps piqa==1.3.2")
    import torch

    saved = {k: v for k, v in sys.modules.items() if k == "piqa" or k.startswith("piqa.")}
    package = types.ModuleType("piqa")
    package.__path__ = list(spec.submodule_search_locations)
    sys.modules["piqa"] = package
    try:
        from piqa import fsim, gmsd, haarpsi
        from piqa.utils import functional
    finally:
        for key in [k for k in sys.modules if k == "piqa" or k.startswith("piqa.")]:
            del sys.modules[key]
        sys.modules.update(saved)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # piqa builds its kernels in the default dtype
    yield types.SimpleNamespace(fsim=fsim, gmsd=gmsd, haarpsi=haarpsi, f=functional)
    torch.set_default_dtype(previous)


def _tensor(a, peak):
    import torch

    return torch.from_numpy(a.astype(np.float64) / peak)[None, None]


def _halved(a, peak, pad=False):
    """piqa's 2x downsampling (``avg_pool2d(2, ceil_mode=True)``), optionally of the image
    padded with a zero row/column on odd sides first."""
    import torch.nn.functional as F

    if pad:
        a = np.pad(a.astype(np.float64), ((0, a.shape[0] % 2), (0, a.shape[1] % 2)))
    return F.avg_pool2d(_tensor(a, peak), 2, ceil_mode=True)


# -- agreement with the references -------------------------------------------------------
@pytest.mark.parametrize("shape,bits", [((41, 41), 8), ((64, 67), 12), ((129, 131), 16),
                                        ((256, 256), 12), ((96, 80), 1), ((100, 90), 10)])
def test_vifp_equals_sewar(shape, bits):
    from sewar.full_ref import vifp as sewar_vifp

    ref, test, peak = _pair(shape, bits)
    expected = sewar_vifp(ref * (255.0 / peak), test * (255.0 / peak))
    got = perceptual.vifp(ref, test, data_range=peak)
    assert got == pytest.approx(expected, abs=1e-10)
    assert 0 < got < 1


def test_vifp_needs_four_scales():
    ref, test, peak = _pair((40, 60), 8)
    assert math.isnan(perceptual.vifp(ref, test, data_range=peak))
    ref, test, peak = _pair((41, 60), 8)
    assert math.isfinite(perceptual.vifp(ref, test, data_range=peak))


@pytest.mark.parametrize("shape,bits", [((128, 128), 12), ((96, 130), 8), ((64, 64), 16),
                                        ((30, 48), 1), ((256, 200), 10)])
def test_gmsd_and_haarpsi_equal_piqa_on_even_sizes(piqa, shape, bits):
    ref, test, peak = _pair(shape, bits)
    x, y = _halved(ref, peak), _halved(test, peak)
    prewitt = piqa.f.gradient_kernel(piqa.f.prewitt_kernel())
    assert perceptual.gmsd(ref, test, data_range=peak) == pytest.approx(
        float(piqa.gmsd.gmsd(x, y, prewitt)), abs=1e-12)
    assert perceptual.haarpsi(ref, test, data_range=peak) == pytest.approx(
        float(piqa.haarpsi.haarpsi(x, y)), abs=1e-12)


@pytest.mark.parametrize("shape,bits", [((129, 131), 16), ((97, 64), 12), ((65, 77), 8)])
def test_gmsd_and_haarpsi_follow_the_published_downsampling_on_odd_sizes(piqa, shape, bits):
    ref, test, peak = _pair(shape, bits)
    prewitt = piqa.f.gradient_kernel(piqa.f.prewitt_kernel())
    x, y = _halved(ref, peak, pad=True), _halved(test, peak, pad=True)
    got_g = perceptual.gmsd(ref, test, data_range=peak)
    got_h = perceptual.haarpsi(ref, test, data_range=peak)
    assert got_g == pytest.approx(float(piqa.gmsd.gmsd(x, y, prewitt)), abs=1e-12)
    assert got_h == pytest.approx(float(piqa.haarpsi.haarpsi(x, y)), abs=1e-12)
    # piqa's own pooling divides the last odd row by 2, not 4: a real difference.
    x, y = _halved(ref, peak), _halved(test, peak)
    assert abs(got_g - float(piqa.gmsd.gmsd(x, y, prewitt))) > 1e-6


def _piqa_fsim(piqa, ref, test, peak, maps=False):
    """piqa's grey FSIM (no downsampling) with the exact σ_f and σ_θ of the published code;
    with ``maps``, its ``S_L·PC_m`` and ``PC_m`` maps instead (piqa's ``fsim`` opened up)."""
    x, y = _tensor(ref, peak), _tensor(test, peak)
    filters = piqa.fsim.pc_filters(x, sigma_f=-math.log(0.55), sigma_theta=math.pi / 4.8)
    pc_x = piqa.fsim.phase_congruency(x, filters, 1.0)
    pc_y = piqa.fsim.phase_congruency(y, filters, 1.0)
    kernel = piqa.f.gradient_kernel(piqa.f.scharr_kernel())
    if not maps:
        return float(piqa.fsim.fsim(x, y, pc_x, pc_y, kernel))
    t1, t2 = 0.85, 160 / 255**2
    g_x = piqa.f.l2_norm(piqa.f.channel_conv(x, kernel, padding=1), dim=1)
    g_y = piqa.f.l2_norm(piqa.f.channel_conv(y, kernel, padding=1), dim=1)
    s_pc = (2 * pc_x * pc_y + t1) / (pc_x**2 + pc_y**2 + t1)
    s_g = (2 * g_x * g_y + t2) / (g_x**2 + g_y**2 + t2)
    pc_m = np.maximum(pc_x[0].numpy(), pc_y[0].numpy())
    return (s_pc * s_g)[0].numpy() * pc_m, pc_m


@pytest.mark.parametrize("shape,bits", [((128, 128), 12), ((96, 130), 8), ((129, 131), 16),
                                        ((256, 256), 10), ((64, 64), 1), ((383, 200), 12)])
def test_fsim_equals_piqa_with_the_exact_constants(piqa, shape, bits):
    ref, test, peak = _pair(shape, bits)
    got = perceptual.fsim(ref, test, data_range=peak)
    assert got == pytest.approx(_piqa_fsim(piqa, ref, test, peak), abs=3e-5)


@pytest.fixture
def piqa_conventions(monkeypatch):
    """FSIM with piqa's ε (1e-8) and median (the lower middle value) instead of the
    published code's: what is left to differ is piqa's angle on even sizes' Nyquist
    row and column, absent on odd sizes."""
    import torch

    monkeypatch.setattr(fsim_map, "EPSILON", 1e-8)
    monkeypatch.setattr(fsim_map, "_median",
                        lambda v: float(torch.from_numpy(np.ascontiguousarray(v)).median()))


@pytest.mark.parametrize("shape,bits", [((129, 131), 16), ((97, 75), 12), ((65, 201), 8)])
def test_fsim_equals_piqa_given_its_epsilon_and_median(piqa, piqa_conventions, shape, bits):
    ref, test, peak = _pair(shape, bits)
    got = perceptual.fsim(ref, test, data_range=peak)
    assert got == pytest.approx(_piqa_fsim(piqa, ref, test, peak), abs=1e-9)


def test_fsim_downsamples_as_the_published_code():
    # F = max(1, round(min / 256)) with MATLAB's round (halves away from zero).
    assert [fsim_map.factor(n, 2000) for n in (200, 383, 384, 640, 2048)] == [1, 1, 2, 3, 8]
    assert _matlab.matlab_round(2.5) == 3 and _matlab.matlab_round(-2.5) == -3
    rng = np.random.default_rng(4)
    for shape, f in [((9, 11), 2), ((17, 13), 3), ((20, 21), 4), ((37, 40), 8)]:
        a = rng.random(shape)
        expected = _conv2_same(a, np.ones((f, f)) / f**2)[::f, ::f]
        np.testing.assert_allclose(_matlab.block_mean(a, f), expected, rtol=0, atol=1e-13)


def _conv2_same(a, k):
    """MATLAB's ``conv2(a, k, 'same')``: the full convolution's central part, which for
    an even kernel starts at index ``K // 2`` of the full output."""
    full = convolve2d(a, k, mode="full")
    r, c = k.shape[0] // 2, k.shape[1] // 2
    return full[r : r + a.shape[0], c : c + a.shape[1]]


def test_conv_same_is_matlabs():
    # MATLAB: conv([1 2 3], [1 1], 'same') is [3 5 3] (SciPy's 'same' gives [1 3 5]).
    np.testing.assert_array_equal(
        _matlab.conv_same(np.array([[1.0, 2.0, 3.0]]), [1.0, 1.0], axis=1), [[3, 5, 3]])
    a = np.random.default_rng(5).random((13, 10))
    for rows, cols in [([1, 0, -1], [1, 1, 1]), ([-1, -1, 1, 1], [1, 1, 1, 1]),
                       ([3, 10, 3], [1, 0, -1]), ([1, 2], [3, 4, 5, 6, 7, 8, 9, 10])]:
        expected = _conv2_same(a, np.outer(rows, cols))
        np.testing.assert_allclose(_matlab.conv_same_2d(a, rows, cols), expected, atol=1e-12)


# -- identical images, API ---------------------------------------------------------------
@pytest.mark.parametrize("bits", [1, 8, 12, 16])
def test_identical_images_score_exactly_the_identical_value(bits):
    ref, _, peak = _pair((70, 90), bits)
    flat = np.full((70, 90), peak // 2, dtype=ref.dtype)
    for image in (ref, flat):
        got = {name: fn(image, image.copy(), data_range=peak) for name, fn in FUNCTIONS.items()}
        assert got == {"vif": 1.0, "gmsd": 0.0, "haarpsi": 1.0, "fsim": 1.0}
        assert all(type(v) is float for v in got.values())


def test_computed_on_identical_images_they_are_within_a_hair_of_it():
    """What the short cut replaces: the published regularizers leave VIFp and HaarPSI
    a hair below 1, and GMSD and FSIM exactly at their identical value."""
    ref, _, peak = _pair((70, 90), 12)
    x = ref * (255.0 / peak)
    for name, expected, tol in [("vif", 1.0, 1e-8), ("gmsd", 0.0, 0.0),
                                ("haarpsi", 1.0, 1e-12), ("fsim", 1.0, 1e-12)]:
        module = perceptual._MODULES[name]
        assert module.compare(module.prepare(x), x, None)[0] == pytest.approx(expected,
                                                                              abs=tol)


@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_the_interface_of_every_metric(name):
    fn = FUNCTIONS[name]
    ref, test, peak = _pair((64, 64), 12)
    value = fn(ref, test, data_range=peak)
    assert type(value) is float and math.isfinite(value)
    with pytest.raises(TypeError):
        fn(ref, test, peak)  # data_range is keyword-only
    with pytest.raises(ValueError, match=r"\(64, 64\).*\(64, 65\)"):
        fn(ref, np.zeros((64, 65), ref.dtype), data_range=peak)
    with pytest.raises(ValueError, match="data_range"):
        fn(ref, test, data_range=0)
    # The peak is the image's: the same picture at 12 bits in uint16 with data_range
    # 4095, or stretched to 16 bits with 65535, scores (almost) the same.
    stretched = fn(ref.astype(np.float64) * 16, test.astype(np.float64) * 16,
                   data_range=peak * 16)
    assert stretched == pytest.approx(value, abs=1e-9)
    assert abs(fn(ref, test, data_range=65535) - value) > 1e-4  # a guessed peak is wrong


def test_a_shared_reference_gives_the_same_values():
    ref, test, peak = _pair((120, 100), 12)
    shared = Reference(ref)
    mask = _disc(ref.shape, 60, 50, 15)
    alone = perceptual.perceptual_metrics(ref, test, data_range=peak, mask=mask)
    for _ in range(2):
        assert perceptual.perceptual_metrics(shared, test, data_range=peak,
                                             mask=mask) == alone
    with pytest.raises(ValueError, match="unknown perceptual metrics"):
        perceptual.perceptual_metrics(ref, test, data_range=peak, names=("vif", "lpips"))


# -- regions -----------------------------------------------------------------------------
def _disc(shape, cy, cx, r):
    rows, cols = np.ogrid[: shape[0], : shape[1]]
    return (rows - cy) ** 2 + (cols - cx) ** 2 <= r * r


@pytest.mark.parametrize("shape", [(128, 128), (129, 131), (600, 520)])
def test_a_region_of_the_whole_image_gives_the_whole_image_values(shape):
    ref, test, peak = _pair(shape, 12)
    got = perceptual.perceptual_metrics(ref, test, data_range=peak,
                                        mask=np.ones(shape, bool))
    for name in perceptual.NAMES:
        assert got[f"roi_{name}"] == pytest.approx(got[name], rel=1e-12)


def _coverage_halved(mask):
    """The share of each 2x2 block in the region: the mask through piqa's pooling."""
    import torch.nn.functional as F

    m = _tensor(mask.astype(np.float64), 1.0)
    return F.avg_pool2d(m, 2, ceil_mode=True)[0, 0].numpy()


def test_gmsd_and_haarpsi_regions_pool_piqas_maps(piqa):
    """Region values against piqa's own maps, pooled with the block shares."""
    import torch

    ref, test, peak = _pair((160, 180), 12)
    mask = _disc(ref.shape, 70, 100, 18)
    got = perceptual.perceptual_metrics(ref, test, data_range=peak, mask=mask)
    share = _coverage_halved(mask)
    x, y = _halved(ref, peak), _halved(test, peak)
    kernel = piqa.f.gradient_kernel(piqa.f.prewitt_kernel())
    c = 170 / 255**2
    gm_x = piqa.f.l2_norm(piqa.f.channel_conv(x, kernel, padding=1), dim=1)[0].numpy()
    gm_y = piqa.f.l2_norm(piqa.f.channel_conv(y, kernel, padding=1), dim=1)[0].numpy()
    gms = (2 * gm_x * gm_y + c) / (gm_x**2 + gm_y**2 + c)
    mean = (share * gms).sum() / share.sum()
    expected = math.sqrt((share * (gms - mean) ** 2).sum() / (share.sum() - 1))
    assert got["roi_gmsd"] == pytest.approx(expected, abs=1e-12)
    # HaarPSI: piqa's haarpsi with its pooling opened up (same lines, maps kept).
    sims, weights = [], []
    for orient in range(2):
        g = []
        for j in (1, 2, 3):
            kernel = piqa.f.gradient_kernel(piqa.f.haar_kernel(2**j))
            g_x = piqa.f.channel_conv(x, kernel, padding=2**j // 2)[..., 1:, 1:].abs()
            g_y = piqa.f.channel_conv(y, kernel, padding=2**j // 2)[..., 1:, 1:].abs()
            g.append((g_x[0, orient].numpy(), g_y[0, orient].numpy()))
        cc = 30 / 255**2
        local = sum((2 * a * b + cc) / (a**2 + b**2 + cc) for a, b in g[:2]) / 2
        sims.append(torch.sigmoid(torch.from_numpy(local) * 4.2).numpy())
        weights.append(np.maximum(*g[2]) * share)
    mean = sum((s * w).sum() for s, w in zip(sims, weights)) / sum(w.sum() for w in weights)
    assert got["roi_haarpsi"] == pytest.approx((math.log(mean / (1 - mean)) / 4.2) ** 2,
                                               abs=1e-12)


def test_fsim_region_pools_piqas_maps(piqa, piqa_conventions):
    ref, test, peak = _pair((151, 141), 12)
    mask = _disc(ref.shape, 40, 90, 20)
    sim, pc_m = _piqa_fsim(piqa, ref, test, peak, maps=True)
    got = perceptual.perceptual_metrics(ref, test, data_range=peak, mask=mask)
    assert got["roi_fsim"] == pytest.approx((sim * mask).sum() / (pc_m * mask).sum(),
                                            abs=1e-9)


def _vifp_maps(ref, test):
    """sewar's ``_vifp_single`` with its sums opened up: each scale's numerator and
    denominator maps (sewar's own filtering, window and guards)."""
    from sewar.utils import Filter, _get_sigmas, _get_sums, filter2, fspecial

    eps, maps = 1e-10, []
    gt, p = ref.astype(np.float64), test.astype(np.float64)
    for scale in range(1, 5):
        n = 2.0 ** (4 - scale + 1) + 1
        win = fspecial(Filter.GAUSSIAN, ws=n, sigma=n / 5)
        if scale > 1:
            gt, p = filter2(gt, win, "valid")[::2, ::2], filter2(p, win, "valid")[::2, ::2]
        sums = _get_sums(gt, p, win, mode="valid")
        s1, s2, s12 = _get_sigmas(gt, p, win, mode="valid", sums=sums)
        s1[s1 < 0], s2[s2 < 0] = 0, 0
        g = s12 / (s1 + eps)
        sv = s2 - g * s12
        g[s1 < eps], sv[s1 < eps] = 0, s2[s1 < eps]
        s1[s1 < eps] = 0
        g[s2 < eps], sv[s2 < eps] = 0, 0
        sv[g < 0], g[g < 0] = s2[g < 0], 0
        sv[sv <= eps] = eps
        maps.append((np.log10(1 + g**2 * s1 / (sv + 2)), np.log10(1 + s1 / 2), win))
    return maps


def test_vifp_region_pools_sewars_maps():
    ref, test, peak = _pair((150, 170), 8)
    mask = _disc(ref.shape, 75, 60, 25)
    got = perceptual.perceptual_metrics(ref, test, data_range=peak, mask=mask)
    share, num, den = mask.astype(np.float64), 0.0, 0.0
    for scale, (n_map, d_map, win) in enumerate(_vifp_maps(ref, test), start=1):
        if scale > 1:  # the mask through the same prefilter, as a share
            share = (convolve2d(share, win, "valid")[::2, ::2]
                     / convolve2d(np.ones(share.shape), win, "valid")[::2, ::2])
        half = win.shape[0] // 2
        w = share[half:-half, half:-half]
        num, den = num + (n_map * w).sum(), den + (d_map * w).sum()
    assert got["roi_vif"] == pytest.approx(num / den, abs=1e-10)
    assert got["vif"] == pytest.approx(sum(n.sum() for n, _, _ in _vifp_maps(ref, test))
                                       / sum(d.sum() for _, d, _ in _vifp_maps(ref, test)),
                                       abs=1e-10)


def test_a_distortion_inside_the_region_shows_in_the_region():
    ref, _, peak = _pair((256, 256), 12, noise=0.0)
    mask = _disc(ref.shape, 100, 150, 12)
    test = ref.astype(np.int32)
    test[mask] += np.random.default_rng(5).integers(-300, 301, int(mask.sum()))
    test = np.clip(test, 0, peak).astype(ref.dtype)
    got = perceptual.perceptual_metrics(ref, test, data_range=peak, mask=mask)
    assert got["roi_vif"] < got["vif"] - 0.1
    assert got["roi_gmsd"] > 5 * got["gmsd"]
    assert got["roi_haarpsi"] < got["haarpsi"] - 0.1
    assert got["roi_fsim"] < got["fsim"] - 0.02


def test_a_small_region_keeps_its_weight_on_coarse_grids():
    """A 3-px nodule on a 256² image still has values: on GMSD's 2x grid, FSIM's grid and
    VIFp's coarsest scale it counts with its share of each block."""
    ref, test, peak = _pair((256, 256), 8)
    mask = np.zeros(ref.shape, bool)
    mask[127:130, 127:130] = True
    got = perceptual.perceptual_metrics(ref, test, data_range=peak, mask=mask)
    assert all(math.isfinite(got[f"roi_{name}"]) for name in perceptual.NAMES)


def test_a_flat_decode_scores_low_not_nan():
    """A decode that lost every structure (JPEG 2000 at 160:1 on a small image) has no
    phase congruency amplitude anywhere: FSIM stays a (low) number."""
    ref, _, peak = _pair((96, 96), 12)
    flat = np.full(ref.shape, int(ref.mean()), ref.dtype)
    got = perceptual.perceptual_metrics(ref, flat, data_range=peak)
    assert got["vif"] == 0.0 and got["gmsd"] > 0.05
    assert 0 < got["fsim"] < 0.9 and 0 < got["haarpsi"] < 0.5


# -- FSIM against a line-by-line transcription of the published MATLAB code ----------------
def _phasecong2(im):
    """``phasecong2`` of the published ``FeatureSIM.m``, transcribed line by line (loops
    over orientations and scales, MATLAB's ``median``, ε = 1e-4, no ε in the last
    division). Independent of medbench's vectorized version and of piqa's."""
    nscale, norient, min_wave, mult, sigma_onf, d_theta_on_sigma, k, epsilon = (
        4, 4, 6, 2, 0.55, 1.2, 2.0, 0.0001)
    theta_sigma = np.pi / norient / d_theta_on_sigma
    rows, cols = im.shape
    imagefft = np.fft.fft2(im)
    xr = (np.arange(-(cols - 1) / 2, (cols - 1) / 2 + 1) / (cols - 1) if cols % 2
          else np.arange(-cols / 2, cols / 2) / cols)
    yr = (np.arange(-(rows - 1) / 2, (rows - 1) / 2 + 1) / (rows - 1) if rows % 2
          else np.arange(-rows / 2, rows / 2) / rows)
    x, y = np.meshgrid(xr, yr)
    radius = np.sqrt(x**2 + y**2)
    theta = np.arctan2(-y, x)
    lp = np.fft.ifftshift(1.0 / (1.0 + (radius / 0.45) ** (2 * 15)))  # lowpassfilter.m
    radius, theta = np.fft.ifftshift(radius), np.fft.ifftshift(theta)
    radius[0, 0] = 1
    sintheta, costheta = np.sin(theta), np.cos(theta)
    log_gabor = []
    for s in range(1, nscale + 1):
        fo = 1.0 / (min_wave * mult ** (s - 1))
        lg = np.exp((-(np.log(radius / fo)) ** 2) / (2 * np.log(sigma_onf) ** 2)) * lp
        lg[0, 0] = 0
        log_gabor.append(lg)
    energy_all, an_all = np.zeros((rows, cols)), np.zeros((rows, cols))
    for o in range(1, norient + 1):
        angl = (o - 1) * np.pi / norient
        ds = sintheta * np.cos(angl) - costheta * np.sin(angl)
        dc = costheta * np.cos(angl) + sintheta * np.sin(angl)
        spread = np.exp((-np.abs(np.arctan2(ds, dc)) ** 2) / (2 * theta_sigma**2))
        sum_e, sum_o, sum_an, eo, ifft_filters = 0, 0, 0, [], []
        for s in range(nscale):
            filt = log_gabor[s] * spread
            ifft_filters.append(np.real(np.fft.ifft2(filt)) * np.sqrt(rows * cols))
            eo.append(np.fft.ifft2(imagefft * filt))
            sum_an = sum_an + np.abs(eo[s])
            sum_e, sum_o = sum_e + np.real(eo[s]), sum_o + np.imag(eo[s])
            if s == 0:
                em_n = np.sum(filt**2)
        x_energy = np.sqrt(sum_e**2 + sum_o**2) + epsilon
        mean_e, mean_o = sum_e / x_energy, sum_o / x_energy
        energy = 0
        for s in range(nscale):
            e, od = np.real(eo[s]), np.imag(eo[s])
            energy = energy + e * mean_e + od * mean_o - np.abs(e * mean_o - od * mean_e)
        mean_e2n = -np.median(np.abs(eo[0]) ** 2) / np.log(0.5)
        noise_power = mean_e2n / em_n
        est_sum_an2 = sum(f**2 for f in ifft_filters)
        est_sum_aiaj = sum(ifft_filters[i] * ifft_filters[j]
                           for i in range(nscale - 1) for j in range(i + 1, nscale))
        est_noise_energy2 = (2 * noise_power * np.sum(est_sum_an2)
                             + 4 * noise_power * np.sum(est_sum_aiaj))
        tau = np.sqrt(est_noise_energy2 / 2)
        t = (tau * np.sqrt(np.pi / 2) + k * np.sqrt((2 - np.pi / 2) * tau**2)) / 1.7
        energy_all = energy_all + np.maximum(energy - t, 0)
        an_all = an_all + sum_an
    return energy_all / an_all


def _feature_sim(ref255, dist255):
    """``FeatureSIM.m``'s FSIM output, transcribed (MATLAB's ``round``, ``conv2 'same'``)."""
    rows, cols = ref255.shape
    f = max(1, int(np.floor(min(rows, cols) / 256 + 0.5)))
    ave = np.ones((f, f)) / f**2
    y1, y2 = (_conv2_same(a, ave)[::f, ::f] for a in (ref255, dist255))
    pc1, pc2 = _phasecong2(y1), _phasecong2(y2)
    dx = np.array([[3, 0, -3], [10, 0, -10], [3, 0, -3]]) / 16
    g1 = np.sqrt(_conv2_same(y1, dx) ** 2 + _conv2_same(y1, dx.T) ** 2)
    g2 = np.sqrt(_conv2_same(y2, dx) ** 2 + _conv2_same(y2, dx.T) ** 2)
    s_pc = (2 * pc1 * pc2 + 0.85) / (pc1**2 + pc2**2 + 0.85)
    s_g = (2 * g1 * g2 + 160) / (g1**2 + g2**2 + 160)
    pc_m = np.maximum(pc1, pc2)
    return np.sum(s_g * s_pc * pc_m) / np.sum(pc_m)


@pytest.mark.parametrize("shape,bits", [((128, 128), 12), ((97, 75), 16), ((96, 130), 8),
                                        ((600, 520), 12)])
def test_fsim_equals_a_transcription_of_the_published_code(shape, bits):
    """The published code's own conventions (ε, median, angle, downsampling: F = 2 at
    600x520), which no outside Python package keeps all of: to 1e-12."""
    ref, test, peak = _pair(shape, bits)
    scale = 255.0 / peak
    assert perceptual.fsim(ref, test, data_range=peak) == pytest.approx(
        _feature_sim(ref * scale, test * scale), abs=1e-12)
    np.testing.assert_allclose(fsim_map.phase_congruency(ref * scale),
                               _phasecong2(ref * scale), rtol=0, atol=1e-12)


def test_fsim_takes_matlabs_median():
    assert fsim_map._median(np.array([[4.0, 1.0], [3.0, 2.0]])) == 2.5
