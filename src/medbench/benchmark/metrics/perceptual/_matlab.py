"""The published MATLAB codes' filtering conventions, in float64 NumPy/SciPy.

GMSD, HaarPSI and FSIM were published as MATLAB code; their values depend on three of
its conventions, which Python ports often change:

- ``conv2(a, k, 'same')`` is the *central* part of the full convolution, which for an
  even kernel of ``K`` taps starts at full-output index ``K // 2`` (``conv([1 2 3], [1 1],
  'same')`` is ``[3 5 3]``), with zeros outside the image (:func:`conv_same`);
- downsampling by ``F`` is ``conv2(a, ones(F)/F^2, 'same')`` sampled at ``1:F:end``: the
  mean of the ``F``×``F`` block whose first row is ``F·j − (F−1)//2``, zeros counted where
  the block passes the border (:func:`block_mean`);
- MATLAB's ``round`` takes halves away from zero (:func:`matlab_round`).

:func:`coverage` passes a region mask through the same averaging, so that a map value
made from a block of pixels counts with the fraction of that block inside the region.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy.ndimage import correlate1d


def conv_same(a: np.ndarray, kernel: Sequence[float], axis: int) -> np.ndarray:
    """MATLAB's ``conv2(a, k, 'same')`` with a 1-D kernel along ``axis`` (zeros outside)."""
    taps = np.asarray(kernel, dtype=np.float64)[::-1]  # convolution flips the kernel
    size = len(taps)
    origin = (size - 1) // 2 - size // 2  # -1 for an even kernel: MATLAB's central part
    return correlate1d(a, taps, axis=axis, mode="constant", cval=0.0, origin=origin)


def conv_same_2d(a: np.ndarray, along_rows: Sequence[float],
                 along_cols: Sequence[float]) -> np.ndarray:
    """``conv2(a, outer(along_rows, along_cols), 'same')`` as two 1-D passes."""
    return conv_same(conv_same(a, along_rows, 0), along_cols, 1)


def block_mean(a: np.ndarray, factor: int) -> np.ndarray:
    """``conv2(a, ones(F)/F^2, 'same')`` sampled at ``(1:F:end, 1:F:end)``.

    Output ``(i, j)`` is the mean of the ``F``×``F`` block starting at row
    ``F·i − (F−1)//2`` and column ``F·j − (F−1)//2``; pixels outside the image count as
    zero and the divisor is always ``F²``, as in MATLAB. The output has
    ``ceil(h/F)``×``ceil(w/F)`` pixels. ``F = 1`` returns ``a``.
    """
    if factor == 1:
        return a
    return _block_sum(a, factor) / float(factor * factor)


def _block_sum(a: np.ndarray, factor: int) -> np.ndarray:
    height, width = a.shape
    lead = (factor - 1) // 2
    rows, cols = -(-height // factor), -(-width // factor)
    padded = np.zeros((rows * factor, cols * factor))
    keep_h, keep_w = min(height, rows * factor - lead), min(width, cols * factor - lead)
    padded[lead : lead + keep_h, lead : lead + keep_w] = a[:keep_h, :keep_w]
    return padded.reshape(rows, factor, cols, factor).sum(axis=(1, 3))


def coverage(mask: np.ndarray, factor: int) -> np.ndarray:
    """The fraction of each :func:`block_mean` block's image pixels that lie in ``mask``.

    Blocks that pass the border are judged on their pixels inside the image, so a mask
    of the whole image gives exactly 1 everywhere.
    """
    region = mask.astype(np.float64)
    if factor == 1:
        return region
    inside = _block_sum(np.ones(mask.shape), factor)
    return _block_sum(region, factor) / inside


def matlab_round(x: float) -> int:
    """MATLAB's ``round``: halves away from zero (Python's ``round`` takes them to even)."""
    return int(math.floor(abs(x) + 0.5)) * (1 if x >= 0 else -1)


def weighted_std(values: np.ndarray, weights: np.ndarray | None) -> float:
    """Standard deviation with ``N − 1`` (MATLAB's ``std2``); with ``weights``, the
    frequency-weighted form ``Σw(v − μ)² / (Σw − 1)``, equal to it when every weight is 1.
    NaN when the weights sum to 1 or less."""
    if weights is None:
        return float(np.std(values, ddof=1)) if values.size > 1 else math.nan
    total = float(weights.sum())
    if total <= 1.0:
        return math.nan
    mean = float((weights * values).sum() / total)
    return math.sqrt(float((weights * (values - mean) ** 2).sum()) / (total - 1.0))
