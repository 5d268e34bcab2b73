"""Per-image distortion and rate metrics, split by idea; :func:`measure` makes a row's.

- :mod:`~medbench.benchmark.metrics.fidelity`: MSE, PSNR (computed there only), the
  largest error, and the rate (bpp, compression ratio);
- :mod:`~medbench.benchmark.metrics.structural`: SSIM and MS-SSIM in float64, and the
  per-image :class:`Reference` cache;

:func:`measure` is the one place a result row's metrics are made, and
:func:`region_metrics` measures a diagnostic region on the same pixels. Every public name
of the modules above is importable from here too (``medbench.benchmark.metrics.psnr``).

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

import numpy as np

from medbench.benchmark.metrics._inputs import as_float, check_range
from medbench.benchmark.metrics.fidelity import (
    bits_per_pixel,
    compression_ratio,
    errors,
    max_abs_error,
    mse,
    psnr,
    psnr_from_mse,
)
from medbench.benchmark.metrics.structural import (
    BAND_ROWS,
    MS_SSIM_WEIGHTS,
    WIN_SIGMA,
    WIN_SIZE,
    Reference,
    metrics_device,
    ms_ssim,
    ms_ssim_levels,
    region_ssim,
    ssim,
    ssim_ms_ssim,
)

__all__ = [
    "BAND_ROWS", "MS_SSIM_WEIGHTS", "WIN_SIGMA", "WIN_SIZE", "Reference", "bits_per_pixel",
    "compression_ratio", "max_abs_error", "measure", "metrics_device", "ms_ssim",
    "ms_ssim_levels", "mse", "psnr", "psnr_from_mse", "region_metrics", "ssim",
]


def measure(reference: np.ndarray | Reference, decoded: np.ndarray, n_bytes: int,
            bit_depth: int) -> dict:
    """Every per-image metric of one coded image, as result-row columns.

    Parameters
    ----------
    reference
        The image as the codec received it, or a :class:`Reference` wrapping it (reused
        across the cells of one image, it computes the original's statistics once).
    decoded
        The decoded pixels, same shape.
    n_bytes
        Length of the whole bitstream.
    bit_depth
        Bit depth of the image as coded: the peak is ``2**bit_depth - 1``.

    Returns
    -------
    dict
        ``bytes, bpp, ratio, mse, psnr, ssim, ms_ssim, max_abs_error, lossless_exact``.
        An exact decode has PSNR ``inf`` and SSIM = MS-SSIM = 1 (computed as such: for
        identical images every SSIM term is exactly 1).
    """
    wrapped = reference if isinstance(reference, Reference) else None
    reference = wrapped.pixels if wrapped is not None else reference
    peak = float((1 << bit_depth) - 1)
    h, w = reference.shape
    squares, largest = errors(reference, decoded)
    error = squares / reference.size
    if largest == 0 and min(h, w) >= WIN_SIZE:
        structural = (1.0, 1.0)
    else:
        ref = wrapped.as_float() if wrapped is not None else as_float(reference)
        structural = ssim_ms_ssim(ref, as_float(decoded), peak, ms_ssim_levels(h, w), wrapped)
    return {
        "bytes": int(n_bytes),
        "bpp": bits_per_pixel(n_bytes, h, w),
        "ratio": compression_ratio(n_bytes, h, w, bit_depth),
        "mse": error,
        "psnr": psnr_from_mse(error, peak),
        "ssim": structural[0],
        "ms_ssim": structural[1],
        "max_abs_error": int(largest),
        "lossless_exact": largest == 0,
    }


def region_metrics(reference: np.ndarray, test: np.ndarray, mask: np.ndarray, *,
                   data_range: float) -> dict:
    """Distortion inside a region of the image (a nodule, a lung field): PSNR, SSIM, max error.

    Parameters
    ----------
    reference, test : numpy.ndarray
        The image as the codec received it and as it decoded (2-D, same shape).
    mask : numpy.ndarray
        The region: a boolean array of the same shape, True inside.
    data_range : float
        The peak value, ``2**bit_depth - 1`` of the image (never guessed from the dtype).

    Returns
    -------
    dict
        ``roi_psnr``: PSNR of the mean squared error over the mask's pixels (``inf`` when
        they decoded exactly); ``roi_ssim``: the mean of the SSIM map over the mask's
        pixels that have an SSIM value (NaN when none has, see Notes);
        ``roi_max_abs_error``: the largest absolute difference inside the mask.

    Raises
    ------
    ValueError
        The three shapes differ, or the mask selects no pixel.

    Notes
    -----
    The SSIM map is the one :func:`ssim` averages over the whole image: float64, the
    same Gaussian window (11×11, σ = 1.5, pytorch-msssim's float32 values), the same
    constants (K = 0.01, 0.03) and valid filtering. A map value belongs to the pixel at
    the centre of its window: output ``(i, j)`` of the valid map is pixel
    ``(i + 5, j + 5)``. Mask pixels closer than 5 px to the image border have no window
    inside the image and are left out of ``roi_ssim`` (not of PSNR or max error).

    Only the mask's bounding box plus a 5-px margin is filtered: each map value depends
    only on its own window, so the values equal the whole-image map's there, and a
    nodule costs a few thousand pixels instead of the whole film. This always runs on
    the CPU (it is small).
    """
    peak = check_range(data_range)
    mask = _check_mask(reference, test, mask)
    squares, largest = errors(reference[mask], test[mask])
    count = int(np.count_nonzero(mask))
    return {
        "roi_psnr": psnr_from_mse(squares / count, peak),
        "roi_ssim": region_ssim(reference, test, mask, peak, exact=largest == 0),
        "roi_max_abs_error": int(largest),
    }


def _check_mask(reference: np.ndarray, test: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``mask`` as booleans; ``ValueError`` when shapes differ or it selects nothing."""
    mask = np.asarray(mask)
    if not reference.shape == test.shape == mask.shape:
        raise ValueError(f"reference shape {reference.shape}, test shape {test.shape} and "
                         f"mask shape {mask.shape} differ")
    mask = mask.astype(bool, copy=False)
    if not mask.any():
        raise ValueError(f"the mask of shape {mask.shape} selects no pixel")
    return mask
