"""Fuzzing every reader: random, truncated and bit-flipped files.

Each case must either raise a :class:`~medbench.errors.MedbenchError` (a clear, one-file
reason) or return an image that agrees with its header: 2-D, stored in the dtype of its
bit depth, no value above it, and the size and bit depth that ``probe_image`` (what
``datasets show`` reports) gives. Images are 16×16 and the pixel budget is set to 4096
pixels, so a flipped size field is refused instead of decoded; an alarm turns a hang into
a failure. Seeds are fixed: a failure is reproducible.
"""

from __future__ import annotations

import random
import signal
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from medbench.datasets.formats import probe_image, read_image
from medbench.datasets.jsrt import IMG_BYTES, read_jsrt_img
from medbench.errors import MedbenchError
from medbench.image import dtype_for
from tests.fixture_formats import write_dicom, write_png

pytestmark = pytest.mark.filterwarnings("ignore")

SIDE = 16
STORED = (np.arange(SIDE * SIDE).reshape(SIDE, SIDE) * 16).astype(np.uint16)  # 12-bit
GREY8 = (np.arange(SIDE * SIDE).reshape(SIDE, SIDE) % 256).astype(np.uint8)
CASES_PER_SEED = 36
HANG_SECONDS = 20


# -- seed files -------------------------------------------------------------------------------
def _png8(path: Path) -> None:
    write_png(path, GREY8)


def _png16(path: Path) -> None:
    write_png(path, STORED, sbit=12)


def _palette_png(path: Path) -> None:
    im = PILImage.fromarray((GREY8 % 16).astype(np.uint8), mode="P")
    im.putpalette([v for i in range(16) for v in (i * 16,) * 3])
    im.save(path, bits=4)


def _tiff16(path: Path) -> None:
    PILImage.fromarray(STORED).save(path, format="TIFF")


def _tiff8(path: Path) -> None:
    PILImage.fromarray(GREY8).save(path, format="TIFF", compression="tiff_lzw")


def _jpeg8(path: Path) -> None:
    PILImage.fromarray(GREY8).save(path, format="JPEG", quality=90)


def _jpeg12_lossless(path: Path) -> None:
    imagecodecs = pytest.importorskip("imagecodecs")
    path.write_bytes(imagecodecs.ljpeg_encode(STORED, bitspersample=12))


def _jpeg12(path: Path) -> None:
    imagecodecs = pytest.importorskip("imagecodecs")
    path.write_bytes(imagecodecs.jpeg8_encode(STORED, level=90, bitspersample=12))


def _dicom(path: Path) -> None:
    write_dicom(path, STORED, slope=1.0, intercept=0.0)


def _dicom_rle(path: Path) -> None:
    import pydicom
    from pydicom.uid import RLELossless

    write_dicom(path, STORED)
    ds = pydicom.dcmread(path)
    ds.compress(RLELossless)
    ds.save_as(path)


def _dicom_deflated(path: Path) -> None:
    import pydicom
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    write_dicom(path, STORED)
    ds = pydicom.dcmread(path)
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    ds.save_as(path)


def _dicom_j2k(path: Path) -> None:
    imagecodecs = pytest.importorskip("imagecodecs")
    import pydicom
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEG2000Lossless

    write_dicom(path, STORED)
    ds = pydicom.dcmread(path)
    ds.PixelData = encapsulate([imagecodecs.jpeg2k_encode(STORED, level=0, codecformat="j2k")])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = JPEG2000Lossless
    ds.save_as(path)


def _dicom_jpeg_lossless(path: Path) -> None:
    imagecodecs = pytest.importorskip("imagecodecs")
    import pydicom
    from pydicom.encaps import encapsulate

    write_dicom(path, STORED)
    ds = pydicom.dcmread(path)
    ds.PixelData = encapsulate([imagecodecs.ljpeg_encode(STORED, bitspersample=12)])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.70"
    ds.save_as(path)


SEEDS: dict[str, tuple[str, Callable[[Path], None]]] = {
    "png8": ("png", _png8),
    "png16": ("png", _png16),
    "palette-png": ("png", _palette_png),
    "tiff8": ("tif", _tiff8),
    "tiff16": ("tif", _tiff16),
    "jpeg8": ("jpg", _jpeg8),
    "jpeg12": ("jpg", _jpeg12),
    "jpeg-lossless": ("jpg", _jpeg12_lossless),
    "dicom": ("dcm", _dicom),
    "dicom-rle": ("dcm", _dicom_rle),
    "dicom-deflated": ("dcm", _dicom_deflated),
    "dicom-jpeg2000": ("dcm", _dicom_j2k),
    "dicom-jpeg-lossless": ("dcm", _dicom_jpeg_lossless),
}


