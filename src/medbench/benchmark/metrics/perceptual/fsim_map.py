"""FSIM: the feature similarity index (greyscale FSIM, not FSIMc).

References
----------
L. Zhang, L. Zhang, X. Mou, D. Zhang, "FSIM: a feature similarity index for image
quality assessment", IEEE Transactions on Image Processing 20(8):2378-2386, 2011,
doi:10.1109/TIP.2011.2109730.

P. Kovesi, "Image features from phase congruency", Videre: Journal of Computer Vision
Research 1(3):1-26, 1999 (the phase congruency ``phasecong2`` of the published code).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import fft

from medbench.benchmark.metrics.perceptual._matlab import (
    block_mean,
    conv_same_2d,
    coverage,
    matlab_round,
)

#: Similarity constants of the published code (T2 on the 0-255 scale).
T1 = 0.85
T2 = 160.0
#: Scharr kernel of the published code: ``dx = [3 0 -3; 10 0 -10; 3 0 -3] / 16``.
SMOOTH = (3 / 16, 10 / 16, 3 / 16)
DERIVATIVE = (1.0, 0.0, -1.0)
#: The resolution the published code downsamples to: ``F = max(1, round(min(h, w) / 256))``.
RESOLUTION = 256
# phasecong2 of the published code.
NSCALE = 4
NORIENT = 4
MIN_WAVELENGTH = 6.0
MULT = 2.0
SIGMA_ON_F = 0.55
D_THETA_ON_SIGMA = 1.2
K = 2.0
#: ``epsilon`` of phasecong2, on the 0-255 scale (piqa uses 1e-8).
EPSILON = 1e-4
#: Empirical rescaling of the noise threshold for the PC_2 measure (phasecong2).
NOISE_RESCALE = 1.7


def factor(height: int, width: int) -> int:
    """The published code's downsampling factor ``max(1, round(min(h, w) / 256))``."""
    return max(1, matlab_round(min(height, width) / RESOLUTION))


