"""The contract every imagecodecs-backed codec keeps, and what happens without imagecodecs."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from click.testing import CliRunner

from medbench.benchmark.metrics import psnr
from medbench.cli import main
from medbench.codecs import codec_names, get_codec
from medbench.codecs._imagecodecs import import_imagecodecs
from medbench.errors import CodecUnavailable, UnsupportedInput

# name -> (accepted depths among 8/10/12/16, refused depths among 8/10/12/16, has lossless)
CONTRACT = {
    "jpeg12": ((8, 10, 12), (16,), True),
    "jpegls": ((8, 10, 12, 16), (), True),
    "htj2k": ((8, 10, 12, 16), (), True),
    "jpegxl": ((8, 10, 12, 16), (), True),
    "avif": ((8, 10, 12), (16,), True),
    "webp": ((8,), (10, 12, 16), True),
    "png": ((8, 10, 12, 16), (), True),
}
ROUND_TRIPS = [(n, b) for n, (ok, _, _) in CONTRACT.items() for b in ok]
REFUSALS = [(n, b) for n, (_, bad, _) in CONTRACT.items() for b in bad]


def test_all_are_registered_and_available_here():
    assert set(CONTRACT) <= set(codec_names())
    for name in CONTRACT:
        codec = get_codec(name)
        assert codec.kind == "classical" and codec.rate_knob
        assert codec.unavailable_reason() is None, name


@pytest.mark.parametrize(("name", "bit_depth"), ROUND_TRIPS)
def test_round_trip_every_setting(name, bit_depth, make_image):
    codec = get_codec(name)
    image = make_image((48, 72), bit_depth, seed=bit_depth)
    for setting in codec.settings():
        data = codec.encode(image, setting)
        assert isinstance(data, bytes) and len(data) > 0
        decoded = codec.decode(data)
        assert decoded.shape == image.pixels.shape, setting
        assert decoded.dtype == image.pixels.dtype, setting
        if codec.is_lossless(setting):
            np.testing.assert_array_equal(decoded, image.pixels, err_msg=f"{name} {setting}")
        else:
            # lossy but the same picture: well above the ~20 dB of a wrong scale or offset
            assert psnr(image.pixels, decoded, data_range=image.peak) > 25, setting


@pytest.mark.parametrize("name", sorted(CONTRACT))
def test_settings_are_ordered_by_rate(name, make_image):
    codec = get_codec(name)
    depth = max(d for d in CONTRACT[name][0] if d <= 12)  # 16-bit noise swamps small NEAR
    image = make_image(128, depth, seed=3)
    sizes = [len(codec.encode(image, s)) for s in codec.settings()]
    # low -> high rate; 2 % slack for neighbouring points that an encoder rounds alike
    for (a, sa), (b, sb) in zip(zip(codec.settings(), sizes), zip(codec.settings()[1:], sizes[1:])):
        assert sb >= 0.98 * sa, f"{name}: {b} ({sb} B) is smaller than {a} ({sa} B)"
    if len(sizes) > 2:
        assert sizes[-2] > 2 * sizes[0], f"{name}: the sweep spans too little rate: {sizes}"
    assert codec.settings()[-1] == "lossless" and CONTRACT[name][2]


@pytest.mark.parametrize(("name", "bit_depth"), REFUSALS)
def test_unsupported_depths_are_refused_with_the_reason(name, bit_depth, make_image):
    codec = get_codec(name)
    image = make_image(16, bit_depth)
    with pytest.raises(UnsupportedInput, match=f"{bit_depth}-bit"):
        codec.check(image)
    with pytest.raises(UnsupportedInput, match=name):
        codec.encode(image, codec.settings()[0])


@pytest.mark.parametrize(
    ("name", "bad"),
    [
        ("jpeg12", "q=0"),
        ("jpeg12", "q=101"),
        ("jpeg12", "q=50.5"),
        ("jpegls", "near=0"),
        ("jpegls", "near=256"),
        ("jpegls", "near=1.5"),
        ("htj2k", "qstep=0"),
        ("htj2k", "qstep=2"),
        ("jpegxl", "distance=0"),
        ("jpegxl", "distance=30"),
        ("avif", "q=100"),
        ("avif", "q=-1"),
        ("webp", "q=101"),
        ("png", "q=50"),
        ("jpegxl", "q=50"),
    ],
)
def test_out_of_range_settings_raise(name, bad, make_image):
    codec = get_codec(name)
    image = make_image(16, min(CONTRACT[name][0]))
    with pytest.raises(ValueError):
        codec.encode(image, bad)


@pytest.fixture
def no_imagecodecs(monkeypatch):
    """A Python without imagecodecs: importing it raises ImportError."""
    monkeypatch.setitem(sys.modules, "imagecodecs", None)


def test_missing_imagecodecs_names_the_requirement(no_imagecodecs):
    for name in CONTRACT:
        reason = get_codec(name).unavailable_reason()
        assert reason is not None and "pip install" in reason and "imagecodecs" in reason
    # the other codecs are unaffected
    assert get_codec("jpeg").unavailable_reason() is None


def test_a_build_without_one_format_loses_only_that_codec(monkeypatch):
    import imagecodecs

    monkeypatch.setattr(imagecodecs.JPEGXL, "available", False)
    reason = get_codec("jpegxl").unavailable_reason()
    assert reason is not None and "JPEGXL" in reason and "pip install" in reason
    assert get_codec("png").unavailable_reason() is None
    with pytest.raises(CodecUnavailable, match="JPEGXL"):
        import_imagecodecs("JPEGXL")


def test_cli_lists_unavailable_codecs_with_the_reason(no_imagecodecs):
    result = CliRunner().invoke(main, ["codecs"])
    assert result.exit_code == 0, result.output
    for name in CONTRACT:
        block = result.output.split(f"{name}  [", 1)[1].split("\n", 1)[0]
        assert "unavailable" in block and "imagecodecs" in block, block
    assert "jpeg2000  [classical, 1-16-bit, available]" in result.output


def test_run_all_skips_unavailable_codecs_with_a_note(no_imagecodecs):
    from medbench.benchmark.runner import resolve_codecs
    from medbench.codecs import CodecContext

    codecs, notes = resolve_codecs(None, CodecContext())  # what --codecs all resolves to
    names = {codec.name for codec in codecs}
    assert not names & set(CONTRACT) and {"jpeg", "jpeg2000"} <= names
    for name in CONTRACT:
        assert any(note.startswith(f"skipped codec {name}: ") for note in notes), name
