"""Simulated lung nodules: a projected sphere, sampled on the pixel grid and added to an image.

A nodule of diameter ``D`` (mm) is a sphere of uniform attenuation; its projection onto
the detector is a thickness ``t(r) ∝ sqrt(1 - (r/R)²)`` for ``r < R = D/2`` and 0 beyond.
In a processed radiograph the grey level is close to linear in log exposure, so a small
attenuating object *adds* a grey-level profile proportional to that thickness (the
small-signal approximation of the hybrid-image method used to insert simulated lesions
into real radiographs). In MONOCHROME2 more attenuation is brighter, so the profile is
added:

    s(r) = A · sqrt(1 - (r/R)²),   A = contrast · (2**bit_depth - 1)

**Contrast** is the peak of the added profile (before blur and pixel integration) as a
fraction of the image's nominal peak ``2**bit_depth - 1``, the same peak PSNR uses;
``contrast=0.02`` on an 8-bit image adds up to 5.1 grey levels at the nodule's centre.

The profile is optionally blurred by a Gaussian of standard deviation ``blur_mm`` (the
unsharpness of a real imaging chain: focal spot, detector, scatter), then integrated over
each pixel's area (supersampled :data:`OVERSAMPLE`² per pixel), so a nodule of two or three
pixels across keeps its energy and no aliasing shape. The stamp is centred on a pixel
centre.

Adding it to an integer image rounds to the image's grey levels (the codec receives
integers). A site where the rounded sum would exceed the peak is **not** clipped: it is
refused (:class:`Insertion` names it and why), because clipping would change the signal
the observers' templates assume.

References
----------
Samei E, Flynn MJ, Eyler WR. Detection of subtle lung nodules: relative influence of
quantum and anatomic noise on chest radiographs. Radiology 1999;213(3):727–734.
doi:10.1148/radiology.213.3.r99dc19727 (simulated nodules of a sphere's projected
profile added to real chest radiographs).
Barrett HH, Myers KJ. *Foundations of Image Science*. Wiley, 2004, §13.2 (signal-known-
exactly tasks on real backgrounds).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: Subsamples per pixel side used to integrate the profile over each pixel's area.
OVERSAMPLE = 8
#: Default blur (Gaussian standard deviation, mm): the order of a chest unit's focal-spot
#: and detector unsharpness at the detector plane.
DEFAULT_BLUR_MM = 0.5
#: A nodule narrower than this many pixels is refused: sampled by a handful of pixels, its
#: size in mm no longer describes what the image holds.
MIN_DIAMETER_PX = 2.0


@dataclass(frozen=True)
class Spacing:
    """Pixel spacing of the image the codecs receive, in mm, and where it comes from."""

    row_mm: float
    col_mm: float
    source: str

    @property
    def area_mm2(self) -> float:
        """The area of one pixel (mm²)."""
        return self.row_mm * self.col_mm

    def describe(self) -> str:
        if math.isclose(self.row_mm, self.col_mm, rel_tol=1e-9):
            size = f"{self.row_mm:.4g} mm"
        else:
            size = f"{self.row_mm:.4g} x {self.col_mm:.4g} mm (rows x columns)"
        return f"{size} per pixel ({self.source})"


def stamp(diameter_mm: float, amplitude: float, spacing: Spacing,
          blur_mm: float = DEFAULT_BLUR_MM, oversample: int = OVERSAMPLE) -> np.ndarray:
    """The nodule's added grey levels on the pixel grid, centred on the middle pixel.

    Parameters
    ----------
    diameter_mm
        Sphere diameter ``D`` (mm), > 0.
    amplitude
        Peak of the continuous profile ``A`` in grey levels (``contrast · peak``).
    spacing
        Pixel spacing of the image the nodule is added to.
    blur_mm
        Standard deviation of the Gaussian blur (mm); 0 for none.
    oversample
        Subsamples per pixel side for the area integration.

    Returns
    -------
    numpy.ndarray
        ``(2h+1, 2k+1)`` float64 array: the mean of the blurred profile over each pixel,
        with ``h``, ``k`` large enough to hold the disc and three blur deviations.

    Notes
    -----
    The profile is ``A·sqrt(1 - (r/R)²)`` (the chord length through a sphere, scaled so
    its peak is ``A``); its integral is ``(2/3)·π·R²·A``, which the pixel sum times the
    pixel area reproduces to within the supersampling error.
    """
    if not (diameter_mm > 0 and math.isfinite(diameter_mm)):
        raise ValueError(f"nodule diameter must be a positive number of mm, got {diameter_mm}")
    if blur_mm < 0:
        raise ValueError(f"blur must be >= 0 mm, got {blur_mm}")
    radius = diameter_mm / 2
    extent = radius + 3 * blur_mm
    half_r = int(math.ceil(extent / spacing.row_mm)) + 1
    half_c = int(math.ceil(extent / spacing.col_mm)) + 1
    offsets = (np.arange(oversample, dtype=np.float64) + 0.5) / oversample - 0.5
    ys = (np.arange(-half_r, half_r + 1, dtype=np.float64)[:, None] + offsets[None, :]).ravel()
    xs = (np.arange(-half_c, half_c + 1, dtype=np.float64)[:, None] + offsets[None, :]).ravel()
    r2 = (ys[:, None] * spacing.row_mm) ** 2 + (xs[None, :] * spacing.col_mm) ** 2
    fine = amplitude * np.sqrt(np.clip(1.0 - r2 / radius**2, 0.0, None))
    if blur_mm > 0:
        from scipy.ndimage import gaussian_filter

        sigma = (blur_mm / spacing.row_mm * oversample, blur_mm / spacing.col_mm * oversample)
        fine = gaussian_filter(fine, sigma, mode="constant", truncate=4.0)
    rows, cols = 2 * half_r + 1, 2 * half_c + 1
    return fine.reshape(rows, oversample, cols, oversample).mean(axis=(1, 3))


def diameter_px(diameter_mm: float, spacing: Spacing) -> float:
    """The nodule's diameter in pixels along the coarser axis."""
    return diameter_mm / max(spacing.row_mm, spacing.col_mm)


