"""Pixels kept for the report's visual comparison, and how they are packed in the store.

The report shows, for a few images per dataset, each codec's reconstruction at the setting
nearest :data:`TARGET_RATIO` beside the original. Those pixels are captured while the run
codes the image (:mod:`medbench.benchmark.cells`), so a report can be rebuilt from the
results folder alone. Two views are kept per picture:

- ``crop``: a :data:`CROP`-pixel square at 1:1 (native resolution), placed on the most
  detailed block of the original (largest standard deviation on a coarse grid), the same
  place for the original and every codec. For images no larger than the crop, it is the
  whole image.
- ``whole``: the whole image, reduced by an integer block mean to at most :data:`WHOLE`
  pixels on its long side when larger (display only; no metric is computed on it).

Pixels are stored zlib-compressed with their dtype and shape; nothing is pickled.
"""

from __future__ import annotations

import zlib

import numpy as np

from medbench.benchmark.rows import VisualCrop

#: The compression ratio the visual comparison matches (the CAR 30:1 chest guideline).
TARGET_RATIO = 30
#: Side of the 1:1 crop.
CROP = 256
#: Longest side of the downscaled whole image.
WHOLE = 512


def crop_origin(original: np.ndarray, size: int = CROP) -> tuple[int, int]:
    """Top-left corner of the ``size``² crop: the most detailed block of the original."""
    h, w = original.shape
    if h <= size and w <= size:
        return 0, 0
    best, origin = -1.0, (max(0, (h - size) // 2), max(0, (w - size) // 2))
    step = max(size // 2, 1)
    for top in range(0, max(h - size, 0) + 1, step):
        for left in range(0, max(w - size, 0) + 1, step):
            block = original[top:top + size:4, left:left + size:4]
            spread = float(np.std(block, dtype=np.float64))
            if spread > best:
                best, origin = spread, (top, left)
    return origin


def downscale(pixels: np.ndarray, longest: int = WHOLE) -> np.ndarray:
    """Block mean by the smallest integer factor that brings the long side to ``longest``."""
    factor = -(-max(pixels.shape) // longest)
    if factor <= 1:
        return pixels
    h, w = (s // factor * factor for s in pixels.shape)
    blocks = pixels[:h, :w].astype(np.float64).reshape(h // factor, factor, w // factor, factor)
    return np.rint(blocks.mean(axis=(1, 3))).astype(pixels.dtype)


def display_crops(original: np.ndarray, decoded: np.ndarray | None,
                  bit_depth: int) -> tuple[VisualCrop, ...]:
    """The ``crop`` and ``whole`` views of ``decoded`` (or of the original when None)."""
    pixels = original if decoded is None else decoded
    top, left = crop_origin(original)
    crop = np.ascontiguousarray(pixels[top:top + CROP, left:left + CROP])
    views = [VisualCrop("crop", crop, bit_depth, top, left, decoded is not None)]
    if crop.shape != pixels.shape:
        views.append(VisualCrop("whole", downscale(pixels), bit_depth, 0, 0, decoded is not None))
    return tuple(views)


def pack(pixels: np.ndarray) -> tuple[bytes, str, int, int]:
    """(compressed bytes, dtype name, height, width) of a 2-D array."""
    array = np.ascontiguousarray(pixels)
    return zlib.compress(array.tobytes(), 6), array.dtype.str, *array.shape


def unpack(blob: bytes, dtype: str, height: int, width: int) -> np.ndarray:
    """The array :func:`pack` stored; refuses a blob whose size disagrees with its shape."""
    kind = np.dtype(dtype)
    if kind.kind not in "ui" or height < 0 or width < 0:
        raise ValueError(f"stored visual has an unexpected dtype {dtype} or shape")
    expected = height * width * kind.itemsize
    raw = zlib.decompressobj().decompress(blob, expected + 1)
    if len(raw) != expected:
        raise ValueError(f"stored visual holds {len(raw)} bytes, its shape needs {expected}")
    return np.frombuffer(raw, dtype=kind).reshape(height, width)
