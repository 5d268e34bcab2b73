"""The shipped ``sample`` models: made by ``medbench train``, loadable, an RD curve each."""

from __future__ import annotations

import json

import numpy as np
import pytest

from medbench.codecs import CodecContext, get_codec
from medbench.codecs.learned.checkpoint import file_id, find_checkpoints
from medbench.codecs.learned.codec import PRETRAINED_DIR
from medbench.datasets import get_dataset
from medbench.datasets.protocols import PAPER


@pytest.mark.parametrize("arch", ["ae", "cnn", "dcae"])
def test_shipped_models_are_recorded_and_intact(arch):
    found = find_checkpoints(PRETRAINED_DIR, arch)
    assert len(found) >= 3  # an RD curve, not a point
    readme = (PRETRAINED_DIR / "README.md").read_text()
    for ckpt in found:
        cfg = json.loads((ckpt.folder / "config.json").read_text())
        assert cfg["command"].startswith(f"medbench train --model {arch} --dataset sample")
        assert cfg["command"] in readme  # the exact command is written next to them
        assert cfg["model_id"] == file_id(ckpt.weights_path) == ckpt.model_id
        assert cfg["train"]["dataset"] == "sample" and cfg["train"]["protocol"] == "paper"
        assert set(cfg["budget"]) >= {"device", "wall_s", "steps", "images_seen"}
        assert sorted(p.name for p in ckpt.folder.iterdir()) == ["config.json",
                                                                "model.safetensors"]
    size = sum(p.stat().st_size for p in PRETRAINED_DIR.rglob("*") if p.is_file())
    assert size < 5_000_000


@pytest.mark.parametrize("arch", ["ae", "cnn", "dcae"])
def test_shipped_models_code_a_sample_image(arch, tmp_path):
    codec = get_codec(arch, CodecContext(models_dir=tmp_path, device="cpu"))
    settings = codec.settings()
    rates = [codec.checkpoint(s).config["validation"]["bpp"] for s in settings]
    assert rates == sorted(rates)  # low to high rate
    dataset = get_dataset("sample")
    image = PAPER.apply(dataset.load(dataset.records()[0]))
    for setting in (settings[0], settings[-1]):
        data = codec.encode(image, setting)
        decoded = codec.decode(data)
        assert decoded.shape == image.pixels.shape and decoded.dtype == np.uint8
        err = np.mean((decoded.astype(float) - image.pixels) ** 2)
        assert 10 * np.log10(255**2 / err) > 25  # trained, not noise
