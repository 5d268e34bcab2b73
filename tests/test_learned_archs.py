"""The architecture registry: one module declares a learned codec, with no other file edited.

A tiny architecture is installed as a real (fake) distribution declaring it in the
``medbench.architectures`` entry-point group; it then is a ``medbench train --model``
choice, a codec in ``medbench codecs``, and trains and codes like the built-ins.
"""

from __future__ import annotations

import sys

import pytest
from click.testing import CliRunner

from medbench.cli import main
from medbench.codecs import CodecContext, codec_names, get_codec, registry
from medbench.codecs.learned import archs
from medbench.codecs.learned.architecture import Architecture
from medbench.registry import DuplicateNameError

from .test_registry import _fake_distribution

pytestmark = pytest.mark.usefixtures("one_torch_thread", "no_pretrained")

TINY = """
    from medbench.codecs.learned.architecture import Architecture
    from medbench.codecs.learned.compression import CompressionModel
    from medbench.codecs.learned.models import ShallowCNN

    class TinyNet(ShallowCNN):
        arch = "tinycnn"

    ARCHITECTURE = Architecture(name="tinycnn", summary="A tiny test architecture.",
                                net=TinyNet, model=CompressionModel, latent=2, width=4)
"""


@pytest.fixture
def plugin_path(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    archs.reset()
    registry.reset()
    yield tmp_path
    archs.reset()
    registry.reset()
    for mod in [m for m in sys.modules if m.startswith("fake_")]:
        del sys.modules[mod]


def test_built_in_architectures_are_found_in_their_modules():
    found = archs.registered()
    assert {"ae", "cnn", "dcae", "hyperprior", "ckbd"} <= set(found)
    for name, spec in found.items():
        assert isinstance(spec, Architecture) and spec.net.arch == name
        assert name in codec_names()
        assert get_codec(name).magic == spec.magic
    assert len({spec.magic for spec in found.values()}) == len(found) - 2  # ae/cnn/dcae share


def test_an_architecture_in_one_module_is_a_train_choice_and_a_codec(plugin_path, make_image):
    _fake_distribution(plugin_path, "fake-arch",
                       "[medbench.architectures]\ntinycnn = fake_arch:ARCHITECTURE\n",
                       "fake_arch", TINY)
    runner = CliRunner()
    help_text = runner.invoke(main, ["train", "--help"]).output
    assert "tinycnn" in help_text and "tinycnn 2" in help_text  # choice and --latent default
    models = plugin_path / "models"
    listed = runner.invoke(main, ["codecs", "--models", str(models)])
    assert "tinycnn" in listed.output and "no trained tinycnn model" in listed.output
    result = runner.invoke(main, [
        "train", "--model", "tinycnn", "--dataset", "sample", "--size", "32", "--crop", "32",
        "--limit", "2", "--epochs", "1", "--device", "cpu", "--models", str(models),
        "--no-progress"])
    assert result.exit_code == 0, result.output
    codec = get_codec("tinycnn", CodecContext(models_dir=models, device="cpu"))
    assert codec.settings() == ["sample-l2"]
    image = make_image((32, 32), bit_depth=8)
    data = codec.encode(image, "sample-l2")
    assert data[:4] == b"MBLC" and codec.decode(data).shape == (32, 32)


def test_a_broken_architecture_is_reported_and_skipped(plugin_path):
    _fake_distribution(plugin_path, "fake-broken-arch",
                       "[medbench.architectures]\nnope = fake_broken_arch:ARCHITECTURE\n",
                       "fake_broken_arch", "raise ImportError('missing backend libfoo')\n")
    assert "nope" not in archs.names() and "hyperprior" in archs.names()
    assert "libfoo" in archs.broken["nope"]
    listed = CliRunner().invoke(main, ["codecs", "--models", str(plugin_path)]).output
    assert "nope" in listed and "libfoo" in listed and "ckbd" in listed


def test_a_second_architecture_of_one_name_is_an_error_naming_both(plugin_path):
    _fake_distribution(plugin_path, "fake-dup-arch",
                       "[medbench.architectures]\nckbd = fake_dup_arch:ARCHITECTURE\n",
                       "fake_dup_arch", TINY.replace('"tinycnn"', '"ckbd"'))
    with pytest.raises(DuplicateNameError, match="medbench.codecs.learned.archs.ckbd"):
        archs.registered()
