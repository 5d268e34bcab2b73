"""Shared setup of the pytest-benchmark suites in ``benchmarks/``.

The suites are named ``bench_*.py`` so that the test run (``pytest``, ``testpaths =
tests``) never times anything; this hook lets ``pytest benchmarks`` collect them anyway.
Speed is measured here only, never asserted in ``tests/``.
"""

from __future__ import annotations

from functools import lru_cache

import pytest

from medbench.datasets.protocols import requantize
from medbench.datasets.synthetic import BIT_DEPTH, generate
from medbench.image import Image


def pytest_collect_file(file_path, parent):
    if (
        file_path.suffix == ".py"
        and file_path.name.startswith("bench_")
        and not parent.session.isinitpath(file_path)  # given by name: pytest collects it
    ):
        return pytest.Module.from_parent(parent, path=file_path)
    return None


@lru_cache(maxsize=8)
def _synthetic_image(size: int, bit_depth: int = BIT_DEPTH) -> Image:
    """Synthetic radiograph 0 of the ``synthetic`` dataset at ``size``², ``bit_depth`` bits.

    Deeper-to-shallower conversion is the nominal-range requantization of the protocols
    (never per-image min/max scaling).
    """
    pixels = generate(0, size)
    if bit_depth != BIT_DEPTH:
        pixels = requantize(pixels, BIT_DEPTH, bit_depth)
    return Image(pixels, bit_depth, f"synthetic0@{size}")


@pytest.fixture(scope="session")
def synthetic_image():
    """``synthetic_image(size, bit_depth=12)``: a cached synthetic radiograph (see above)."""
    return _synthetic_image
