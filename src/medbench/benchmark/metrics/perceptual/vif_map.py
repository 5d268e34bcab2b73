"""VIFp: visual information fidelity in the pixel domain, on four scales.

References
----------
H. R. Sheikh, A. C. Bovik, "Image information and visual quality", IEEE Transactions on
Image Processing 15(2):430-444, 2006, doi:10.1109/TIP.2005.859378.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.ndimage import correlate1d

from medbench.benchmark.metrics.structural import _threads

#: Variance of the visual noise of the published code, on the 0-255 scale.
SIGMA_NSQ = 2.0
#: The published code's guard against division by zero and its variance floor.
EPS = 1e-10
SCALES = 4
#: Smallest side with four scales: scale s filters 'valid' with its window (17, 9, 5, 3
#: taps) and scales 2-4 first prefilter and subsample by 2, so a side of 41 leaves 41,
#: 17, 7 and 3 px; 40 would leave 2 px for the 3-tap window of scale 4.
MIN_SIDE = 41


@lru_cache(maxsize=SCALES)
def window(scale: int) -> np.ndarray:
    """The 1-D factor of ``fspecial('gaussian', N, N/5)``, ``N = 2^(5-scale) + 1``.

    The 2-D window is the outer product with itself: MATLAB's ``fspecial`` normalizes the
    2-D sum, which equals normalizing each factor; its zeroing below ``eps·max`` touches
    none of these windows (their smallest corner is 0.06 of the peak).
    """
    size = 2 ** (SCALES - scale + 1) + 1
    x = np.arange(size, dtype=np.float64) - size // 2
    g = np.exp(-(x * x) / (2.0 * (size / 5.0) ** 2))
    return g / g.sum()


def _valid(a: np.ndarray, g: np.ndarray) -> np.ndarray:
    """``filter2(outer(g, g), a, 'valid')``.

    The vertical pass adds shifted row slices, pairing the symmetric taps (contiguous
    memory, about three times faster than filtering along axis 0); the horizontal pass
    is :func:`scipy.ndimage.correlate1d`, keeping its valid part.
    """
    size, half = len(g), len(g) // 2
    rows = a.shape[0] - size + 1
    out = a[half : half + rows] * g[half]
    pair = np.empty_like(out)
    for k in range(half):
        np.add(a[k : k + rows], a[size - 1 - k : size - 1 - k + rows], out=pair)
        pair *= g[k]
        out += pair
    return correlate1d(out, g, axis=1, mode="constant")[:, half:-half]


def _filtered(g: np.ndarray, *images: np.ndarray) -> list[np.ndarray]:
    """:func:`_valid` of each image, on threads when they are large and cores allow
    (NumPy and SciPy release the GIL; the values are the same either way)."""
    workers = min(len(images), _threads())
    if workers < 2 or images[0].size < 1 << 18:
        return [_valid(a, g) for a in images]
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(lambda a: _valid(a, g), images))


@dataclass(frozen=True)
class Side:
    """The original at each scale, with its local mean and E[x²] there."""

    scales: tuple[tuple[np.ndarray, np.ndarray, np.ndarray], ...]


def prepare(x255: np.ndarray) -> Side | None:
    """The original's side, from its pixels on the 0-255 scale (None: under 41 px)."""
    if min(x255.shape) < MIN_SIDE:
        return None
    out, x = [], x255
    for scale in range(1, SCALES + 1):
        g = window(scale)
        if scale > 1:
            x = _valid(x, g)[::2, ::2]
        out.append((x, *_filtered(g, x, x * x)))
    return Side(tuple(out))


def compare(side: Side | None, y255: np.ndarray,
            mask: np.ndarray | None) -> tuple[float, float | None]:
    """(VIFp of the whole image, VIFp inside ``mask`` or None); NaN under 41 px."""
    if side is None:
        return math.nan, None if mask is None else math.nan
    y = y255
    share = None if mask is None else mask.astype(np.float64)
    num = den = region_num = region_den = 0.0
    for scale, (x, mu1, ex2) in enumerate(side.scales, start=1):
        g = window(scale)
        if scale > 1:
            y = _valid(y, g)[::2, ::2]
            if share is not None:  # the mask through the same filter, as a fraction
                share = _valid(share, g)[::2, ::2] / _valid(np.ones(share.shape), g)[::2, ::2]
        mu2, ey2, exy = _filtered(g, y, y * y, x * y)
        sigma1_sq = ex2 - mu1 * mu1
        sigma2_sq = ey2 - mu2 * mu2
        sigma12 = exy - mu1 * mu2
        n, d = _terms(sigma1_sq, sigma2_sq, sigma12)
        num += float(n.sum())
        den += float(d.sum())
        if share is not None:
            half = len(g) // 2  # a map value belongs to the pixel at its window's centre
            weight = share[half:-half, half:-half]
            region_num += float((n * weight).sum())
            region_den += float((d * weight).sum())
    whole = num / den if den > 0 else math.nan
    if share is None:
        return whole, None
    return whole, region_num / region_den if region_den > 0 else math.nan


def _terms(sigma1_sq: np.ndarray, sigma2_sq: np.ndarray,
           sigma12: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The numerator and denominator maps of one scale, exactly as ``vifp_mscale.m``."""
    sigma1_sq[sigma1_sq < 0] = 0
    sigma2_sq[sigma2_sq < 0] = 0
    g = sigma12 / (sigma1_sq + EPS)
    sv_sq = sigma2_sq - g * sigma12
    low1 = sigma1_sq < EPS
    g[low1] = 0
    sv_sq[low1] = sigma2_sq[low1]
    sigma1_sq[low1] = 0
    low2 = sigma2_sq < EPS
    g[low2] = 0
    sv_sq[low2] = 0
    negative = g < 0
    sv_sq[negative] = sigma2_sq[negative]
    g[negative] = 0
    sv_sq[sv_sq <= EPS] = EPS
    num = np.log10(1.0 + g * g * sigma1_sq / (sv_sq + SIGMA_NSQ))
    den = np.log10(1.0 + sigma1_sq / SIGMA_NSQ)
    return num, den
