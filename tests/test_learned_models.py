"""The transforms of every registered architecture; the AE (dense, 16x16 blocks), CNN and
DCAE (PReLU) in detail."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from medbench.codecs.learned import archs
from medbench.codecs.learned.models import BlockAE, DeepCAE, pad_to_stride
from medbench.errors import MedbenchError


def build_model(arch, latent=None, width=None):
    return archs.new_model(arch, latent, width).net


@pytest.mark.parametrize("arch", archs.names())
@pytest.mark.parametrize("size", [(32, 48), (37, 53)])
def test_any_size_codes_after_padding_to_the_stride(arch, size):
    model = build_model(arch, latent=3, width=8)
    x = torch.rand(2, 1, *size)
    padded, pad_h, pad_w = pad_to_stride(x, model.stride)
    assert padded.shape[-2] % model.stride == 0 and padded.shape[-1] % model.stride == 0
    assert (pad_h, pad_w) == ((-size[0]) % model.stride, (-size[1]) % model.stride)
    y = model.encode(padded)
    assert y.shape == (2, 3, padded.shape[-2] // model.stride, padded.shape[-1] // model.stride)
    assert model.decode(y).shape == padded.shape


def test_padding_replicates_the_edges():
    x = torch.arange(6.0).view(1, 1, 2, 3)
    padded, pad_h, pad_w = pad_to_stride(x, 4)
    assert (pad_h, pad_w) == (2, 1)
    assert torch.equal(padded[0, 0, :2, :3], x[0, 0])
    assert padded[0, 0, 3, 3] == x[0, 0, 1, 2]


def test_ae_is_dense_only_and_works_on_blocks():
    model = build_model("ae", latent=16, width=64)
    assert isinstance(model, BlockAE) and model.stride == 16
    with_params = [m for m in model.modules() if any(True for _ in m.parameters(recurse=False))]
    assert with_params and all(isinstance(m, nn.Linear) for m in with_params)
    # a block's code depends on that block alone
    x = torch.rand(1, 1, 32, 32)
    y = model.encode(x)
    x2 = x.clone()
    x2[..., 16:, 16:] = 0
    y2 = model.encode(x2)
    assert torch.equal(y[..., 0, 0], y2[..., 0, 0]) and not torch.equal(y[..., 1, 1], y2[..., 1, 1])


def test_dcae_is_deep_fully_convolutional_with_prelu():
    model = build_model("dcae")
    assert isinstance(model, DeepCAE) and model.stride == 8
    kinds = {type(m) for m in model.modules()}
    assert nn.PReLU in kinds and nn.Linear not in kinds
    convs = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    assert len(convs) >= 10


def test_cnn_is_shallow():
    convs = [m for m in build_model("cnn").modules()
             if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    assert len(convs) == 4


def test_unknown_architecture():
    with pytest.raises(MedbenchError, match="known: ae, ckbd, cnn, dcae, hyperprior"):
        build_model("vit")
