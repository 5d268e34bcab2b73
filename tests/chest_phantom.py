"""A PA chest phantom for the observer tests: body, two textured lungs, air outside.

MONOCHROME2 8-bit: air outside the body is dark, soft tissue and mediastinum bright, the
lungs in between with a correlated texture (smoothed Gaussian noise, as anatomy gives) and
pixel noise, so that the observers' d' at 256² spans about 1 to 5 over contrasts 0.02 to
0.08, as on real radiographs. It shares no code with :mod:`medbench.benchmark.observers`.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter

#: ``(centre x, centre y, radius x, radius y)`` of the lungs, in fractions of the side.
LUNGS = ((0.30, 0.42, 0.12, 0.24), (0.70, 0.42, 0.12, 0.24))


def lung_mask(size: int) -> np.ndarray:
    """The phantom's lungs as a boolean mask."""
    y, x = (np.mgrid[0:size, 0:size] + 0.5) / size
    mask = np.zeros((size, size), dtype=bool)
    for cx, cy, rx, ry in LUNGS:
        mask |= ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 <= 1
    return mask


def chest_phantom(size: int = 256, seed: int = 0) -> np.ndarray:
    """A ``size``² uint8 PA chest phantom (deterministic for ``seed``)."""
    rng = np.random.default_rng(seed)
    y, x = (np.mgrid[0:size, 0:size] + 0.5) / size
    body = ((x - 0.5) / 0.42) ** 2 + ((y - 0.55) / 0.5) ** 2 <= 1
    image = np.where(body, 150.0, 12.0)
    lungs = lung_mask(size)
    texture = gaussian_filter(rng.normal(0, 1, (size, size)), size / 128)
    texture *= 10 / texture.std()
    image = np.where(lungs, 70.0 + texture, image)
    image = gaussian_filter(image, size / 256) + rng.normal(0, 4, (size, size))
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)
