"""The observers' fixed parts: Laguerre–Gauss channels (CHO) and the NPWE template.

Both act on a square-ish region of interest (ROI) of ``(2h+1) × (2k+1)`` pixels centred on
a site; both are defined in mm, so they mean the same on images of different spacing.

**Laguerre–Gauss channels.** Channel ``j`` (``j = 0 … J-1``) of width ``a`` (mm) is

    u_j(r) = (√2 / a) · exp(-π r² / a²) · L_j(2π r² / a²)

with ``L_j`` the Laguerre polynomial; the ``u_j`` are orthonormal over the plane and
rotationally symmetric, which suits a rotationally symmetric signal at a known place.
A channel response is the inner product ``v_j = ∫ u_j(r) g(r) d²r``, here the pixel sum of
``u_j`` (averaged over each pixel's area, as the nodule is) times the pixel area in mm².
The width is **matched to the nodule**: :func:`matched_width` takes ``a`` equal to the
nodule's radius, whose ``J`` channels capture more than :data:`CAPTURED` (99 %) of the
nodule stamp's energy, so that on white noise the CHO reaches at least ``sqrt(0.99)`` of
the ideal observer's d' (see :mod:`~medbench.benchmark.observers.detectability`), and
reach about two radii into the surround, where the ROI ends.

**NPWE.** The non-prewhitening observer with an eye filter compares the eye-filtered image
with the eye-filtered expected signal; its template in the frequency domain is
``W(f) = E(f)² · S(f)`` (Burgess 1994), with the eye filter

    E(f) = f^n · exp(-c f²),   f in cycles per degree of visual angle,

``n = 1.3`` and ``c = n / (2 f_peak²)`` so that ``E`` peaks at ``f_peak = 4`` cycles/degree
(Burgess 1994; Eckstein et al. 2000). **Viewing assumption:** the radiograph is shown at
life size (1 mm of the patient's film is 1 mm on the display, as a chest film on a light
box or a full-screen chest on a 3 MP monitor) and viewed from :data:`VIEWING_MM` = 500 mm,
so ``f_deg = f_mm · VIEWING_MM · π/180``. No internal noise is added: this NPWE is the
model's noise-free form, an upper bound on a human reader's d'. With ``eye=None`` the
template is the signal itself: the non-prewhitening matched filter (NPW).

References
----------
Barrett HH, Myers KJ. *Foundations of Image Science*. Wiley, 2004, ch. 13–14.
Gallas BD, Barrett HH. Validating the use of channels to estimate the ideal linear
observer. J Opt Soc Am A 2003;20(9):1725–1738. doi:10.1364/JOSAA.20.001725
Burgess AE. Statistically defined backgrounds: performance of a modified nonprewhitening
observer model. J Opt Soc Am A 1994;11(4):1237–1242. doi:10.1364/JOSAA.11.001237
Eckstein MP, Abbey CK, Bochud FO. A practical guide to model observers for visual
detection in synthetic and natural noisy images. In: Handbook of Medical Imaging, vol. 1,
SPIE Press, 2000, ch. 10. doi:10.1117/3.832716.ch10
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from medbench.benchmark.observers.nodules import OVERSAMPLE, Spacing

#: Laguerre–Gauss channels per observer (j = 0..5), as in Gallas & Barrett (2003).
CHANNELS = 6
#: Viewing distance of the NPWE's eye filter (mm), the radiograph shown at life size.
VIEWING_MM = 500.0
#: Eye-filter exponent ``n`` and peak frequency (cycles/degree), Burgess (1994).
EYE_EXPONENT = 1.3
EYE_PEAK_CPD = 4.0
#: Fraction of the nodule's energy the matched channels must capture: on white noise the
#: CHO then reaches at least sqrt(0.99) = 0.995 of the ideal observer's d'.
CAPTURED = 0.99
#: LG width in nodule radii. On the 100 NIH images at 256² widths of 0.75 to 1.5 radii gave
#: the CHO the same d' within its sampling error (wider ones lost up to 20 % on 10 mm
#: nodules); 1 radius captures >= 99.8 % of the nodule's energy at 0.4 to 1.7 mm spacing.
WIDTH_RADII = 1.0
#: Candidate LG widths, as multiples of the nodule radius, searched by :func:`matched_width`.
WIDTH_FACTORS = np.geomspace(0.5, 4.0, 43)


def _laguerre(j: int, x: np.ndarray) -> np.ndarray:
    """The Laguerre polynomial ``L_j(x) = Σ_k C(j,k) (-x)^k / k!``."""
    return sum(math.comb(j, k) * (-x) ** k / math.factorial(k) for k in range(j + 1))


def _fine_radius2(half: tuple[int, int], spacing: Spacing, oversample: int) -> np.ndarray:
    """Squared distance (mm²) from the ROI centre of every subsample of every pixel."""
    offsets = (np.arange(oversample, dtype=np.float64) + 0.5) / oversample - 0.5
    ys = (np.arange(-half[0], half[0] + 1, dtype=np.float64)[:, None] + offsets).ravel()
    xs = (np.arange(-half[1], half[1] + 1, dtype=np.float64)[:, None] + offsets).ravel()
    return (ys[:, None] * spacing.row_mm) ** 2 + (xs[None, :] * spacing.col_mm) ** 2


def lg_channels(width_mm: float, half: tuple[int, int], spacing: Spacing,
                count: int = CHANNELS, oversample: int = OVERSAMPLE) -> np.ndarray:
    """Laguerre–Gauss channels on the ROI, ready for ``v = U @ g.ravel()``.

    Parameters
    ----------
    width_mm
        Channel width ``a`` (mm).
    half
        ROI half-size ``(h, k)`` in pixels: the ROI is ``(2h+1) × (2k+1)``.
    spacing
        Pixel spacing (mm).
    count
        Number of channels ``J``.
    oversample
        Subsamples per pixel side over which each channel is averaged.

    Returns
    -------
    numpy.ndarray
        ``(J, (2h+1)·(2k+1))`` float64: row ``j`` is ``u_j`` averaged over each pixel, times
        the pixel area, so ``U @ g`` approximates ``∫ u_j g d²r`` in grey level · mm.
    """
    r2 = _fine_radius2(half, spacing, oversample)
    x = 2 * math.pi * r2 / width_mm**2
    gauss = math.sqrt(2) / width_mm * np.exp(-x / 2)
    rows, cols = 2 * half[0] + 1, 2 * half[1] + 1
    out = np.empty((count, rows * cols))
    for j in range(count):
        fine = gauss * _laguerre(j, x)
        out[j] = fine.reshape(rows, oversample, cols, oversample).mean(axis=(1, 3)).ravel()
    return out * spacing.area_mm2


def captured(signal: np.ndarray, channels: np.ndarray) -> float:
    """Fraction of the signal's energy in the span of the channels: ``‖P s‖² / ‖s‖²``.

    On white noise this is ``(d'_CHO / d'_ideal)²`` (Barrett & Myers 2004, §13.2.9):
    the CHO's d'² is ``s^T U^T (U U^T)^{-1} U s / σ²``.
    """
    s = signal.ravel()
    coefficients = np.linalg.lstsq(channels.T, s, rcond=None)[0]
    projected = channels.T @ coefficients
    return float(projected @ projected / (s @ s))


def matched_width(signal: np.ndarray, radius_mm: float, half: tuple[int, int],
                  spacing: Spacing, count: int = CHANNELS,
                  enough: float = CAPTURED) -> tuple[float, float]:
    """The LG width matched to the nodule, and the fraction of ``signal`` it captures.

    The width is :data:`WIDTH_RADII` nodule radii when those channels capture ``enough``
    of the energy of ``signal`` (the nodule stamp on the ROI); otherwise (very coarse or
    very fine sampling) the width of :data:`WIDTH_FACTORS` × ``radius_mm`` that captures
    the most. Deterministic: the same nodule and spacing give the same channels on every
    image.
    """
    width = WIDTH_RADII * radius_mm
    fraction = captured(signal, lg_channels(width, half, spacing, count))
    if fraction >= enough:
        return width, fraction
    best = (fraction, width)
    for factor in WIDTH_FACTORS:
        candidate = float(factor * radius_mm)
        share = captured(signal, lg_channels(candidate, half, spacing, count))
        if share > best[0] + 1e-12:
            best = (share, candidate)
    return best[1], best[0]


@dataclass(frozen=True)
class EyeFilter:
    """``E(f) = f^n exp(-c f²)`` with ``f`` in cycles/degree, for an image viewed at
    ``viewing_mm`` at life size; peak at ``peak_cpd``."""

    exponent: float = EYE_EXPONENT
    peak_cpd: float = EYE_PEAK_CPD
    viewing_mm: float = VIEWING_MM

    def __call__(self, f_mm: np.ndarray) -> np.ndarray:
        """The filter's gain at radial frequencies ``f_mm`` (cycles/mm on the film)."""
        f = f_mm * self.viewing_mm * math.pi / 180.0
        c = self.exponent / (2.0 * self.peak_cpd**2)
        return f**self.exponent * np.exp(-c * f * f)

    def describe(self) -> str:
        return (f"E(f) = f^{self.exponent:g}·exp(-c·f²), peak {self.peak_cpd:g} cycles/degree, "
                f"life-size display viewed from {self.viewing_mm:g} mm, no internal noise")


