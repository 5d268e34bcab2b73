"""Shared test fixtures: small radiograph-like images and an isolated environment."""

from __future__ import annotations

import numpy as np
import pytest

from medbench.image import Image, dtype_for, peak_value


def radiograph_like(size: int | tuple[int, int], bit_depth: int, seed: int = 0) -> np.ndarray:
    """A smooth, noisy, radiograph-like test picture at ``bit_depth`` bits."""
    h, w = (size, size) if isinstance(size, int) else size
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    body = np.exp(-(((x - 0.5) / 0.35) ** 2 + ((y - 0.5) / 0.45) ** 2))
    ribs = 0.15 * np.sin(40 * y + 3 * np.sin(6 * x)) * body
    base = 0.15 + 0.6 * body + ribs
    noisy = base + rng.normal(0, 0.01, base.shape)
    peak = peak_value(bit_depth)
    return np.clip(np.rint(noisy * peak), 0, peak).astype(dtype_for(bit_depth))


@pytest.fixture
def make_image():
    def factory(size=64, bit_depth=8, seed=0, image_id="test"):
        return Image(radiograph_like(size, bit_depth, seed), bit_depth, image_id)

    return factory


@pytest.fixture(autouse=True)
def _isolated(tmp_path_factory, monkeypatch):
    """Keep caches and model folders of tests away from the user's home."""
    monkeypatch.setenv("MEDBENCH_CACHE", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.delenv("MEDBENCH_DATA", raising=False)
    # A run pins its OpenJPEG in the environment (codecs._openjpeg); undone after each test.
    monkeypatch.setenv("MEDBENCH_OPENJPEG", "")


@pytest.fixture
def one_torch_thread():
    """Tiny models run fastest on one thread (and share the CPU politely)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def no_pretrained(tmp_path_factory, monkeypatch):
    """Only the models a test trains are visible to the learned codecs (not the shipped)."""
    from medbench.codecs.learned import codec

    monkeypatch.setattr(codec, "PRETRAINED_DIR", tmp_path_factory.mktemp("none"))


def train_tiny_hyperprior(root, epochs: int = 1, model: str = "hyperprior",
                          budget: tuple[str, ...] = ()):
    """A tiny hyperprior (``<root>/<model>/tiny``; ``model`` another architecture of its
    options, e.g. ``ckbd``) trained for ``epochs`` (or ``budget``, e.g. ``("--steps",
    "3")``) on 64² sample images through the CLI, on one torch thread; returns ``root``."""
    import torch
    from click.testing import CliRunner

    from medbench.cli import main

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = CliRunner().invoke(main, [
            "train", "--model", model, "--dataset", "sample", "--size", "64",
            "--crop", "64", "--limit", "4", "--width", "8", "--latent", "8",
            *(budget or ("--epochs", str(epochs))), "--batch-size", "2", "--objective", "rd",
            "--lmbda", "0.01", "--device", "cpu", "--models", str(root), "--name", "tiny",
        ])
    finally:
        torch.set_num_threads(before)
    assert result.exit_code == 0, result.output
    return root
