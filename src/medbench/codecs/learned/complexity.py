"""Complexity of a learned model: parameters, and multiply–accumulates per pixel counted
from its layers (the second axis of learned-codec comparisons; JPEG AI reports kMAC/px).

MACs are counted, not estimated from time: forward hooks on every layer that does
multiply–accumulates record its input and output shapes on a probe image, and each layer
adds

- ``Conv2d``: output elements × ``in_channels / groups`` × kernel area;
- ``ConvTranspose2d``: *input* elements × ``out_channels / groups`` × kernel area (every
  input sample is multiplied into a whole kernel footprint; counting output elements
  would be wrong by the stride squared). Products that land in the cropped ``padding``
  are counted, as implementations compute them;
- ``Linear``: output elements × ``in_features``;
- ``GDN`` (and its inverse): output elements × channels (the ``gamma`` matrix applied
  to the squared input at every position).

Biases, activations (ReLU, PReLU, LeakyReLU), GDN's square root and division, rounding,
padding, and the entropy coder (ANS over the coding tables) are not counted: they are a
few operations per sample, not per weight. The encoder's count is what ``compress`` runs
(analysis transform; for the hyperprior also the hyper-analysis and the hyper-synthesis
that gives the means and scales; for ``ckbd`` also its context model and both passes of
its entropy-parameter network), the decoder's what ``decompress`` runs (hyper-synthesis
and synthesis, plus ``ckbd``'s context and parameter passes; the post-filter for
``jpeg2000+pf``). Each architecture says which calls these are
(:meth:`~.models.Autoencoder.complexity_passes`). A masked convolution (``ckbd``'s
checkerboard context) is counted as the dense convolution implementations run, zero taps
included. Per pixel means per pixel of the
probe image (:data:`PROBE`, a multiple of every model's padding), so the numbers do not
depend on image size.

Parameters count every trained tensor of the model (transforms, hyper transforms and the
factorized density), not the coding tables frozen from the density.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import torch
from torch import nn

from medbench.codecs.learned.archs import new_model
from medbench.codecs.learned.models import GDN

#: Side of the probe image the layers are counted on (a multiple of 64, the largest
#: padding multiple of the shipped architectures).
PROBE = 256


@dataclass(frozen=True)
class Complexity:
    """A model's ``params`` and encoder/decoder kMAC per pixel."""

    params: int
    kmac_per_pixel_enc: float
    kmac_per_pixel_dec: float

    def as_dict(self) -> dict[str, float]:
        return {"params": self.params, "kmac_per_pixel_enc": self.kmac_per_pixel_enc,
                "kmac_per_pixel_dec": self.kmac_per_pixel_dec}


def layer_macs(layer: nn.Module, inputs: torch.Tensor, output: torch.Tensor) -> int:
    """Multiply–accumulates of one call of ``layer`` (0 for layers not counted).

    Parameters
    ----------
    layer
        The module called.
    inputs, output
        Its first input and its output (any batch size: all elements count).
    """
    if isinstance(layer, nn.ConvTranspose2d):
        kernel = layer.kernel_size[0] * layer.kernel_size[1]
        return inputs.numel() * (layer.out_channels // layer.groups) * kernel
    if isinstance(layer, nn.Conv2d):
        kernel = layer.kernel_size[0] * layer.kernel_size[1]
        return output.numel() * (layer.in_channels // layer.groups) * kernel
    if isinstance(layer, nn.Linear):
        return output.numel() * layer.in_features
    if isinstance(layer, GDN):
        return output.numel() * layer.beta.numel()
    return 0


def count_macs(module: nn.Module, run: Callable[[], object]) -> int:
    """Multiply–accumulates of every counted layer of ``module`` while ``run()`` runs.

    Parameters
    ----------
    module
        The model whose layers are hooked (all of its submodules).
    run
        Calls the model (e.g. ``lambda: net.encode(x)``) under ``torch.no_grad``.
    """
    total = 0

    def hook(layer: nn.Module, args: tuple, output: torch.Tensor) -> None:
        nonlocal total
        total += layer_macs(layer, args[0], output)

    handles = [m.register_forward_hook(hook) for m in module.modules()
               if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear, GDN))]
    try:
        with torch.no_grad():
            run()
    finally:
        for handle in handles:
            handle.remove()
    return total


def count_params(module: nn.Module) -> int:
    """Elements of every parameter of ``module``."""
    return sum(p.numel() for p in module.parameters())


def _kmac(macs: int, side: int) -> float:
    return round(macs / (side * side) / 1000.0, 3)


@cache
def model_complexity(arch: str, latent: int, width: int, components: int = 3) -> Complexity:
    """:class:`Complexity` of a compression model of this shape (weights do not matter,
    so a fresh model is counted; the result is cached per shape).

    Parameters
    ----------
    arch, latent, width, components
        As in the model's ``config.json``.
    """
    model = new_model(arch, latent, width, components).eval()
    net = model.net
    with torch.no_grad():
        encode, decode = net.complexity_passes(torch.zeros(1, 1, PROBE, PROBE))
    return Complexity(count_params(model), _kmac(count_macs(net, encode), PROBE),
                      _kmac(count_macs(net, decode), PROBE))


def filter_complexity(net: nn.Module) -> Complexity:
    """:class:`Complexity` of a decoder-side post-filter: the encoder runs no learned
    layer (0 kMAC/px), the decoder the filter on every pixel."""
    x = torch.zeros(1, 1, PROBE, PROBE)
    return Complexity(count_params(net), 0.0, _kmac(count_macs(net, lambda: net(x)), PROBE))
