"""Per-image distortion and rate metrics, split by idea; :func:`measure` makes a row's.

- :mod:`~medbench.benchmark.metrics.fidelity`: MSE, PSNR (computed there only), the
  largest error, and the rate (bpp, compression ratio);
- :mod:`~medbench.benchmark.metrics.structural`: SSIM and MS-SSIM in float64, and the
  per-image :class:`Reference` cache;
- :mod:`~medbench.benchmark.metrics.perceptual`: VIFp, GMSD, HaarPSI and FSIM, the
  full-reference metrics radiologists' scores track (``run --metrics``);
- :mod:`~medbench.benchmark.metrics.display`: VOI windows, and the scores of the
  windowed images (``run --display``).

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

from collections.abc import Collection
from dataclasses import dataclass

import numpy as np

from medbench.benchmark.metrics._inputs import as_float, check_range
from medbench.benchmark.metrics.display import DisplayReference
from medbench.benchmark.metrics.fidelity import (
    bits_per_pixel,
    compression_ratio,
    errors,
    max_abs_error,
    mse,
    psnr,
    psnr_from_mse,
)
from medbench.benchmark.metrics.perceptual import (
    NAMES as PERCEPTUAL,
)
from medbench.benchmark.metrics.perceptual import (
    fsim,
    gmsd,
    haarpsi,
    perceptual_metrics,
    vifp,
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
from medbench.errors import MedbenchError

__all__ = [
    "AUTO_MAX_PIXELS", "BAND_ROWS", "METRIC_CHOICES", "MS_SSIM_WEIGHTS", "PERCEPTUAL",
    "WIN_SIGMA", "WIN_SIZE", "DisplayReference", "Reference", "Scoring", "bits_per_pixel",
    "compression_ratio", "fsim", "gmsd", "haarpsi", "max_abs_error", "measure",
    "metrics_device", "ms_ssim", "ms_ssim_levels", "mse", "parse_metrics",
    "perceptual_for", "perceptual_metrics", "psnr", "psnr_from_mse", "region_metrics",
    "ssim", "vifp",
]

#: ``run --metrics`` words; a comma-separated list of :data:`PERCEPTUAL` names also works.
METRIC_CHOICES = ("auto", "basic", "all")
#: ``--metrics auto``: the perceptual metrics on images of at most 256×256 pixels (the
#: paper protocol); above it they roughly double the time of the metrics (README).
AUTO_MAX_PIXELS = 256 * 256


def parse_metrics(text: str) -> str:
    """``run --metrics`` checked and written canonically.

    ``auto`` (the perceptual metrics on images of at most :data:`AUTO_MAX_PIXELS`
    pixels), ``basic`` (none), ``all`` (the four at every size), or a comma-separated list
    of :data:`PERCEPTUAL` names (those, at every size). PSNR, SSIM and MS-SSIM are always
    computed. Raises :class:`~medbench.errors.MedbenchError` naming the known choices.
    """
    words = [w.strip().lower() for w in str(text).split(",") if w.strip()]
    if len(words) == 1 and words[0] in METRIC_CHOICES:
        return words[0]
    unknown = [w for w in words if w not in PERCEPTUAL]
    if not words or unknown:
        raise MedbenchError(f"--metrics {text!r}: unknown {', '.join(unknown) or 'choice'}; "
                            f"use {'|'.join(METRIC_CHOICES)} or a list of "
                            f"{', '.join(PERCEPTUAL)}")
    return ",".join(name for name in PERCEPTUAL if name in words)


def perceptual_for(choice: str, height: int, width: int) -> tuple[str, ...]:
    """The perceptual metrics ``--metrics choice`` computes on an image of this size."""
    if choice == "basic":
        return ()
    if choice == "auto":
        return PERCEPTUAL if height * width <= AUTO_MAX_PIXELS else ()
    if choice == "all":
        return PERCEPTUAL
    return tuple(name for name in PERCEPTUAL if name in choice.split(","))


def measure(reference: np.ndarray | Reference, decoded: np.ndarray, n_bytes: int,
            bit_depth: int, *, perceptual: Collection[str] = (),
            region: np.ndarray | None = None,
            display: DisplayReference | None = None) -> dict:
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
    perceptual
        Which of :data:`PERCEPTUAL` (``vif, gmsd, haarpsi, fsim``) to compute, at the
        same peak (:func:`perceptual_for` decides per image for ``run --metrics``).
    region
        The image's diagnostic region (a boolean mask), or None: its ``roi_*`` metrics
        (:func:`region_metrics`, and ``roi_<metric>`` of the perceptual ones, pooled from
        the same maps).
    display
        The image's display window and windowed original (``run --display``), or None:
        its ``display_*`` metrics at data range 255.

    Returns
    -------
    dict
        ``bytes, bpp, ratio, mse, psnr, ssim, ms_ssim, max_abs_error, lossless_exact``,
        then the perceptual, region and display columns asked for (a metric not asked
        for has no key: its column stays empty). An exact decode has PSNR ``inf``,
        SSIM = MS-SSIM = 1 and each perceptual metric its identical value (VIFp 1,
        GMSD 0, HaarPSI 1, FSIM 1), whole, in the region and on display.
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
    row = {
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
    if region is not None:
        row.update(region_metrics(reference, decoded, region, data_range=peak))
    if perceptual:
        row.update(perceptual_metrics(wrapped or reference, decoded, data_range=peak,
                                      names=perceptual, mask=region))
    if display is not None:
        row.update(display.measure(decoded, perceptual))
    return row


@dataclass(frozen=True)
class Scoring:
    """What every cell of one image is measured with (:func:`measure`'s arguments).

    ``reference`` caches the original's statistics; ``region`` is its diagnostic mask
    (or None); ``perceptual`` the perceptual metrics computed for it; ``display`` its
    display window and windowed original (or None).
    """

    reference: Reference
    region: np.ndarray | None = None
    perceptual: tuple[str, ...] = ()
    display: DisplayReference | None = None

    def measure(self, decoded: np.ndarray, n_bytes: int, bit_depth: int) -> dict:
        """:func:`measure` of one decode of this image."""
        return measure(self.reference, decoded, n_bytes, bit_depth,
                       perceptual=self.perceptual, region=self.region, display=self.display)


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
