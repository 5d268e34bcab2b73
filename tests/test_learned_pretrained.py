"""The shipped models (trained on NIH chest X-rays): made by ``medbench train``, recorded,
loadable, an RD curve each, and small."""

from __future__ import annotations

import json

import numpy as np
import pytest

from medbench.codecs import CodecContext, get_codec
from medbench.codecs.learned.checkpoint import file_id, find_checkpoints
from medbench.codecs.learned.codec import PRETRAINED_DIR
from medbench.codecs.learned.postfilter import read_filter
from medbench.datasets import get_dataset
from medbench.datasets.protocols import PAPER

ARCHS = ["ae", "cnn", "dcae", "hyperprior"]
README = PRETRAINED_DIR / "README.md"


def _check_recorded(cfg: dict, codec: str, folder) -> None:
    assert cfg["command"].startswith(f"medbench train --model {codec} --dataset nih")
    assert cfg["command"] in README.read_text()  # the exact command is written next to them
    assert cfg["train"]["dataset"] == "nih" and cfg["train"]["protocol"] == "paper"
    assert set(cfg["budget"]) >= {"device", "wall_s", "steps", "images_seen"}
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]


@pytest.mark.parametrize("arch", ARCHS)
def test_shipped_models_are_recorded_and_intact(arch):
    found = find_checkpoints(PRETRAINED_DIR, arch)
    assert len(found) >= 4  # an RD curve of at least four points
    for ckpt in found:
        cfg = json.loads((ckpt.folder / "config.json").read_text())
        _check_recorded(cfg, arch, ckpt.folder)
        assert cfg["model_id"] == file_id(ckpt.weights_path) == ckpt.model_id
    rates = sorted(c.config["validation"]["bpp"] for c in found)
    assert rates[0] < 0.2 and rates[-1] > 0.4  # spans low to high rate (about 0.05-1 bpp)


def test_shipped_postfilters_are_recorded_and_intact():
    folders = sorted(p for p in (PRETRAINED_DIR / "jpeg2000+pf").iterdir() if p.is_dir())
    assert len(folders) >= 4
    for folder in folders:
        ckpt, _ = read_filter(folder)
        _check_recorded(ckpt.config, "jpeg2000+pf", folder)
        assert ckpt.config["model_id"] == ckpt.model_id


def test_package_data_stays_small():
    size = sum(p.stat().st_size for p in PRETRAINED_DIR.rglob("*") if p.is_file())
    assert size < 15_000_000


@pytest.mark.parametrize("arch", [*ARCHS, "jpeg2000+pf"])
def test_shipped_models_code_a_sample_image(arch, tmp_path):
    codec = get_codec(arch, CodecContext(models_dir=tmp_path, device="cpu"))
    settings = codec.settings()
    rates = [codec.checkpoints()[s].config["validation"]["bpp"] for s in settings]
    assert rates == sorted(rates)  # low to high rate
    dataset = get_dataset("sample")
    image = PAPER.apply(dataset.load(dataset.records()[0]))
    for setting in (settings[0], settings[-1]):
        data = codec.encode(image, setting)
        decoded = codec.decode(data)
        assert decoded.shape == image.pixels.shape and decoded.dtype == np.uint8
        err = np.mean((decoded.astype(float) - image.pixels) ** 2)
        assert 10 * np.log10(255**2 / err) > 22  # trained, not noise (another dataset)