def place(canvas: np.ndarray, patch: np.ndarray, row: int, col: int) -> tuple[slice, slice]:
    """The slices of ``canvas`` that a ``patch`` centred on ``(row, col)`` covers.

    Raises ``ValueError`` when the patch would leave the canvas (sites are chosen so it
    never does).
    """
    hr, hc = patch.shape[0] // 2, patch.shape[1] // 2
    top, left = row - hr, col - hc
    if top < 0 or left < 0 or top + patch.shape[0] > canvas.shape[0] \
            or left + patch.shape[1] > canvas.shape[1]:
        raise ValueError(f"a {patch.shape[1]}x{patch.shape[0]} patch at row {row}, column "
                         f"{col} leaves the {canvas.shape[1]}x{canvas.shape[0]} image")
    return slice(top, top + patch.shape[0]), slice(left, left + patch.shape[1])


@dataclass(frozen=True)
class Insertion:
    """The image with nodules added, and per site whether its nodule went in."""

    pixels: np.ndarray
    #: Per site: None when inserted, else why not (the site is then skipped).
    refused: tuple[str | None, ...]


def insert(pixels: np.ndarray, bit_depth: int, sites: Sequence[tuple[int, int]],
           stamps: Sequence[np.ndarray]) -> Insertion:
    """Add each ``stamps[i]`` centred on ``sites[i]``, rounded to integer grey levels.

    Parameters
    ----------
    pixels
        The prepared image (MONOCHROME2 integers).
    bit_depth
        Its bit depth; sums above ``2**bit_depth - 1`` are refused, never clipped.
    sites
        ``(row, col)`` centre of each nodule (a pixel centre); stamps must not overlap.
    stamps
        Each site's added grey levels (:func:`stamp`).

    Returns
    -------
    Insertion
        The new pixels (same dtype) and, per site, None or the reason it was refused
        (the pixels there are left as they were).
    """
    peak = (1 << bit_depth) - 1
    out = pixels.astype(np.float64)
    refused: list[str | None] = []
    for (row, col), added in zip(sites, stamps):
        rows, cols = place(out, added, row, col)
        summed = np.rint(out[rows, cols] + added)
        top = float(summed.max())
        if top > peak:
            over = int(np.count_nonzero(summed > peak))
            refused.append(f"the nodule would saturate the pixel range: {over} pixel(s) "
                           f"would reach {top:.0f} > peak {peak}; not inserted (never "
                           "clipped)")
            continue
        out[rows, cols] = summed
        refused.append(None)
    return Insertion(out.astype(pixels.dtype), tuple(refused))
