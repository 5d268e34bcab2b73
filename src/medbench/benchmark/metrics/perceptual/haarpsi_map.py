"""HaarPSI: the Haar wavelet-based perceptual similarity index (greyscale).

References
----------
R. Reisenhofer, S. Bosse, G. Kutyniok, T. Wiegand, "A Haar wavelet-based perceptual
similarity index for image quality assessment", Signal Processing: Image Communication
61:33-43, 2018, doi:10.1016/j.image.2017.11.001.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from medbench.benchmark.metrics.perceptual._matlab import block_mean, conv_same_2d, coverage

#: The constants C and alpha of the published code (C on the 0-255 scale).
C = 30.0
ALPHA = 4.2
#: Haar wavelet scales: the first two give the local similarity, the last the weights.
SCALES = 3
#: Downsampling factor of the published code (``preprocessWithSubsampling``).
DOWN = 2


@dataclass(frozen=True)
class Side:
    """The original's half: absolute Haar coefficients, per orientation and scale."""

    coefficients: tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]


def haar_coefficients(x: np.ndarray) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
    """|Haar coefficients| of the downsampled ``x``: (vertical, horizontal) × scales.

    Scale ``k`` filters with the published ``2^-k · ones(2^k)`` whose first ``2^(k-1)``
    rows are negated (and its transpose), through ``conv2(·, ·, 'same')``.
    """
    small = block_mean(x, DOWN)
    vertical, horizontal = [], []
    for k in range(1, SCALES + 1):
        size = 2**k
        step = [-(2.0**-k)] * (size // 2) + [2.0**-k] * (size // 2)
        flat = [1.0] * size
        vertical.append(np.abs(conv_same_2d(small, step, flat)))
        horizontal.append(np.abs(conv_same_2d(small, flat, step)))
    return tuple(vertical), tuple(horizontal)


def prepare(x255: np.ndarray) -> Side:
    """The original's side, from its pixels on the 0-255 scale."""
    return Side(haar_coefficients(x255))


def compare(side: Side, y255: np.ndarray, mask: np.ndarray | None) -> tuple[float, float | None]:
    """(HaarPSI of the whole image, HaarPSI inside ``mask`` or None)."""
    theirs = haar_coefficients(y255)
    sims, weights = [], []
    for ref, dist in zip(side.coefficients, theirs):
        local = sum((2 * a * b + C) / (a * a + b * b + C)
                    for a, b in zip(ref[: SCALES - 1], dist[: SCALES - 1])) / (SCALES - 1)
        sims.append(1.0 / (1.0 + np.exp(-ALPHA * local)))
        weights.append(np.maximum(ref[SCALES - 1], dist[SCALES - 1]))
    whole = _pooled(sims, weights, None)
    region = None if mask is None else _pooled(sims, weights, coverage(mask, DOWN))
    return whole, region


def _pooled(sims: list[np.ndarray], weights: list[np.ndarray],
            share: np.ndarray | None) -> float:
    """``(logit(Σ w·sigmoid(LS) / Σ w) / alpha)²`` over both orientations."""
    if share is not None:
        weights = [w * share for w in weights]
    total = float(sum(w.sum() for w in weights))
    if not total > 0:
        return math.nan
    mean = float(sum((s * w).sum() for s, w in zip(sims, weights))) / total
    return (math.log(mean / (1.0 - mean)) / ALPHA) ** 2
