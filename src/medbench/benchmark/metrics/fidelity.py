"""Fidelity: the error on the native pixel scale (MSE, PSNR, largest error) and the rate.

PSNR is computed here and nowhere else (``tests/test_architecture.py`` checks it): its
peak is ``data_range``, ``2**bit_depth - 1`` of the image as coded, never guessed from the
array's dtype (a 12-bit radiograph in ``uint16`` has a peak of 4095, not 65535).
"""

from __future__ import annotations

import math

import numpy as np

from medbench.benchmark.metrics._inputs import check_range, check_shapes


def errors(reference: np.ndarray, test: np.ndarray) -> tuple[float, float]:
    """(sum of squared differences, largest absolute difference) in one pass.

    Integer images are differenced in int32 and squared-summed in int64, which is exact
    (16-bit differences squared over 2**31 pixels still fit), and cheaper than two float64
    copies of each image; other dtypes go through float64.
    """
    check_shapes(reference, test)
    if reference.size == 0:
        return 0.0, 0.0
    both_int = reference.dtype.kind in "ui" and test.dtype.kind in "ui"
    if both_int and max(reference.itemsize, test.itemsize) <= 2:
        diff = np.subtract(reference, test, dtype=np.int32).ravel()
        squares = int(np.einsum("i,i->", diff, diff, dtype=np.int64))
        return float(squares), float(np.abs(diff).max())
    diff = np.subtract(reference, test, dtype=np.float64).ravel()
    return float(np.dot(diff, diff)), float(np.abs(diff).max())


def mse(reference: np.ndarray, test: np.ndarray) -> float:
    """Mean squared error on the native pixel scale."""
    squares, _ = errors(reference, test)
    return squares / reference.size if reference.size else 0.0


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
    peak = check_range(peak)
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
    return int(errors(reference, test)[1])


def bits_per_pixel(n_bytes: int, height: int, width: int) -> float:
    """Rate in bits per pixel: ``8 * n_bytes / (height * width)``."""
    return 8.0 * n_bytes / (height * width)


def compression_ratio(n_bytes: int, height: int, width: int, bit_depth: int) -> float:
    """Native storage (``bit_depth`` bits per pixel) divided by the coded size."""
    if n_bytes <= 0:
        return math.inf
    return bit_depth * height * width / (8.0 * n_bytes)
