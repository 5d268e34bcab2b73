"""Argument checks every metric shares: equal shapes, a positive ``data_range``, float64."""

from __future__ import annotations

import numpy as np


def check_pair(reference: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both images in float64; ``ValueError`` naming both shapes when they differ."""
    check_shapes(reference, test)
    return as_float(reference), as_float(test)


def check_shapes(reference: np.ndarray, test: np.ndarray) -> None:
    """``ValueError`` naming both shapes when they differ."""
    if reference.shape != test.shape:
        raise ValueError(
            f"reference shape {reference.shape} and test shape {test.shape} differ"
        )


def as_float(a: np.ndarray) -> np.ndarray:
    """``a`` in float64 (itself when it already is)."""
    return a if a.dtype == np.float64 else a.astype(np.float64)


def check_range(data_range: float) -> float:
    """``data_range`` as a float; ``ValueError`` unless it is positive."""
    if not data_range > 0:
        raise ValueError(f"data_range must be positive, got {data_range}")
    return float(data_range)
