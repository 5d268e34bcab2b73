"""Structural similarity: SSIM and MS-SSIM in float64, and the :class:`Reference` cache.

SSIM and MS-SSIM run on the GPU when there is one (pytorch-msssim's float64 convolutions),
else on medbench's threaded separable filtering (:func:`metrics_device`); the two agree
to ~1e-12. A :class:`Reference` keeps an original's per-scale statistics (and those of
the other metric families, :meth:`Reference.cached`) for every cell of one image.

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
import os
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy.ndimage import correlate1d

from medbench.benchmark.metrics._inputs import as_float, check_pair, check_range

if TYPE_CHECKING:  # torch is imported where the GPU path needs it: a cheap module import
    import torch

#: Scale weights of Wang et al. 2003 (five scales), as in pytorch-msssim.
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
WIN_SIZE = 11
WIN_SIGMA = 1.5


def metrics_device() -> torch.device:
    """Where SSIM/MS-SSIM are computed: the GPU when there is one, else the CPU.

    The GPU runs pytorch-msssim's float64 convolutions (milliseconds at 2048²), the CPU
    medbench's own separable filtering on threads (a fraction of a second); the results
    agree to ~1e-12. ``MEDBENCH_METRICS_DEVICE=cpu`` (or ``cuda``) overrides the choice.
    """
    choice = os.environ.get("MEDBENCH_METRICS_DEVICE", "auto").lower()
    import torch

    if choice == "cpu" or (choice == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    return torch.device("cuda")


def _tensor(a: np.ndarray, device: torch.device | None = None) -> torch.Tensor:
    import torch

    return torch.from_numpy(a).reshape(1, 1, *a.shape).to(device or "cpu")


def ssim(reference: np.ndarray, test: np.ndarray, *, data_range: float) -> float:
    """Single-scale SSIM (Wang et al. 2004): 11×11 Gaussian window, σ = 1.5, K = (0.01, 0.03).

    Computed in float64 with pytorch-msssim's window (valid filtering, no padding); equals
    ``pytorch_msssim.ssim``. NaN for images smaller than the window.
    """
    peak = check_range(data_range)
    ref, tst = check_pair(reference, test)
    return ssim_ms_ssim(ref, tst, peak, levels=1)[0]


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
    The per-scale statistics are those of pytorch-msssim (``pytorch_msssim.ssim._ssim``,
    computed by medbench on the CPU, by pytorch-msssim on a GPU): its float32 Gaussian
    window, valid filtering, 2×2 average pooling with padding for odd sizes,
    ReLU on the contrast terms, weights (0.0448, 0.2856, 0.3001, 0.2363, 0.1333); for
    images of 161 px or more on the short side the result equals
    ``pytorch_msssim.ms_ssim``. Float64 matters: for 12- to 16-bit data the local
    variances ``E[x²] − E[x]²`` cancel catastrophically in float32.

    Smaller images cannot be downsampled four times with an 11-px window, so medbench
    uses the first ``L`` scales that fit (``L`` from :func:`ms_ssim_levels`) with their
    weights renormalized to sum to one. Fewer than 11 px returns NaN.
    """
    peak = check_range(data_range)
    ref, tst = check_pair(reference, test)
    return ssim_ms_ssim(ref, tst, peak, levels=ms_ssim_levels(*ref.shape))[1]


def ssim_ms_ssim(ref: np.ndarray, tst: np.ndarray, peak: float, levels: int,
                reference: Reference | None = None) -> tuple[float, float]:
    """(SSIM, MS-SSIM over ``levels`` scales) in one pass: scale 1 gives both SSIM and the
    first contrast term, so the full-resolution filtering (most of the cost) runs once."""
    if min(ref.shape) < WIN_SIZE or levels == 0:
        return math.nan, math.nan
    device = metrics_device()
    if device.type == "cpu":
        return _structural_numpy(ref, tst, peak, levels, reference)
    return _structural_torch(ref, tst, peak, levels, device)


def _weights(levels: int) -> np.ndarray:
    weights = np.asarray(MS_SSIM_WEIGHTS[:levels])
    if levels < len(MS_SSIM_WEIGHTS):  # the published five weights are used as they are
        weights = weights / weights.sum()
    return weights


