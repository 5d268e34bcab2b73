"""GMSD: the standard deviation of the gradient magnitude similarity map.

References
----------
W. Xue, L. Zhang, X. Mou, A. C. Bovik, "Gradient magnitude similarity deviation: a
highly efficient perceptual image quality index", IEEE Transactions on Image Processing
23(2):684-695, 2014, doi:10.1109/TIP.2013.2293423.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from medbench.benchmark.metrics.perceptual._matlab import (
    block_mean,
    conv_same_2d,
    coverage,
    weighted_std,
)

#: The similarity constant T of the published code, on the 0-255 scale.
T = 170.0
#: Downsampling factor of the published code (``Down_step``).
DOWN = 2
#: Prewitt kernel of the published code: ``dx = [1 0 -1; 1 0 -1; 1 0 -1] / 3``, ``dy = dx'``.
SMOOTH = (1 / 3, 1 / 3, 1 / 3)
DERIVATIVE = (1.0, 0.0, -1.0)


@dataclass(frozen=True)
class Side:
    """The original's half of the map: its gradient magnitude (downsampled)."""

    magnitude: np.ndarray


def gradient_magnitude(x: np.ndarray) -> np.ndarray:
    """Prewitt gradient magnitude of ``x`` after the published 2× downsampling."""
    small = block_mean(x, DOWN)
    gx = conv_same_2d(small, SMOOTH, DERIVATIVE)
    gy = conv_same_2d(small, DERIVATIVE, SMOOTH)
    return np.sqrt(gx * gx + gy * gy)


def prepare(x255: np.ndarray) -> Side:
    """The original's side, from its pixels on the 0-255 scale."""
    return Side(gradient_magnitude(x255))


def compare(side: Side, y255: np.ndarray, mask: np.ndarray | None) -> tuple[float, float | None]:
    """(GMSD of the whole image, GMSD inside ``mask`` or None)."""
    g1, g2 = side.magnitude, gradient_magnitude(y255)
    gms = (2 * g1 * g2 + T) / (g1 * g1 + g2 * g2 + T)
    whole = weighted_std(gms, None)
    region = None if mask is None else weighted_std(gms, coverage(mask, DOWN))
    return whole, region
