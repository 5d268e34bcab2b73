"""JPEG 2000 never writes 8/16-bit precision in silence: a glymur without the hook that
sets the true precision is refused, and a hook that stops taking effect is caught."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from medbench.benchmark.cells import code_cell
from medbench.cli import main
from medbench.codecs import get_codec, jpeg2000
from medbench.codecs._openjpeg import import_glymur
from medbench.codecs.jpeg2000 import PRECISION_HOOK, Jpeg2000Codec
from medbench.errors import CodecUnavailable

glymur = pytest.importorskip("glymur")


@pytest.fixture
def hookless(monkeypatch):
    """glymur as a future version without Jp2k._populate_comptparms."""
    monkeypatch.delattr(import_glymur().Jp2k, PRECISION_HOOK)
    return import_glymur()


def test_a_glymur_without_the_precision_hook_is_refused(hookless, make_image, tmp_path):
    codec = Jpeg2000Codec()
    reason = codec.unavailable_reason()
    assert reason.startswith(f"glymur {hookless.__version__} no longer has "
                             f"Jp2k.{PRECISION_HOOK}, through which medbench writes a 12-bit "
                             "image as 12-bit (not 16-bit) JPEG 2000;")
    assert "pip install 'glymur==0.14.8'" in reason and "\n" not in reason
    assert get_codec("jpeg2000+pf").unavailable_reason() == reason
    image = make_image(64, bit_depth=12)
    with pytest.raises(CodecUnavailable, match="no longer has"):
        codec.encode(image, "ratio=10")
    row = code_cell(codec, "ratio=10", image)  # a cell asked anyway is an error row
    assert row.status == "error" and "no longer has" in row.error and row.bytes is None
    # The CLI refuses the codec in one line before anything is coded.
    out = CliRunner().invoke(main, ["run", "--codecs", "jpeg2000", "--out", str(tmp_path),
                                    "--no-progress", "--no-report"])
    assert out.exit_code != 0
    assert f"Error: codec jpeg2000 cannot run here: glymur {hookless.__version__}" in out.output
    assert "Traceback" not in out.output


def test_a_hook_that_no_longer_takes_effect_is_caught(monkeypatch, make_image):
    def plain_writer(glymur):  # what writing without the hook gives: 8 or 16 bits
        return lambda filename, *, precision, **kwargs: glymur.Jp2k(filename, **kwargs)

    monkeypatch.setattr(jpeg2000, "_precision_writer", plain_writer)
    codec = Jpeg2000Codec()
    with pytest.raises(RuntimeError, match="declaring 16-bit samples for a 12-bit image"):
        codec.encode(make_image(64, bit_depth=12), "ratio=10")
    assert codec.encode(make_image(64, bit_depth=8), "ratio=10")  # 8 bits: glymur's own


@pytest.mark.parametrize("bit_depth", [1, 10, 12, 15])
def test_streams_declare_the_image_s_precision(make_image, bit_depth):
    stream = Jpeg2000Codec().encode(make_image(64, bit_depth=bit_depth), "lossless")
    assert (stream[42] & 0x7F) + 1 == bit_depth  # T.800 A.5.1: Ssiz