# -- mutations --------------------------------------------------------------------------------
def mutations(data: bytes, rng: random.Random, count: int):
    """``count`` damaged copies of ``data``: random, truncated, bit-flipped, header-flipped."""
    for i in range(count):
        kind = i % 4
        if kind == 0:  # random bytes behind the real magic number (so the reader is reached)
            keep = rng.randrange(4, 140)
            yield data[:keep] + rng.randbytes(rng.randrange(0, 2 * len(data)))
        elif kind == 1:
            yield data[: rng.randrange(1, len(data))]
        else:
            buf = bytearray(data)
            span = min(len(buf), 200) if kind == 3 else len(buf)  # headers live up front
            for _ in range(rng.randrange(1, 9)):
                buf[rng.randrange(span)] ^= 1 << rng.randrange(8)
            yield bytes(buf)


@pytest.fixture
def small_budget(monkeypatch):
    monkeypatch.setenv("MEDBENCH_MAX_PIXELS", "4096")


@pytest.fixture
def alarm():
    """Turn a hang into a failure (SIGALRM); never asserts on time otherwise."""

    def hung(signum, frame):
        raise TimeoutError("a reader hung on a fuzzed file")

    previous = signal.signal(signal.SIGALRM, hung)
    yield lambda: signal.alarm(HANG_SECONDS)
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def check_case(path: Path) -> str:
    """Read ``path``; returns "refused" or "read", failing on anything else."""
    try:
        pixels, bit_depth, _ = read_image(path)
    except MedbenchError as exc:
        assert str(exc).strip(), "an empty error message"
        return "refused"
    assert pixels.ndim == 2 and 1 <= bit_depth <= 16
    assert pixels.dtype == dtype_for(bit_depth)
    assert pixels.size == 0 or int(pixels.max()) < 2**bit_depth
    assert pixels.size <= 4096
    try:
        probe = probe_image(path)
    except MedbenchError:
        return "read"
    assert (probe.height, probe.width, probe.bit_depth) == (*pixels.shape, bit_depth)
    return "read"


@pytest.mark.parametrize("name", sorted(SEEDS))
def test_fuzzed_files_are_read_or_refused_clearly(tmp_path, name, small_budget, alarm):
    suffix, make = SEEDS[name]
    seed = tmp_path / f"seed.{suffix}"
    make(seed)
    assert check_case(seed) == "read"  # the undamaged file reads
    data = seed.read_bytes()
    rng = random.Random(f"medbench-fuzz-{name}")
    outcomes = []
    for i, damaged in enumerate(mutations(data, rng, CASES_PER_SEED)):
        path = tmp_path / f"case{i}.{suffix}"
        path.write_bytes(damaged)
        alarm()
        outcomes.append(check_case(path))
        path.unlink()
    assert "refused" in outcomes  # the mutations do reach the readers' checks


def test_fuzzed_jsrt_raw_files(tmp_path, alarm):
    """JSRT ``.IMG`` has no header: only its length and value range can be checked."""
    rng = random.Random("medbench-fuzz-jsrt")
    words = (4095 - np.arange(2048 * 2048) % 4096).astype(">u2").tobytes()
    cases = [rng.randbytes(rng.randrange(0, 4096)) for _ in range(8)]  # far too short
    cases += [words[: rng.randrange(1, IMG_BYTES)] for _ in range(4)]  # truncated
    cases += [words + rng.randbytes(rng.randrange(1, 64)) for _ in range(2)]  # too long
    flipped = bytearray(words)
    for _ in range(64):
        flipped[rng.randrange(IMG_BYTES)] ^= 1 << rng.randrange(8)
    cases += [bytes(flipped), rng.randbytes(IMG_BYTES)]
    path = tmp_path / "JPCLN001.IMG"
    read = 0
    for data in cases:
        path.write_bytes(data)
        alarm()
        try:
            pixels, bits, _ = read_jsrt_img(path)
        except MedbenchError as exc:
            assert str(path) in str(exc)
            continue
        read += 1
        assert pixels.shape == (2048, 2048) and bits == 12 and int(pixels.max()) < 4096
    assert read <= 2  # only full-length files can read


def test_random_bytes_with_no_magic_are_refused(tmp_path, alarm):
    rng = random.Random("medbench-fuzz-none")
    for i in range(40):
        path = tmp_path / f"r{i}.png"
        path.write_bytes(rng.randbytes(rng.randrange(1, 600)))
        alarm()
        assert check_case(path) == "refused"


def test_fuzz_covers_every_sniffed_format():
    from medbench.datasets.formats import READERS

    seeded = {SEEDS[n][0] for n in SEEDS}
    assert {"png", "jpeg", "tiff", "dicom"} == set(READERS)
    assert {"png", "jpg", "tif", "dcm"} == seeded