def _structural_torch(
    ref: np.ndarray, tst: np.ndarray, peak: float, levels: int, device: torch.device
) -> tuple[float, float]:
    """:func:`ssim_ms_ssim` with pytorch-msssim's float64 convolutions on ``device`` (the
    GPU path; on the CPU it is the reference the NumPy path is tested against)."""
    import torch
    import torch.nn.functional as F
    from pytorch_msssim.ssim import _fspecial_gauss_1d, _ssim

    x, y = _tensor(ref, device), _tensor(tst, device)
    win = _fspecial_gauss_1d(WIN_SIZE, WIN_SIGMA).repeat([1, 1, 1, 1])
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
        w = torch.tensor(_weights(levels), dtype=stacked.dtype, device=stacked.device)
        multi = float(torch.prod(stacked ** w.view(-1, 1, 1), dim=0).mean())
    return single, multi


# -- the CPU path: separable float64 filtering in horizontal bands, on threads ---------
#: Output rows per band: a band's five filtered maps stay in cache while they are combined.
BAND_ROWS = 64


@lru_cache(maxsize=1)
def _window() -> np.ndarray:
    """pytorch-msssim's float32 Gaussian window, widened to float64 as its ``_ssim`` does.

    The float32 values are part of the definition: they sum to 1 − 3e-8, and the local
    variances ``E[x²] − E[x]²`` of 16-bit data are sensitive to that at the 1e-4 level.
    """
    from pytorch_msssim.ssim import _fspecial_gauss_1d

    return _fspecial_gauss_1d(WIN_SIZE, WIN_SIGMA).double().numpy().ravel()


def _threads() -> int:
    """Threads for the band filtering: the cores this process may use, capped by
    ``OMP_NUM_THREADS`` where set (medbench's worker processes set it to their share)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        cores = os.cpu_count() or 1
    cap = os.environ.get("OMP_NUM_THREADS", "")
    if cap.isdigit() and int(cap) > 0:
        cores = min(cores, int(cap))
    return max(1, cores)


def _filter_valid(a: np.ndarray, rows: int) -> np.ndarray:
    """Gaussian filter of ``a`` without padding: ``rows`` × (width − 10) outputs.

    Vertical pass as shifted slices (the window is symmetric, so taps pair up), then
    :func:`scipy.ndimage.correlate1d` along the contiguous rows, keeping its valid part.
    """
    g, half = _window(), WIN_SIZE // 2
    out = a[half : half + rows] * g[half]
    pair = np.empty_like(out)
    for k in range(half):
        np.add(a[k : k + rows], a[WIN_SIZE - 1 - k : WIN_SIZE - 1 - k + rows], out=pair)
        pair *= g[k]
        out += pair
    return correlate1d(out, g, axis=1, mode="constant")[:, half:-half]


def _band_sums(
    x: np.ndarray, y: np.ndarray, r0: int, r1: int, c1: float, c2: float,
    ref_maps: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[float, float]:
    """Sums of the SSIM and contrast-structure maps over output rows ``r0:r1``.

    ``ref_maps``: the reference's filtered E[x] and E[x²] over all output rows of this
    scale (:class:`Reference`), read instead of filtered again.
    """
    ssim_map, cs_map = _band_maps(x, y, r0, r1, c1, c2, ref_maps)
    return float(ssim_map.sum()), float(cs_map.sum())


def _band_maps(
    x: np.ndarray, y: np.ndarray, r0: int, r1: int, c1: float, c2: float,
    ref_maps: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The SSIM and contrast-structure maps of output rows ``r0:r1`` (valid filtering).

    The statistics and their order of operations are pytorch-msssim's ``_ssim``; output
    ``(i, j)`` is the window whose top-left pixel is ``(r0 + i, j)``.
    """
    xs, ys, rows = x[r0 : r1 + WIN_SIZE - 1], y[r0 : r1 + WIN_SIZE - 1], r1 - r0
    if ref_maps is None:
        mu1, ex2 = _filter_valid(xs, rows), _filter_valid(xs * xs, rows)
    else:
        mu1, ex2 = ref_maps[0][r0:r1], ref_maps[1][r0:r1]
    mu2 = _filter_valid(ys, rows)
    mu1_sq, mu2_sq, mu1_mu2 = mu1 * mu1, mu2 * mu2, mu1 * mu2
    sigma1_sq = ex2 - mu1_sq
    sigma2_sq = _filter_valid(ys * ys, rows) - mu2_sq
    sigma12 = _filter_valid(xs * ys, rows) - mu1_mu2
    # cs = (2 σxy + C2) / (σx² + σy² + C2) and ssim = (2 μxμy + C1) / (μx² + μy² + C1) · cs,
    # in place (same operations, same order): no temporaries, about a third faster.
    cs_map = sigma12
    cs_map *= 2
    cs_map += c2
    sigma1_sq += sigma2_sq
    sigma1_sq += c2
    cs_map /= sigma1_sq
    ssim_map = mu1_mu2
    ssim_map *= 2
    ssim_map += c1
    mu1_sq += mu2_sq
    mu1_sq += c1
    ssim_map /= mu1_sq
    ssim_map *= cs_map
    return ssim_map, cs_map


