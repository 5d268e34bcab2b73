"""Validation scores: PSNR from the benchmark's metrics, the same in training and from bytes."""

from __future__ import annotations

import math

import pytest
import torch

from medbench.codecs.learned.archs import new_model
from medbench.codecs.learned.entropy import build_tables
from medbench.training.data import SplitImages
from medbench.training.validation import evaluate, mean_finite, measure_split

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_mean_finite_leaves_exact_images_out():
    assert mean_finite([30.0, math.inf, 40.0]) == 35.0
    assert mean_finite([math.inf, math.inf]) == math.inf
    assert math.isnan(mean_finite([]))


@pytest.mark.parametrize("bit_depth", [8, 12])
def test_training_psnr_is_the_psnr_of_real_bitstreams(make_image, bit_depth):
    """The val PSNR the log shows (rounded latents, no bytes) is at the native peak."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = new_model("cnn", 2, 4)
    model.tables = build_tables(model.density)
    images = [make_image(32, bit_depth, seed) for seed in range(3)]
    split = SplitImages(images, "x", "val")
    device = torch.device("cpu")
    scored = evaluate(model, split, device, lmbda=0.0)
    measured = measure_split(model, split, device)
    assert math.isfinite(scored["psnr"])
    assert scored["psnr"] == pytest.approx(measured["psnr"], abs=1e-3)
    assert scored["loss"] == scored["mse"]  # no rate term without λ
    assert measured["bpp"] > 0
