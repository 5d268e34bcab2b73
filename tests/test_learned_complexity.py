"""Parameters and MACs counted from the layers, checked against counts made by hand."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from medbench.codecs.learned.complexity import (
    PROBE,
    count_macs,
    count_params,
    filter_complexity,
    model_complexity,
)
from medbench.codecs.learned.models import GDN


def macs(layer: nn.Module, *shape: int) -> int:
    x = torch.zeros(*shape)
    return count_macs(layer, lambda: layer(x))


def test_conv2d_with_stride_counts_output_elements_times_its_inputs():
    # 8x8 outputs of 8 channels, each 3 input channels x 5x5 taps: 512 * 75.
    assert macs(nn.Conv2d(3, 8, 5, stride=2, padding=2), 1, 3, 16, 16) == 38_400
    # Grouped: 288 outputs, each sees 4 / 2 channels x 3x3 taps.
    assert macs(nn.Conv2d(4, 8, 3, padding=1, groups=2), 1, 4, 6, 6) == 5_184


def test_transposed_conv_counts_each_input_times_a_kernel_footprint():
    # 4 x 8 x 8 = 256 inputs, each multiplied into 2 output channels x 5x5 taps. Counting
    # output elements (2 x 16 x 16 x 4 x 25 = 51,200) would be 4x (the stride squared) too many.
    layer = nn.ConvTranspose2d(4, 2, 5, stride=2, padding=2, output_padding=1)
    assert macs(layer, 1, 4, 8, 8) == 12_800


def test_linear_and_gdn_and_a_batch():
    assert macs(nn.Linear(256, 16), 1, 3, 5, 256) == 15 * 16 * 256
    assert macs(GDN(6), 1, 6, 4, 4) == 96 * 6  # gamma (6x6) at each of 96 outputs
    assert macs(nn.Conv2d(1, 2, 3, padding=1), 3, 1, 4, 4) == 3 * 32 * 9  # every image
    assert macs(nn.ReLU(), 1, 2, 4, 4) == 0  # activations are not counted


def test_nested_layers_add_up_and_hooks_are_removed():
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(),
                        nn.Sequential(nn.Conv2d(4, 1, 1)))
    assert macs(net, 1, 1, 10, 10) == 100 * 4 * 9 + 100 * 4
    assert all(not m._forward_hooks for m in net.modules())


def test_cnn_model_by_hand():
    """cnn (latent 4, width 32): two 5x5 stride-2 convolutions each way.

    Per input pixel: 1->32 at 1/4 of the pixels gives 8 outputs x 25 = 200 MACs, and
    32->4 at 1/16 gives 1/4 output x 32 x 25 = 200; the decoder mirrors it (transposed:
    inputs x kernel), so 0.4 kMAC/pixel each way.
    """
    found = model_complexity("cnn", 4, 32)
    assert (found.kmac_per_pixel_enc, found.kmac_per_pixel_dec) == (0.4, 0.4)
    weights = (25 * 32 + 32) + (32 * 4 * 25 + 4) + (4 * 32 * 25 + 32) + (32 * 25 + 1)
    assert weights < found.params < weights + 100  # plus the small factorized density


def test_hyperprior_encoder_runs_the_hyper_synthesis_too():
    found = model_complexity("hyperprior", 48, 32)
    assert found.kmac_per_pixel_enc > found.kmac_per_pixel_dec > 0
    assert found.params == count_params(_new("hyperprior", 48, 32))


def test_filter_encoder_runs_no_learned_layer():
    from medbench.codecs.learned.postfilter import PostFilterNet

    net = PostFilterNet(4)
    found = filter_complexity(net)
    assert found.kmac_per_pixel_enc == 0 and found.params == count_params(net)
    x = torch.zeros(1, 1, PROBE, PROBE)
    assert found.kmac_per_pixel_dec == pytest.approx(
        count_macs(net, lambda: net(x)) / PROBE**2 / 1000, abs=1e-3)


def _new(arch: str, latent: int, width: int) -> nn.Module:
    from medbench.codecs.learned.archs import new_model

    return new_model(arch, latent, width)
