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


def test_a_resumed_run_keeps_the_pixels_of_the_cells_it_codes_again(tmp_path):
    from medbench.benchmark.store import ResultsStore
    from tests.study_kit import invoke

    out = tmp_path / "r"
    args = ["run", "--codecs", "jpeg2000", "--datasets", "sample", "--protocol", "native",
            "--size", "64", "--limit", "2", "--target", "ratio=10", "--keep-pixels",
            "--out", out, "--no-report", "--no-progress", "--repeats", "0", "--workers", "1"]
    invoke(*args)
    store = ResultsStore.open_existing(out, readonly=False)
    run_id = store.latest_run()
    before = store.kept_pixels(run_id)
    image = before["image_id"].iloc[0]
    store.delete_image(run_id, "sample", image)  # as if the run stopped before this image
    assert image not in set(store.kept_pixels(run_id)["image_id"])
    store.close()
    invoke("run", "--out", out, "--resume", "--no-progress")
    store = ResultsStore.open_existing(out)
    after = store.kept_pixels(run_id)
    store.close()
    key = ["image_id", "codec", "setting", "sha256"]
    assert sorted(map(tuple, after[key].values)) == sorted(map(tuple, before[key].values))
    assert len(after) == 2 * 2  # each image: its target cell and its original


def test_a_decode_the_writer_cannot_store_is_scored_but_not_kept():
    """A plugin decoding to float or int32 (or to another shape): kept, its file would
    raise in the run's one writer and end the run with the rows of its batch."""
    from dataclasses import replace

    from medbench.benchmark.cells import _kept
    from medbench.benchmark.rows import ResultRow

    row = replace(ResultRow(image_id="a"), status="ok", setting="target:ratio=10")
    good = np.zeros((4, 6), np.uint16)
    assert _kept(row, good, (4, 6))
    assert not _kept(row, good.astype(np.float64), (4, 6))
    assert not _kept(row, good.astype(np.int32), (4, 6))
    assert not _kept(row, good[:, :5], (4, 6))


def test_a_kept_file_replaced_by_a_huge_png_is_refused_before_it_is_decoded(tmp_path):
    import struct
    import zlib

    a = radiograph_like(32, 12, seed=1)
    sha, rel = pixels.write(tmp_path, a)

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 20000, 20000, 8, 0, 0, 0, 0)  # 4·10⁸ grey pixels
    bomb = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\0" * 20001)) + chunk(b"IEND", b""))
    (tmp_path / rel).write_bytes(bomb)
    with pytest.raises(pixels.KeptPixelsError, match=re.escape(f"the kept image "
                                                               f"{tmp_path / rel} ")):
        pixels.read(tmp_path, rel, sha, "<u2", 32, 32)
