"""Per-image distortion and rate metrics.

All distortion metrics take ``(reference, test, *, data_range)``; ``data_range`` is the
peak value ``2**bit_depth - 1`` of the *image*, never guessed from the array dtype (a
12-bit radiograph in ``uint16`` has a peak of 4095, not 65535). They return Python floats
and raise ``ValueError`` naming both shapes when the arrays differ in shape.

References
----------
Z. Wang, E. P. Simoncelli, A. C. Bovik, "Multiscale structural similarity for image
quality assessment", Asilomar Conference on Signals, Systems and Computers, 2003,
doi:10.1109/ACSSC.2003.1292216.

Z. Wang, A. C. Bovik, H. R. Sheikh, E. P. Simoncelli, "Image quality assessment: from
error visibility to structural similarity", IEEE TIP 13(4), 2004,
doi:10.1109/TIP.2003.819861.
"""

from __future__ import annotations

import math

import numpy as np
import torch

#: Scale weights of Wang et al. 2003 (five scales), as in pytorch-msssim.
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
WIN_SIZE = 11
WIN_SIGMA = 1.5


def _pair(reference: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if reference.shape != test.shape:
        raise ValueError(
            f"reference shape {reference.shape} and test shape {test.shape} differ"
        )
    return reference.astype(np.float64), test.astype(np.float64)


def _check_range(data_range: float) -> float:
    if not data_range > 0:
        raise ValueError(f"data_range must be positive, got {data_range}")
    return float(data_range)


def mse(reference: np.ndarray, test: np.ndarray) -> float:
    """Mean squared error on the native pixel scale."""
    ref, tst = _pair(reference, test)
    return float(np.mean((ref - tst) ** 2))


def psnr(reference: np.ndarray, test: np.ndarray, *, data_range: float) -> float:
    """Peak signal-to-noise ratio in dB with peak ``data_range``; ``inf`` when identical."""
    return psnr_from_mse(mse(reference, test), data_range)


def psnr_from_mse(mse: float, peak: float) -> float:
    """PSNR in dB of a mean squared error: ``10·log10(peak² / mse)``.

    Parameters
    ----------
    mse : float
        Mean squared error on the scale of ``peak`` (0 for identical images).
    peak : float
        The peak value, ``2**bit_depth - 1`` for native pixels, 1 for an MSE already
        divided by ``peak²``.

    Returns
    -------
    float
        ``inf`` when ``mse`` is 0, NaN when it is NaN.
    """
    peak = _check_range(peak)
    mse = float(mse)
    if math.isnan(mse):
        return math.nan
    if mse < 0:
        raise ValueError(f"mse must be >= 0, got {mse}")
    if mse == 0:
        return math.inf
    return float(10.0 * math.log10(peak * peak / mse))


def max_abs_error(reference: np.ndarray, test: np.ndarray) -> int:
    """Largest absolute pixel difference (the near-lossless bound)."""
    ref, tst = _pair(reference, test)
    return int(np.max(np.abs(ref - tst))) if ref.size else 0


def metrics_device() -> torch.device:
    """Where SSIM/MS-SSIM are computed: the GPU when there is one, else the CPU.

    Float64 Gaussian filtering of a 2048² image takes seconds on a CPU and milliseconds
    on a GPU; the results agree to ~1e-12. ``MEDBENCH_METRICS_DEVICE=cpu`` (or ``cuda``)
    overrides the choice.
    """
    import os

    choice = os.environ.get("MEDBENCH_METRICS_DEVICE", "auto").lower()
    if choice == "cpu" or (choice == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    return torch.device("cuda")


def _tensor(a: np.ndarray, device: torch.device | None = None) -> torch.Tensor:
    return torch.from_numpy(a).reshape(1, 1, *a.shape).to(device or "cpu")


def ssim(reference: np.ndarray, test: np.ndarray, *, data_range: float) -> float:
    """Single-scale SSIM (Wang et al. 2004): 11×11 Gaussian window, σ = 1.5, K = (0.01, 0.03).

    Computed in float64 with pytorch-msssim's kernel (valid filtering, no padding). NaN
    for images smaller than the window.
    """
    peak = _check_range(data_range)
    ref, tst = _pair(reference, test)
    return _structural(ref, tst, peak, levels=1)[0]


def ms_ssim_levels(height: int, width: int) -> int:
    """Number of MS-SSIM scales an image supports (5 from 161 px on the short side)."""
    side = min(height, width)
    levels = 0
    while levels < len(MS_SSIM_WEIGHTS) and side > (WIN_SIZE - 1) * 2**levels:
        levels += 1
    return levels


def ms_ssim(reference: np.ndarray, test: np.ndarray, *, data_range: float) -> float:
    """Multi-scale SSIM (Wang et al. 2003), five scales, computed in float64.

    Notes
    -----
    The per-scale statistics come from pytorch-msssim (``pytorch_msssim.ssim._ssim``):
    Gaussian window, valid filtering, 2×2 average pooling with padding for odd sizes,
    ReLU on the contrast terms, weights (0.0448, 0.2856, 0.3001, 0.2363, 0.1333); for
    images of 161 px or more on the short side the result equals
    ``pytorch_msssim.ms_ssim``. Float64 matters: for 12- to 16-bit data the local
    variances ``E[x²] − E[x]²`` cancel catastrophically in float32.

    Smaller images cannot be downsampled four times with an 11-px window, so medbench
    uses the first ``L`` scales that fit (``L`` from :func:`ms_ssim_levels`) with their
    weights renormalized to sum to one. Fewer than 11 px returns NaN.
    """
    peak = _check_range(data_range)
    ref, tst = _pair(reference, test)
    return _structural(ref, tst, peak, levels=ms_ssim_levels(*ref.shape))[1]


def _structural(ref: np.ndarray, tst: np.ndarray, peak: float, levels: int) -> tuple[float, float]:
    """(SSIM, MS-SSIM over ``levels`` scales) in one pass: scale 1 gives both SSIM and the
    first contrast term, so the full-resolution filtering (most of the cost) runs once."""
    import torch.nn.functional as F
    from pytorch_msssim.ssim import _fspecial_gauss_1d, _ssim

    if min(ref.shape) < WIN_SIZE or levels == 0:
        return math.nan, math.nan
    device = metrics_device()
    x, y = _tensor(ref, device), _tensor(tst, device)
    win = _fspecial_gauss_1d(WIN_SIZE, WIN_SIGMA).repeat([1, 1, 1, 1])
    weights = np.asarray(MS_SSIM_WEIGHTS[:levels])
    if levels < len(MS_SSIM_WEIGHTS):  # the published five weights are used as they are
        weights = weights / weights.sum()
    terms, single = [], math.nan
    with torch.no_grad():
        for level in range(levels):
            ssim_val, cs = _ssim(x, y, data_range=peak, win=win, size_average=False)
            if level == 0:
                single = float(ssim_val)
            if level < levels - 1:
                terms.append(torch.relu(cs))
                padding = [s % 2 for s in x.shape[2:]]
                x = F.avg_pool2d(x, kernel_size=2, padding=padding)
                y = F.avg_pool2d(y, kernel_size=2, padding=padding)
        terms.append(torch.relu(ssim_val))
        stacked = torch.stack(terms, dim=0)
        w = torch.tensor(weights, dtype=stacked.dtype, device=stacked.device).view(-1, 1, 1)
        multi = float(torch.prod(stacked**w, dim=0).mean())
    return single, multi


def bits_per_pixel(n_bytes: int, height: int, width: int) -> float:
    """Rate in bits per pixel: ``8 * n_bytes / (height * width)``."""
    return 8.0 * n_bytes / (height * width)


def compression_ratio(n_bytes: int, height: int, width: int, bit_depth: int) -> float:
    """Native storage (``bit_depth`` bits per pixel) divided by the coded size."""
    if n_bytes <= 0:
        return math.inf
    return bit_depth * height * width / (8.0 * n_bytes)


def measure(reference: np.ndarray, decoded: np.ndarray, n_bytes: int, bit_depth: int) -> dict:
    """Every per-image metric of one coded image, as result-row columns."""
    peak = float((1 << bit_depth) - 1)
    h, w = reference.shape
    ref, dec = _pair(reference, decoded)
    structural = _structural(ref, dec, peak, ms_ssim_levels(h, w))
    return {
        "bytes": int(n_bytes),
        "bpp": bits_per_pixel(n_bytes, h, w),
        "ratio": compression_ratio(n_bytes, h, w, bit_depth),
        "mse": mse(reference, decoded),
        "psnr": psnr(reference, decoded, data_range=peak),
        "ssim": structural[0],
        "ms_ssim": structural[1],
        "max_abs_error": max_abs_error(reference, decoded),
        "lossless_exact": bool(np.array_equal(reference, decoded)),
    }