@lru_cache(maxsize=8)
def filters(rows: int, cols: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """phasecong2's log-Gabor filters for a ``rows``×``cols`` image.

    Returns
    -------
    tuple
        ``(filters, ifft_filters, em_n, noise_sums)``: the ``(orient, scale, rows, cols)``
        frequency-domain filters (0 frequency at the corner), their inverse transforms'
        real parts times ``sqrt(rows·cols)``, the sum of the smallest scale's squared
        filter per orientation (``EM_n``), and per orientation
        ``2·Σ_s ΣΣ ifft_s² + 4·Σ_{i<j} ΣΣ ifft_i·ifft_j`` (what ``EstNoiseEnergy2``
        multiplies the noise power by).
    """
    def axis(n: int) -> np.ndarray:
        if n % 2:
            return np.arange(-(n - 1) / 2, (n - 1) / 2 + 1) / (n - 1)
        return np.arange(-n / 2, n / 2) / n

    x, y = np.meshgrid(axis(cols), axis(rows))
    radius = np.sqrt(x * x + y * y)
    theta = np.arctan2(-y, x)
    lowpass = fft.ifftshift(1.0 / (1.0 + (radius / 0.45) ** (2 * 15)))
    radius = fft.ifftshift(radius)
    theta = fft.ifftshift(theta)
    radius[0, 0] = 1.0
    sin_theta, cos_theta = np.sin(theta), np.cos(theta)
    log_gabor = []
    for s in range(NSCALE):
        fo = 1.0 / (MIN_WAVELENGTH * MULT**s)
        lg = np.exp(-(np.log(radius / fo) ** 2) / (2 * math.log(SIGMA_ON_F) ** 2)) * lowpass
        lg[0, 0] = 0.0
        log_gabor.append(lg)
    theta_sigma = math.pi / NORIENT / D_THETA_ON_SIGMA
    bank = np.empty((NORIENT, NSCALE, rows, cols))
    for o in range(NORIENT):
        angle = o * math.pi / NORIENT
        ds = sin_theta * math.cos(angle) - cos_theta * math.sin(angle)
        dc = cos_theta * math.cos(angle) + sin_theta * math.sin(angle)
        spread = np.exp(-(np.abs(np.arctan2(ds, dc)) ** 2) / (2 * theta_sigma**2))
        for s in range(NSCALE):
            bank[o, s] = log_gabor[s] * spread
    spatial = fft.ifft2(bank, axes=(-2, -1)).real * math.sqrt(rows * cols)
    em_n = (bank[:, 0] ** 2).sum(axis=(-2, -1))
    sum_an2 = (spatial**2).sum(axis=(1, 2, 3))
    sum_aiaj = np.zeros(NORIENT)
    for i in range(NSCALE - 1):
        for j in range(i + 1, NSCALE):
            sum_aiaj += (spatial[:, i] * spatial[:, j]).sum(axis=(-2, -1))
    return bank, spatial, em_n, 2 * sum_an2 + 4 * sum_aiaj


def phase_congruency(image: np.ndarray) -> np.ndarray:
    """phasecong2 of the published FSIM code: PC_2 over 4 scales and 4 orientations.

    ``image`` is on the 0-255 scale (``EPSILON`` is absolute). Noise is estimated per
    orientation from the median of the smallest scale's squared amplitude (MATLAB's
    ``median``: the mean of the two middle values of an even count). Where the summed
    amplitude is exactly 0 (a flat image, such as a decode that lost everything) PC is 0,
    where the published code divides 0 by 0.
    """
    rows, cols = image.shape
    bank, _, em_n, noise_sums = filters(rows, cols)
    eo = fft.ifft2(fft.fft2(image)[None, None] * bank, axes=(-2, -1))
    energy_all = np.zeros((rows, cols))
    an_all = np.zeros((rows, cols))
    for o in range(NORIENT):
        even, odd = eo[o].real, eo[o].imag
        amplitude = np.abs(eo[o])
        sum_e, sum_o = even.sum(axis=0), odd.sum(axis=0)
        x_energy = np.sqrt(sum_e**2 + sum_o**2) + EPSILON
        mean_e, mean_o = sum_e / x_energy, sum_o / x_energy
        energy = np.zeros((rows, cols))
        for s in range(NSCALE):
            e, od = even[s], odd[s]
            energy += e * mean_e + od * mean_o - np.abs(e * mean_o - od * mean_e)
        median_e2n = _median(amplitude[0] ** 2)
        mean_e2n = -median_e2n / math.log(0.5)
        noise_power = mean_e2n / em_n[o]
        tau = math.sqrt(noise_power * noise_sums[o] / 2)
        threshold = (tau * math.sqrt(math.pi / 2)
                     + K * math.sqrt((2 - math.pi / 2) * tau * tau)) / NOISE_RESCALE
        energy_all += np.maximum(energy - threshold, 0.0)
        an_all += amplitude.sum(axis=0)
    # No amplitude at all (a flat image): no feature, PC 0 (the code's 0/0 would be NaN,
    # and so would FSIM; piqa's ε gives 0 too).
    flat = an_all == 0
    return np.where(flat, 0.0, energy_all / np.where(flat, 1.0, an_all))


def _median(values: np.ndarray) -> float:
    """MATLAB's ``median`` of all values (an even count: the mean of the middle two)."""
    return float(np.median(values))


def gradient_magnitude(small: np.ndarray) -> np.ndarray:
    """Scharr gradient magnitude through ``conv2(·, dx, 'same')``."""
    gx = conv_same_2d(small, SMOOTH, DERIVATIVE)
    gy = conv_same_2d(small, DERIVATIVE, SMOOTH)
    return np.sqrt(gx * gx + gy * gy)


@dataclass(frozen=True)
class Side:
    """The original's half: its phase congruency and gradient maps (downsampled)."""

    factor: int
    pc: np.ndarray
    gradient: np.ndarray


def prepare(x255: np.ndarray) -> Side | None:
    """The original's side, from its pixels on the 0-255 scale (None: a side of 1 px,
    where the published code's frequency grid divides by zero)."""
    if min(x255.shape) < 2:
        return None
    f = factor(*x255.shape)
    small = block_mean(x255, f)
    return Side(f, phase_congruency(small), gradient_magnitude(small))


def compare(side: Side | None, y255: np.ndarray,
            mask: np.ndarray | None) -> tuple[float, float | None]:
    """(FSIM of the whole image, FSIM inside ``mask`` or None); NaN for a 1-px side."""
    if side is None:
        return math.nan, None if mask is None else math.nan
    small = block_mean(y255, side.factor)
    pc1, pc2 = side.pc, phase_congruency(small)
    g1, g2 = side.gradient, gradient_magnitude(small)
    s_pc = (2 * pc1 * pc2 + T1) / (pc1 * pc1 + pc2 * pc2 + T1)
    s_g = (2 * g1 * g2 + T2) / (g1 * g1 + g2 * g2 + T2)
    pc_m = np.maximum(pc1, pc2)
    sim = s_g * s_pc * pc_m
    whole = _ratio(float(sim.sum()), float(pc_m.sum()))
    if mask is None:
        return whole, None
    share = coverage(mask, side.factor)
    return whole, _ratio(float((sim * share).sum()), float((pc_m * share).sum()))


def _ratio(num: float, den: float) -> float:
    return num / den if den > 0 else math.nan
