"""HEVC intra (x265 in HEIF): monochrome at x265's depths, lossless, the QP knob, and
rows whose scores are those of the decoded stream."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from medbench.benchmark.cells import code_cell
from medbench.benchmark.metrics import psnr
from medbench.cli import main
from medbench.codecs import get_codec
from medbench.codecs.base import LOSSLESS
from medbench.codecs.hevc import coded_depth, qp_low
from medbench.errors import UnsupportedInput
from medbench.image import Image

pytest.importorskip("pillow_heif")


def hvcc(data: bytes) -> tuple[int, int]:
    """(chroma_format_idc, luma bit depth) from the hvcC box (ISO/IEC 14496-15 8.3.3.1)."""
    at = data.find(b"hvcC")
    assert at >= 0, "no hvcC box"
    body = data[at + 4:]
    return body[16] & 3, (body[17] & 7) + 8


@pytest.mark.parametrize(("bit_depth", "coded"), [(8, 8), (9, 10), (10, 10), (11, 12), (12, 12)])
def test_every_depth_is_monochrome_at_the_x265_depth_and_lossless_is_exact(
        bit_depth, coded, make_image):
    assert coded_depth(bit_depth) == coded
    codec = get_codec("hevc")
    image = make_image(40, bit_depth)  # not a multiple of 8: x265 pads, HEIF crops back
    for setting in ("qp=32", LOSSLESS):
        data = codec.encode(image, setting)
        assert data[4:11] == b"ftyphei" and hvcc(data) == (0, coded), setting
        decoded = codec.decode(data)
        assert decoded.shape == image.pixels.shape and decoded.dtype == image.pixels.dtype
    assert np.array_equal(decoded, image.pixels)  # the lossless one


def test_error_shrinks_as_qp_falls(make_image):
    codec = get_codec("hevc")
    image = make_image(96, 12, seed=2)
    errors = []
    for setting in ("qp=40", "qp=28", "qp=12", "qp=-12"):  # below 0: 12-bit QPs
        decoded = codec.decode(codec.encode(image, setting)).astype(np.int64)
        errors.append(float(np.mean((decoded - image.pixels) ** 2)))
    assert errors == sorted(errors, reverse=True) and errors[-1] < errors[0] / 100


@pytest.mark.parametrize(("setting", "bit_depth"),
                         [("qp=52", 8), ("qp=-1", 8), ("qp=-13", 10), ("qp=27.5", 8),
                          ("crf=27", 8)])
def test_out_of_range_qp_raises(setting, bit_depth, make_image):
    with pytest.raises(ValueError, match="qp|HEVC QP"):
        get_codec("hevc").encode(make_image(32, bit_depth), setting)


def test_knob_spans_the_depths_qp_range():
    codec = get_codec("hevc")
    assert qp_low(8) == 0 and qp_low(11) == qp_low(12) == -24
    knob = codec.knob(12)
    assert (knob.low, knob.high, knob.integer, knob.larger_is_smaller) == (-24, 51, True, True)
    assert codec.settings()[-1] == LOSSLESS and codec.settings()[0] == "qp=47"


def test_deeper_images_are_refused(make_image):
    with pytest.raises(UnsupportedInput, match="13-bit"):
        get_codec("hevc").encode(make_image(32, 13), "qp=27")


@pytest.mark.parametrize("bit_depth", [8, 12])
def test_a_row_scores_the_decode_of_the_stream_it_counts(bit_depth, make_image):
    codec = get_codec("hevc")
    image = make_image(64, bit_depth, seed=3)
    row = code_cell(codec, "qp=30", image, repeats=0)
    data = codec.encode(image, "qp=30")  # x265 is pinned: the same bytes again
    assert row.status == "ok" and row.bytes == len(data)
    assert row.stream_sha256 == hashlib.sha256(data).hexdigest()
    expected = psnr(image.pixels, codec.decode(data), data_range=2**bit_depth - 1)
    assert row.psnr == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("bit_depth", ["8", "native"])
def test_native_protocol_rows_at_8_and_12_bits(bit_depth, tmp_path):
    out = tmp_path / "run"
    result = CliRunner().invoke(main, [
        "run", "--codecs", "hevc", "--datasets", "synthetic:1@48", "--split", "all",
        "--protocol", "native", "--bit-depth", bit_depth, "--repeats", "0", "--out",
        str(out), "--no-progress", "--no-report"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    rows = pd.read_csv(out / "results.csv")
    assert (rows["status"] == "ok").all(), rows["error"].tolist()
    assert set(rows["bit_depth"]) == {8 if bit_depth == "8" else 12}
    lossless = rows[rows["setting"] == LOSSLESS]
    assert lossless["lossless_exact"].astype(bool).all()
    lossy = rows[rows["setting"] != LOSSLESS].sort_values("setting_rank")
    assert lossy["bpp"].is_monotonic_increasing and lossy["psnr"].is_monotonic_increasing


def test_refuses_corrupt_header_depths():
    """A stream that is no HEIF file is refused with a message, never returned."""
    with pytest.raises(Exception, match=r"\w"):
        get_codec("hevc").decode(b"\x00\x00\x00\x18ftypheic" + b"\x00" * 32)


def test_image_id_is_in_the_refusal(make_image):
    image = Image(make_image(32, 14).pixels, 14, "deep-one")
    with pytest.raises(UnsupportedInput, match="deep-one"):
        get_codec("hevc").check(image)
