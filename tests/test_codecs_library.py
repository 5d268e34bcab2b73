"""``codec_library``: every codec names what writes its streams, and every coded row says it."""

from __future__ import annotations

from importlib.metadata import version
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from medbench.benchmark.cells import code_cell
from medbench.codecs import CodecContext, _openjpeg, codec_names, get_codec
from medbench.codecs._libraries import SITE_PACKAGES, display_path
from medbench.codecs.base import Codec
from medbench.codecs.byo import ByoCodec
from medbench.image import Image

CPU = f"cpu {torch.backends.cpu.get_cpu_capability()}"


def available(name: str) -> Codec:
    codec = get_codec(name, CodecContext(device="cpu"))
    reason = codec.unavailable_reason()
    if reason:
        pytest.skip(f"{name}: {reason}")
    return codec


@pytest.mark.parametrize("name", codec_names())
def test_every_codec_names_one_line(name):
    codec = get_codec(name, CodecContext(device="cpu"))
    setting = (codec.settings() if codec.unavailable_reason() is None else None) or ["x"]
    text = codec.library(setting[0])
    assert isinstance(text, str) and text.strip() and "\n" not in text


@pytest.mark.parametrize("name, start, contains", [
    ("jpeg", "libjpeg", " via Pillow "),
    ("jpeg12", "imagecodecs ", "(libjpeg_turbo "),
    ("htj2k", "imagecodecs ", "(openjph "),
    ("png", "imagecodecs ", "(libpng "),
    ("jpegxl", "imagecodecs ", "(libjxl "),
    ("avif", "imagecodecs ", "(libavif "),
    ("webp", "imagecodecs ", "(libwebp "),
    ("jpegls", "CharLS ", ", decoded by imagecodecs "),
    ("hevc", "pillow-heif ", ", x265 "),
])
def test_classical_codecs_name_their_library_and_version(name, start, contains):
    text = available(name).library("any")
    assert text.startswith(start) and contains in text
    assert any(ch.isdigit() for ch in text)  # a version


def test_jpeg2000_names_the_openjpeg_file_glymur_loaded():
    text = available("jpeg2000").library("ratio=10")
    found = _openjpeg.library_file()
    assert text == f"OpenJPEG {_openjpeg.import_glymur().version.openjpeg_version} " \
                   f"({display_path(found)})"
    assert found.is_file()
    assert available("jpeg2000+pf").library("nih-ratio10").startswith(f"{text}; filter: ")


@pytest.mark.parametrize("name", ["ae", "hyperprior"])
def test_learned_codecs_name_framework_coder_and_processor(name):
    codec = available(name)
    assert codec.library(codec.settings()[0]) == (
        f"medbench {version('medbench')} {name} (torch {torch.__version__}, "
        f"constriction {version('constriction')}, {CPU})")


def test_byo_names_its_factory(monkeypatch):
    monkeypatch.setattr(ByoCodec, "specs",
                        lambda self: {"q3": SimpleNamespace(factory="numpy.fake:make")})
    codec = ByoCodec(CodecContext(device="cpu"))
    assert codec.library("q3") == (f"byo numpy.fake:make (numpy {np.__version__}; "
                                   f"torch {torch.__version__}, {CPU})")


class Plugin(Codec):
    """A plugin codec that does not override ``library``."""

    name = "plugin"

    def settings(self):
        return ["lossless"]

    def encode(self, image, setting):
        return image.pixels.tobytes()

    def decode(self, data):
        return np.frombuffer(data, np.uint8).reshape(8, 8)


def test_a_plugin_is_named_by_its_distribution_and_class(monkeypatch):
    assert Plugin().library("lossless") == f"{__name__}.Plugin"  # no distribution
    monkeypatch.setattr(Plugin, "__module__", "numpy.plugin")
    assert Plugin().library("lossless") == f"numpy {np.__version__} (numpy.plugin.Plugin)"


def test_rows_carry_the_library_of_the_process_that_coded_them(make_image, monkeypatch):
    image = make_image(64)
    jpeg = available("jpeg")
    row = code_cell(jpeg, "q=50", image)
    assert row.status == "ok" and row.codec_library == jpeg.library("q=50")
    matched = code_cell(available("jpeg2000"), "target:ratio=10", image)
    assert matched.knob.startswith("ratio=") and matched.codec_library.startswith("OpenJPEG ")
    # A plugin whose library() raises still gets its row, which says so.
    monkeypatch.setattr(Plugin, "library", lambda self, s: (_ for _ in ()).throw(OSError("x")))
    row = code_cell(Plugin(), "lossless", Image(np.zeros((8, 8), np.uint8), 8, "z"))
    assert row.status == "ok" and row.codec_library == "unknown (OSError: x)"


def test_paths_in_this_environment_read_the_same_everywhere(tmp_path):
    import PIL

    inside = display_path(PIL.__file__)
    assert inside.startswith(f"{SITE_PACKAGES}/") and inside.endswith("PIL/__init__.py")
    assert display_path(tmp_path) == str(tmp_path.resolve())
