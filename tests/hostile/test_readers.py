"""Hostile files for the dataset readers: right pixels, or a skip with its reason.

Each case is built in a temporary folder. Cases that would allocate what a hostile header
declares run in a child process under a memory limit (``RLIMIT_AS``), so a regression
fails the test instead of exhausting the machine.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image as PILImage

from medbench.cli import main
from medbench.datasets import formats
from medbench.datasets.cache import PreparedCache, prepare_image
from medbench.datasets.folder import FolderDataset
from medbench.datasets.formats import probe_image, read_image
from medbench.datasets.protocols import NATIVE, Protocol, parse_protocol
from medbench.errors import ImageReadError, MedbenchError
from tests.fixture_formats import write_dicom, write_png

SRC = str(Path(__file__).resolve().parents[2] / "src")


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def assert_clean(result, code=0):
    """Exit code as expected, and no traceback anywhere in the output."""
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def run_limited(code: str, env: dict[str, str] | None = None, limit: int = 3 << 30) -> str:
    """Run ``code`` in a child Python with its address space capped at ``limit`` bytes."""
    prelude = (
        "import resource\n"
        f"resource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit}))\n"
    )
    child_env = {**os.environ, "PYTHONPATH": SRC, "OPENBLAS_NUM_THREADS": "1",
                 "OMP_NUM_THREADS": "1", **(env or {})}
    done = subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)],
        capture_output=True, text=True, env=child_env, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


# -- 1. palette PNG -------------------------------------------------------------------------
@pytest.mark.parametrize("bits", [1, 2, 4])
def test_low_bit_palette_png_reads_its_grey_palette_at_8_bits(tmp_path, bits):
    levels = 2**bits
    greys = [3 + 7 * i for i in range(levels)]  # 3, 10, 17...: not a 0..255 ramp
    index = np.arange(16 * 16).reshape(16, 16) % levels
    im = PILImage.fromarray(index.astype(np.uint8), mode="P")
    im.putpalette([g for grey in greys for g in (grey, grey, grey)])
    path = tmp_path / "p.png"
    im.save(path, bits=bits)
    assert path.read_bytes()[24] == bits  # IHDR bit depth: really a low-bit palette file

    pixels, depth, meta = read_image(path)
    assert depth == 8 and meta["stored_as"] == "palette"
    assert np.array_equal(pixels, np.array(greys, dtype=np.uint8)[index])
    assert probe_image(path).bit_depth == depth  # `datasets show` says what the reader says


def test_colour_palette_png_is_refused(tmp_path):
    im = PILImage.fromarray((np.arange(256).reshape(16, 16) % 4).astype(np.uint8), mode="P")
    im.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255])
    path = tmp_path / "c.png"
    im.save(path, bits=2)
    with pytest.raises(ImageReadError, match="colour palette PNG"):
        read_image(path)


# -- 4. cache keyed on content --------------------------------------------------------------
def test_cache_never_serves_a_replaced_file_of_same_size_and_mtime(tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    path = root / "a.tif"
    first = np.full((16, 16), 10, np.uint8)
    PILImage.fromarray(first).save(path)  # uncompressed TIFF: same size for same shape
    stamp = os.stat(path)
    dataset = FolderDataset(argument=str(root))
    record = dataset.records()[0]
    cache = PreparedCache(tmp_path / "cache")
    assert np.array_equal(prepare_image(dataset, record, NATIVE, cache).pixels, first)

    second = np.full((16, 16), 200, np.uint8)
    PILImage.fromarray(second).save(path)
    os.utime(path, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    assert os.stat(path).st_size == stamp.st_size
    again = prepare_image(dataset, record, NATIVE, cache)
    assert np.array_equal(again.pixels, second)
    # A record carrying the old hash (from the listing process or a manifest) is not trusted.
    old = dataset.hasher.known(str(path))
    assert old is not None and old[2] == dataset.fingerprint(record, fresh=True)


# -- 5. symlinks and unreadable folders -----------------------------------------------------
def _two_pngs(root: Path) -> None:
    (root / "sub").mkdir(parents=True)
    write_png(root / "a.png", np.zeros((16, 16), np.uint8))
    write_png(root / "sub" / "b.png", np.ones((16, 16), np.uint8))


def test_symlink_loop_and_alias_add_no_images(tmp_path):
    root = tmp_path / "data"
    _two_pngs(root)
    os.symlink("..", root / "sub" / "loop")  # back up the tree
    os.symlink("sub", root / "alias")  # a second name for a folder inside it
    dataset = FolderDataset(argument=str(root))
    assert [r.image_id for r in dataset.records()] == ["a", "sub_b"]
    reasons = [s.reason for s in dataset.skipped]
    assert sum("already scanned" in r for r in reasons) == 2

    result = invoke("datasets", "show", f"folder:{root}")
    assert_clean(result)
    assert "images:     2 in 2 split groups" in result.output


def test_link_to_a_folder_outside_the_tree_is_followed(tmp_path):
    outside = tmp_path / "disk"
    _two_pngs(outside)
    root = tmp_path / "data"
    root.mkdir()
    os.symlink(outside, root / "jsrt")
    assert len(FolderDataset(argument=str(root)).records()) == 2


def test_unreadable_folder_is_skipped_as_permission_denied(tmp_path, monkeypatch):
    root = tmp_path / "data"
    _two_pngs(root)
    real = os.scandir

    def scandir(path):
        if Path(path).name == "sub":
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    dataset = FolderDataset(argument=str(root))
    assert [r.image_id for r in dataset.records()] == ["a"]
    assert [(Path(s.source).name, s.reason.split(";")[0]) for s in dataset.skipped] == [
        ("sub", "permission denied")
    ]


def test_unreadable_file_is_skipped_as_permission_denied(tmp_path, monkeypatch):
    root = tmp_path / "data"
    _two_pngs(root)
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: Path(p).name != "b.png" and real(p, mode))
    dataset = FolderDataset(argument=str(root))
    assert [r.image_id for r in dataset.records()] == ["a"]
    assert dataset.skipped[0].reason.startswith("permission denied")


def test_reader_says_permission_denied_not_unrecognised_bytes(tmp_path, monkeypatch):
    path = write_png(tmp_path / "a.png", np.zeros((16, 16), np.uint8))

    def head(p):
        raise PermissionError(13, "Permission denied", str(p))

    monkeypatch.setattr(formats, "_head", head)
    with pytest.raises(ImageReadError, match="permission denied") as info:
        read_image(path)
    assert "unrecognised" not in str(info.value)


# -- 6. DICOM rescale -----------------------------------------------------------------------
STORED = (np.arange(256).reshape(16, 16) * 16).astype(np.uint16)


@pytest.mark.parametrize(
    ("slope", "intercept", "tag", "value"),
    [
        (1e-4, None, "(0028,1053) Rescale Slope", "0.0001"),
        (None, 1e300, "(0028,1052) Rescale Intercept", "1e+300"),
        (0.0, None, "(0028,1053) Rescale Slope", "0"),
        (float("nan"), None, "(0028,1053) Rescale Slope", "nan"),
        (float("inf"), None, "(0028,1053) Rescale Slope", "inf"),
        (None, float("-inf"), "(0028,1052) Rescale Intercept", "-inf"),
    ],
)
def test_destructive_rescale_is_refused_naming_tag_and_value(tmp_path, slope, intercept, tag,
                                                             value):
    path = write_dicom(tmp_path / "a.dcm", STORED, slope=slope, intercept=intercept)
    for reader in (read_image, probe_image):
        with pytest.raises(ImageReadError) as info:
            reader(path)
        message = str(info.value)
        assert f"{tag} of {value} in {path}" in message and "invalid" in message


def test_sound_rescale_still_reads(tmp_path):
    path = write_dicom(tmp_path / "a.dcm", STORED, slope=2.0, intercept=-100.0)
    pixels, depth, _ = read_image(path)
    assert depth == 13 and np.array_equal(pixels, STORED * 2)


# -- 10 and 11. sizes checked before allocating ----------------------------------------------
def test_size_above_the_pixel_budget_is_refused_before_allocating(monkeypatch):
    with pytest.raises(MedbenchError, match="MEDBENCH_MAX_PIXELS"):
        parse_protocol("paper", size="100000")
    monkeypatch.setenv("MEDBENCH_MAX_PIXELS", str(100000**2))
    assert parse_protocol("paper", size="100000").size == 100000  # raised: accepted


def test_size_above_budget_on_the_cli_is_one_error_line(tmp_path):
    root = tmp_path / "data"
    _two_pngs(root)
    result = invoke("datasets", "export", f"folder:{root}", "--out", tmp_path / "out",
                    "--split", "all", "--size", "100000")
    assert_clean(result, 1)
    assert "Error: --size 100000" in result.output and "MEDBENCH_MAX_PIXELS" in result.output


def _patch_png_size(path: Path, width: int, height: int) -> None:
    import struct
    import zlib

    raw = bytearray(path.read_bytes())
    raw[16:24] = struct.pack(">II", width, height)
    raw[29:33] = struct.pack(">I", zlib.crc32(bytes(raw[12:29])) & 0xFFFFFFFF)
    path.write_bytes(bytes(raw))


def test_declared_sizes_above_budget_are_refused_before_decoding(tmp_path, monkeypatch):
    png = write_png(tmp_path / "a.png", np.zeros((16, 16), np.uint16))
    _patch_png_size(png, 100000, 100000)
    with pytest.raises(ImageReadError, match="10,000,000,000 pixels, above the budget"):
        read_image(png)
    with pytest.raises(ImageReadError, match="above the budget"):
        probe_image(png)

    tif = tmp_path / "a.tif"
    PILImage.fromarray(np.zeros((16, 16), np.uint8)).save(tif)
    jpg = tmp_path / "a.jpg"
    PILImage.fromarray(np.zeros((16, 16), np.uint8)).save(jpg)
    dcm = write_dicom(tmp_path / "a.dcm", STORED)
    monkeypatch.setenv("MEDBENCH_MAX_PIXELS", "255")
    for path in (tif, jpg, dcm):
        with pytest.raises(ImageReadError, match="256 pixels, above the budget of 255"):
            read_image(path)


def test_uncompressed_dicom_pixel_data_must_match_rows_and_columns(tmp_path):
    path = write_dicom(tmp_path / "a.dcm", STORED)
    import pydicom

    ds = pydicom.dcmread(path)
    ds.Rows = 4096
    ds.save_as(path)
    with pytest.raises(ImageReadError, match=r"Pixel Data holds 512 bytes .* need 131,072"):
        read_image(path)


def _deflated_bomb(path: Path, side: int) -> None:
    import pydicom
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    write_dicom(path, np.zeros((16, 16), np.uint16))
    ds = pydicom.dcmread(path)
    ds.Rows = ds.Columns = side
    ds.PixelData = bytes(side * side * 2)
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    ds.save_as(path)


def _rle_giant(path: Path) -> None:
    import pydicom
    from pydicom.uid import RLELossless

    write_dicom(path, STORED)
    ds = pydicom.dcmread(path)
    ds.compress(RLELossless)
    ds.Rows = ds.Columns = 65535
    ds.save_as(path)


def test_decompression_bombs_are_refused_under_a_memory_limit(tmp_path):
    bomb = tmp_path / "bomb.dcm"
    _deflated_bomb(bomb, 4096)  # 32 MiB of pixels inflated from a few KiB
    assert bomb.stat().st_size < 200_000
    rle = tmp_path / "rle.dcm"
    _rle_giant(rle)  # declares 65535² pixels: 8 GiB at 16 bits
    out = run_limited(
        f"""
        from pathlib import Path
        from medbench.datasets.formats import read_image
        from medbench.errors import ImageReadError
        for path in ({str(bomb)!r}, {str(rle)!r}):
            try:
                read_image(Path(path))
            except ImageReadError as exc:
                print(exc)
        """,
        env={"MEDBENCH_MAX_PIXELS": str(2**16)},
    )
    lines = out.splitlines()
    assert "deflated DICOM inflates to more than" in lines[0] and "MEDBENCH_MAX_PIXELS" in lines[0]
    assert "65535x65535" in lines[1] and "above the budget" in lines[1]


def test_deflated_dicom_within_budget_reads(tmp_path):
    import pydicom
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    path = write_dicom(tmp_path / "a.dcm", STORED)
    ds = pydicom.dcmread(path)
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    ds.save_as(path)
    pixels, depth, _ = read_image(path)
    assert depth == 12 and np.array_equal(pixels, STORED)


# -- 13. odd DICOM files in `datasets show` and `datasets export` ---------------------------
def _odd_folder(root: Path) -> None:
    import pydicom

    write_png(root / "good.png", np.zeros((16, 16), np.uint8))
    write_dicom(root / "nan.dcm", STORED, slope=float("nan"))
    frames = write_dicom(root / "frames.dcm", STORED)
    ds = pydicom.dcmread(frames)
    ds.NumberOfFrames = 987
    ds.save_as(frames)
    raw = frames.read_bytes()
    assert raw.count(b"987 ") == 1
    frames.write_bytes(raw.replace(b"987 ", b"abc "))  # pydicom will not write it itself
    wide = write_dicom(root / "wide.dcm", STORED)
    ds = pydicom.dcmread(wide)
    ds.BitsAllocated = ds.BitsStored = 32
    ds.HighBit = 31
    ds.PixelData = STORED.astype("<u4").tobytes()
    ds.save_as(wide)


def test_show_and_export_skip_odd_dicom_files_with_their_reason(tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    _odd_folder(root)
    result = invoke("datasets", "show", f"folder:{root}")
    assert_clean(result)
    out = result.output
    assert "images:     1 in 1 split groups" in out and "skipped:    3 file(s)" in out
    assert "nan.dcm: (0028,1053) Rescale Slope of nan" in out
    assert "frames.dcm: (0028,0008) Number of Frames of 'abc'" in out
    assert "wide.dcm: (0028,0101) Bits Stored of 32" in out

    result = invoke("datasets", "export", f"folder:{root}", "--out", tmp_path / "out",
                    "--split", "all", "--protocol", "native")
    assert_clean(result)
    assert "wrote 1 images" in result.output
    assert result.output.count("note: could not read:") == 3


# -- messages -------------------------------------------------------------------------------
def test_memory_and_library_errors_name_the_file(tmp_path, monkeypatch):
    path = write_png(tmp_path / "a.png", np.zeros((16, 16), np.uint8))

    def out_of_memory(p):
        raise MemoryError

    monkeypatch.setitem(formats.READERS, "png", out_of_memory)
    with pytest.raises(ImageReadError, match="ran out of memory") as info:
        read_image(path)
    assert str(path) in str(info.value) and "MEDBENCH_MAX_PIXELS" in str(info.value)

    def bad_value(p):
        raise ValueError("buffer is smaller than requested size")

    monkeypatch.setitem(formats.READERS, "png", bad_value)
    with pytest.raises(ImageReadError) as info:
        read_image(path)
    assert str(path) in str(info.value) and "ValueError: buffer is smaller" in str(info.value)


def test_12_bit_and_lossless_jpeg_files_are_read(tmp_path):
    imagecodecs = pytest.importorskip("imagecodecs")
    lossless = tmp_path / "l.jpg"
    lossless.write_bytes(imagecodecs.ljpeg_encode(STORED, bitspersample=12))
    pixels, depth, meta = read_image(lossless)
    assert depth == 12 and meta["lossless"] and np.array_equal(pixels, STORED)
    assert probe_image(lossless).bit_depth == 12

    lossy = tmp_path / "12.jpg"
    lossy.write_bytes(imagecodecs.jpeg8_encode(STORED, level=95, bitspersample=12))
    pixels, depth, _ = read_image(lossy)
    assert depth == 12 and pixels.dtype == np.uint16
    assert np.abs(pixels.astype(int) - STORED).max() <= 8


@pytest.mark.parametrize("syntax", ["1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70",
                                    "1.2.840.10008.1.2.4.51"])
def test_jpeg_inside_dicom_is_read(tmp_path, syntax):
    imagecodecs = pytest.importorskip("imagecodecs")
    import pydicom
    from pydicom.encaps import encapsulate

    path = write_dicom(tmp_path / "a.dcm", STORED)
    ds = pydicom.dcmread(path)
    lossy = syntax.endswith(".51")
    frame = (imagecodecs.jpeg8_encode(STORED, level=95, bitspersample=12) if lossy
             else imagecodecs.ljpeg_encode(STORED, bitspersample=12))
    ds.PixelData = encapsulate([frame])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = syntax
    ds.save_as(path)
    pixels, depth, _ = read_image(path)
    assert depth == 12
    assert np.abs(pixels.astype(int) - STORED).max() <= (8 if lossy else 0)


def test_dicom_without_preamble_is_read_when_valid(tmp_path):
    import pydicom

    path = write_dicom(tmp_path / "a.dcm", STORED)
    ds = pydicom.dcmread(path)
    bare = tmp_path / "bare.dcm"
    ds.preamble = None
    pydicom.dcmwrite(bare, ds, enforce_file_format=False)
    assert bare.read_bytes()[128:132] != b"DICM"
    pixels, depth, _ = read_image(bare)
    assert depth == 12 and np.array_equal(pixels, STORED)

    # A data set without preamble that holds no image stays refused, with that reason.
    del ds.PixelData
    pydicom.dcmwrite(bare, ds, enforce_file_format=False)
    with pytest.raises(ImageReadError, match="no pixel data"):
        read_image(bare)


def test_prepared_images_keep_protocol_checks(tmp_path, monkeypatch):
    path = write_png(tmp_path / "a.png", np.zeros((16, 16), np.uint8))
    image = FolderDataset(argument=str(tmp_path)).load(
        FolderDataset(argument=str(tmp_path)).records()[0])
    assert path.exists()
    monkeypatch.setenv("MEDBENCH_MAX_PIXELS", "100")
    with pytest.raises(MedbenchError, match="--size 16 makes images of 256 pixels"):
        Protocol(size=16).apply(image)
