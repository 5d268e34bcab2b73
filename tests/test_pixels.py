"""Kept whole images (``run --keep-pixels``): exact round trip, content addressing, and a
missing or swapped file refused naming it."""

from __future__ import annotations

import re

import numpy as np
import pytest

from medbench.benchmark import pixels
from tests.conftest import radiograph_like


@pytest.mark.parametrize("bit_depth", [8, 12, 16])
def test_round_trip_is_exact(tmp_path, bit_depth):
    image = radiograph_like((40, 56), bit_depth, seed=bit_depth)
    sha, rel = pixels.write(tmp_path, image)
    assert rel == f"pixels/{sha[:2]}/{sha}.png"
    back = pixels.read(tmp_path, rel, sha, image.dtype.str, 40, 56)
    assert back.dtype == image.dtype and np.array_equal(back, image)


def test_the_digest_names_the_content_not_the_byte_order(tmp_path):
    image = radiograph_like(32, 12)
    assert pixels.digest(image) == pixels.digest(image.astype(">u2"))
    assert pixels.digest(image) != pixels.digest(image.T.copy())  # shape counts
    first = pixels.write(tmp_path, image)
    assert pixels.write(tmp_path, image.copy()) == first  # one file for one content
    assert len(list((tmp_path / "pixels").rglob("*.png"))) == 1


def test_a_missing_or_swapped_file_is_refused(tmp_path):
    a, b = radiograph_like(32, 12, seed=1), radiograph_like(32, 12, seed=2)
    sha_a, rel_a = pixels.write(tmp_path, a)
    sha_b, rel_b = pixels.write(tmp_path, b)
    (tmp_path / rel_a).write_bytes((tmp_path / rel_b).read_bytes())
    with pytest.raises(pixels.KeptPixelsError, match="is not the one the store names"):
        pixels.read(tmp_path, rel_a, sha_a, "<u2", 32, 32)
    (tmp_path / rel_b).unlink()
    with pytest.raises(pixels.KeptPixelsError,
                       match=re.escape(f"the kept image {tmp_path / rel_b} is missing")):
        pixels.read(tmp_path, rel_b, sha_b, "<u2", 32, 32)


def test_only_2d_integer_images_are_kept(tmp_path):
    with pytest.raises(ValueError, match="2-D uint8/uint16"):
        pixels.write(tmp_path, np.zeros((4, 4, 3), np.uint8))