def _bands(x: np.ndarray) -> list[tuple[int, int]]:
    height = x.shape[0] - WIN_SIZE + 1
    return [(r, min(r + BAND_ROWS, height)) for r in range(0, height, BAND_ROWS)]


def _ssim_cs(x: np.ndarray, y: np.ndarray, peak: float, pool,
             ref_maps: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[float, float]:
    """Mean SSIM and mean contrast-structure of one scale (``_ssim`` of pytorch-msssim)."""
    c1, c2 = (0.01 * peak) ** 2, (0.03 * peak) ** 2
    bands = _bands(x)
    if pool is None or len(bands) == 1:
        sums = [_band_sums(x, y, r0, r1, c1, c2, ref_maps) for r0, r1 in bands]
    else:
        sums = list(pool.map(lambda band: _band_sums(x, y, *band, c1, c2, ref_maps), bands))
    count = (x.shape[0] - WIN_SIZE + 1) * (x.shape[1] - WIN_SIZE + 1)
    return sum(s for s, _ in sums) / count, sum(c for _, c in sums) / count


def _filtered_maps(x: np.ndarray, pool) -> tuple[np.ndarray, np.ndarray]:
    """E[x] and E[x²] of one scale over every output row, filtered band by band exactly
    as :func:`_band_sums` does (so reading them gives bit-identical results)."""
    bands = _bands(x)
    width = x.shape[1] - WIN_SIZE + 1
    mu = np.empty((bands[-1][1], width))
    ex2 = np.empty_like(mu)

    def fill(band: tuple[int, int]) -> None:
        r0, r1 = band
        xs = x[r0 : r1 + WIN_SIZE - 1]
        mu[r0:r1] = _filter_valid(xs, r1 - r0)
        ex2[r0:r1] = _filter_valid(xs * xs, r1 - r0)

    if pool is None or len(bands) == 1:
        for band in bands:
            fill(band)
    else:
        list(pool.map(fill, bands))
    return mu, ex2


class Reference:
    """A reference image and, once computed, its per-scale SSIM statistics.

    Every cell of an image compares a different reconstruction with the *same* original,
    so the original's pooled scales and their filtered E[x] and E[x²] (two of the five
    filtered maps per scale) are computed once and reused: pass the same ``Reference`` to
    :func:`~medbench.benchmark.metrics.measure` for every cell. Results are bit-identical
    to computing them afresh. Other metric families keep their own per-image work in it
    through :meth:`cached`.

    Parameters
    ----------
    pixels
        The reference image (2-D, integer or float).
    """

    def __init__(self, pixels: np.ndarray):
        self.pixels = pixels
        self._scales: list[tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]] | None = None
        self._float: np.ndarray | None = None
        self._cache: dict[Hashable, Any] = {}

    def cached(self, key: Hashable, make: Callable[[], Any]) -> Any:
        """``make()``, computed once per ``key`` for this image (the perceptual metrics
        keep the original's side of their maps here, keyed by metric and data range)."""
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    def as_float(self) -> np.ndarray:
        """The pixels in float64 (converted once)."""
        if self._float is None:
            self._float = as_float(self.pixels)
        return self._float

    def scales(self, levels: int, pool) -> list[tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]]:
        """(pixels in float64, (E[x], E[x²])) for each of the first ``levels`` scales."""
        if self._scales is None or len(self._scales) < levels:
            out = []
            x = self.as_float()
            for level in range(levels):
                out.append((x, _filtered_maps(x, pool)))
                if level < levels - 1:
                    x = _pool2(x)
            self._scales = out
        return self._scales[:levels]


