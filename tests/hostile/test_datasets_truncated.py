"""Files cut short after a sound header (an interrupted copy): ``datasets show`` lists them
as skipped with the reason, as a run finds them unreadable, instead of counting them as
images. Complete files with bytes after their end (allowed by decoders) still count."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from medbench.datasets.complete import JPEG_TAIL
from tests.fixture_formats import picture, write_jpeg, write_png, write_tiff
from tests.hostile.cli_helpers import invoke


def _cut(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def _cut_tiff(path: Path) -> None:
    """Drop the middle of the pixel data written before the IFD, keeping the IFD valid."""
    data = bytearray(path.read_bytes())
    cut = 2000
    ifd = struct.unpack_from("<I", data, 4)[0]
    shorter = data[:8] + data[8 + cut:]
    struct.pack_into("<I", shorter, 4, ifd - cut)
    path.write_bytes(bytes(shorter))


@pytest.fixture
def folder(tmp_path) -> Path:
    root = tmp_path / "data"
    write_png(root / "good.png", picture((64, 64), 8, 0))
    write_png(root / "cut-png.png", picture((64, 64), 8, 1))
    _cut(root / "cut-png.png")
    write_jpeg(root / "cut-jpeg.jpg", picture((64, 64), 8, 2))
    _cut(root / "cut-jpeg.jpg", 0.9)
    write_jpeg(root / "tail.jpg", picture((64, 64), 8, 3))  # bytes after its end marker
    (root / "tail.jpg").write_bytes((root / "tail.jpg").read_bytes() + b"\0" * (JPEG_TAIL + 9))
    write_tiff(root / "cut-tiff.tif", picture((64, 64), 8, 4))
    _cut_tiff(root / "cut-tiff.tif")
    return root


def test_datasets_show_skips_what_run_cannot_read(folder, tmp_path):
    shown = invoke("datasets", "show", f"folder:{folder}")
    assert shown.exit_code == 0, shown.output
    assert "images:     2 in 2" in shown.output
    assert "skipped:    3 file(s)" in shown.output
    assert "cut-png.png: truncated PNG (its IDAT chunk needs" in shown.output
    assert "cut-jpeg.jpg: truncated JPEG (no end-of-image marker after its image data)" \
        in shown.output
    assert "cut-tiff.tif: truncated TIFF (its image data ends at byte" in shown.output
    ran = invoke("run", "--datasets", f"folder:{folder}", "--split", "all", "--codecs", "png",
                 "--protocol", "native", "--repeats", "0", "--no-progress", "--no-report",
                 "--out", tmp_path / "out")
    assert ran.exit_code == 0, ran.output
    assert "run " in ran.output and "5 rows, 3 errors" in ran.output  # the same three