def npwe_template(signal: np.ndarray, spacing: Spacing, eye: EyeFilter | None = EyeFilter(),
                  pad: int = 4) -> np.ndarray:
    """The NPWE template on the ROI: ``F⁻¹{E(f)² S(f)}``, cropped to the signal's shape.

    Parameters
    ----------
    signal
        The expected signal on the ROI (odd sizes, centred).
    spacing
        Pixel spacing (mm), for the frequencies in cycles/mm.
    eye
        The eye filter; None gives the non-prewhitening matched filter (the signal).
    pad
        The DFT is taken on a grid ``pad`` times the ROI (zero-padded), so the template's
        surround is not wrapped around.

    Returns
    -------
    numpy.ndarray
        The template, float64, same shape as ``signal``; ``t = Σ template · g``.
    """
    signal = np.asarray(signal, dtype=np.float64)
    if eye is None:
        return signal.copy()
    rows, cols = signal.shape
    big = (pad * rows | 1, pad * cols | 1)
    canvas = np.zeros(big)
    top, left = (big[0] - rows) // 2, (big[1] - cols) // 2
    canvas[top:top + rows, left:left + cols] = signal
    shifted = np.fft.ifftshift(canvas)  # centre pixel to index 0: a real, even response
    fy = np.fft.fftfreq(big[0], d=spacing.row_mm)[:, None]
    fx = np.fft.fftfreq(big[1], d=spacing.col_mm)[None, :]
    gain = eye(np.sqrt(fy * fy + fx * fx)) ** 2
    filtered = np.fft.fftshift(np.real(np.fft.ifft2(np.fft.fft2(shifted) * gain)))
    return filtered[top:top + rows, left:left + cols]