def _pool2(a: np.ndarray) -> np.ndarray:
    """``F.avg_pool2d(a, 2, padding=[h % 2, w % 2])``: an odd side gets one zero row or
    column on each side, and the zeros count in the mean (``count_include_pad``)."""
    ph, pw = a.shape[0] % 2, a.shape[1] % 2
    if ph or pw:
        a = np.pad(a, ((ph, ph), (pw, pw)))
    a = a[: a.shape[0] // 2 * 2, : a.shape[1] // 2 * 2]
    return (a[0::2, 0::2] + a[0::2, 1::2] + a[1::2, 0::2] + a[1::2, 1::2]) * 0.25


def _structural_numpy(
    ref: np.ndarray, tst: np.ndarray, peak: float, levels: int,
    reference: Reference | None = None,
) -> tuple[float, float]:
    """:func:`ssim_ms_ssim` on the CPU: the same definition as :func:`_structural_torch`
    (agreement ~1e-13), several times faster, its bands spread over threads
    (SciPy and NumPy release the GIL). ``reference``: reuse the original's statistics."""
    threads = _threads()
    big = threads > 1 and ref.shape[0] > 2 * BAND_ROWS
    pool = ThreadPoolExecutor(threads) if big else None
    try:
        scales = reference.scales(levels, pool) if reference is not None else None
        terms, single, ssim_val = [], math.nan, math.nan
        x, y = ref, tst
        for level in range(levels):
            if scales is not None:
                x = scales[level][0]
            ssim_val, cs = _ssim_cs(x, y, peak, pool, scales[level][1] if scales else None)
            if level == 0:
                single = ssim_val
            if level < levels - 1:
                terms.append(max(cs, 0.0))
                x, y = (x if scales else _pool2(x)), _pool2(y)
        terms.append(max(ssim_val, 0.0))
    finally:
        if pool is not None:
            pool.shutdown()
    multi = float(np.prod(np.asarray(terms) ** _weights(levels)))
    return float(single), multi




def region_ssim(reference: np.ndarray, test: np.ndarray, mask: np.ndarray, peak: float,
                exact: bool = False) -> float:
    """The mean of the SSIM map over the pixels of ``mask`` that have an SSIM value.

    A map value belongs to the pixel at the centre of its window: output ``(i, j)`` of
    the valid map is pixel ``(i + 5, j + 5)``; mask pixels closer than 5 px to the border
    have no window inside the image and are left out (NaN when no pixel is left). Only
    the mask's bounding box plus a 5-px margin is filtered: each map value depends only on
    its own window, so the values equal the whole-image map's there. ``exact``: the two
    images are equal inside that box's windows, so every SSIM term is exactly 1.
    """
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    half = WIN_SIZE // 2
    h, w = mask.shape
    top, bottom = max(int(rows[0]) - half, 0), min(int(rows[-1]) + half + 1, h)
    left, right = max(int(cols[0]) - half, 0), min(int(cols[-1]) + half + 1, w)
    inside = mask[top + half : bottom - half, left + half : right - half]
    if bottom - top < WIN_SIZE or right - left < WIN_SIZE or not inside.any():
        return math.nan
    if exact:
        return 1.0
    x = reference[top:bottom, left:right].astype(np.float64)
    y = test[top:bottom, left:right].astype(np.float64)
    c1, c2 = (0.01 * peak) ** 2, (0.03 * peak) ** 2
    ssim_map, _ = _band_maps(x, y, 0, x.shape[0] - WIN_SIZE + 1, c1, c2)
    return float(ssim_map[inside].mean())
