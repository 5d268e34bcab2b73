"""Codecs found through the ``medbench.codecs`` entry-point group, like outside plugins."""

from __future__ import annotations

import sys
import textwrap

import pytest

from medbench.codecs import codec_names, get_codec, registry
from medbench.errors import UnknownNameError
from medbench.registry import DuplicateNameError


def _fake_distribution(root, name, entry_points: str, module: str, source: str):
    """A minimal installed distribution (dist-info + module) under ``root``."""
    (root / f"{module}.py").write_text(textwrap.dedent(source))
    info = root / f"{name}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(textwrap.dedent(entry_points))


PLUGIN = """
    import numpy as np
    from medbench.codecs.base import Codec

    class RawCodec(Codec):
        name = "raw-plugin"
        bit_depths = (8,)
        def settings(self):
            return ["lossless"]
        def encode(self, image, setting):
            return image.pixels.tobytes() + image.pixels.shape[1].to_bytes(4, "big")
        def decode(self, data):
            w = int.from_bytes(data[-4:], "big")
            return np.frombuffer(data[:-4], np.uint8).reshape(-1, w)
"""


@pytest.fixture
def plugin_path(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    registry.reset()
    yield tmp_path
    registry.reset()
    for mod in [m for m in sys.modules if m.startswith("fake_")]:
        del sys.modules[mod]


def test_plugin_registered_by_entry_point_shows_up(plugin_path, make_image):
    _fake_distribution(
        plugin_path, "fake-raw", "[medbench.codecs]\nraw-plugin = fake_raw:RawCodec\n",
        "fake_raw", PLUGIN,
    )
    assert "raw-plugin" in codec_names()
    assert {"jpeg", "jpeg2000"} <= set(codec_names())  # built-ins come the same way
    codec = get_codec("raw-plugin")
    image = make_image(16, 8)
    assert (codec.decode(codec.encode(image, "lossless")) == image.pixels).all()


def test_broken_plugin_is_reported_and_skipped(plugin_path):
    _fake_distribution(
        plugin_path, "fake-broken", "[medbench.codecs]\nbroken = fake_broken:Nope\n",
        "fake_broken", "raise ImportError('missing backend libfoo')\n",
    )
    names = codec_names()
    assert "broken" not in names and "jpeg" in names
    assert "libfoo" in registry.broken["broken"]


def test_duplicate_name_is_an_error_naming_both(plugin_path):
    _fake_distribution(
        plugin_path, "fake-dup", "[medbench.codecs]\njpeg = fake_dup:RawCodec\n",
        "fake_dup", PLUGIN,
    )
    with pytest.raises(DuplicateNameError) as caught:
        codec_names()
    message = str(caught.value)
    assert message.startswith("codec name 'jpeg' is registered twice: by ")
    assert "fake_dup:RawCodec" in message and "medbench.codecs.jpeg:JpegCodec" in message


def test_unknown_name_lists_known_ones():
    with pytest.raises(UnknownNameError, match=r"known codecs: .*\bjpeg, .*\bjpeg2000\b"):
        get_codec("nope")
