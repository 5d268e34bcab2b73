"""The seed paper's three autoencoders, as analysis/synthesis transforms of a codec.

The architectures themselves (name, default sizes, entropy model, codec) are declared in
:mod:`.archs`, one module each; this module holds the transforms they share.

Every model maps a batch of grayscale images ``(B, 1, H, W)`` in ``[0, 1]`` (pixels
divided by ``2**bit_depth - 1``) to latents ``(B, L, H/s, W/s)`` and back, where ``s``
is the model's ``stride`` and ``L`` its ``latent`` channels. Callers pad to a multiple
of ``stride`` and crop back (:func:`pad_to_stride`), so every model accepts any size.

``ae``
    Dense layers only, applied to non-overlapping 16×16 blocks: each block of 256 pixels
    becomes ``L`` latents, one per latent channel. A dense layer over the whole 256×256
    image (as the paper's figure suggests) needs 65,536 × hidden weights per layer
    (about 67 M for 1,024 hidden units), fits only one image size, and would not fit in
    a few-MB checkpoint; blocks keep the model dense-only while making it usable at any
    size and on any dataset. The price is visible block edges at low rates.
``cnn``
    A shallow convolutional autoencoder: two 5×5 stride-2 convolutions with ReLU, and
    two transposed convolutions back (stride 4).
``dcae``
    A deep convolutional autoencoder with PReLU activations after Cheng et al. (2018):
    three 5×5 stride-2 convolutions with residual blocks at 1/4 resolution, mirrored by
    transposed convolutions (stride 8). Fully convolutional.
``hyperprior``
    The mean-scale hyperprior of Minnen, Ballé and Toderici (2018) without its
    autoregressive context: four 5×5 stride-2 convolutions with GDN (``width``
    channels, ``latent`` at 1/16), and a hyper-analysis/synthesis pair at a further 1/4
    whose output is a mean and a scale per latent (see :mod:`.hyperprior` for its
    coding). Images are padded to a multiple of 64.

References
----------
Z. Cheng, H. Sun, M. Takeuchi, J. Katto, "Deep convolutional autoencoder-based lossy
image compression", Picture Coding Symposium, 2018, doi:10.1109/PCS.2018.8456308.
D. Minnen, J. Ballé, G. Toderici, "Joint autoregressive and hierarchical priors for
learned image compression", NeurIPS 2018, arXiv:1809.02736.
J. Ballé, V. Laparra, E. P. Simoncelli, "Density modeling of images using a generalized
normalization transformation", ICLR 2016, arXiv:1511.06281 (GDN).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


class Autoencoder(nn.Module):
    """Base of the three models: ``encode`` (analysis) and ``decode`` (synthesis)."""

    arch: str = ""
    stride: int = 1
    #: Images are padded to a multiple of this (the stride, unless a hyper-latent
    #: grid is coarser).
    pad_multiple: int = 1

    def __init__(self, latent: int, width: int):
        super().__init__()
        if latent < 1 or width < 1:
            raise ValueError(f"latent and width must be positive, got {latent}, {width}")
        self.latent = latent
        self.width = width

    @property
    def density_channels(self) -> int:
        """Channels of what the factorized density codes (the latents here)."""
        return self.latent

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Latents of images in ``[0, 1]`` (centred on mid-grey before the first layer)."""
        return self._encode(x - 0.5)

    def decode(self, y: torch.Tensor) -> torch.Tensor:
        """Images (about ``[0, 1]``, not yet clipped) from latents."""
        return self._decode(y) + 0.5

    def _encode(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def _decode(self, y: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def complexity_passes(self, x: torch.Tensor) -> tuple[Callable[[], object],
                                                          Callable[[], object]]:
        """What compress and decompress run through the layers, as two calls (encoder,
        decoder) on images ``x``; what they need from each other is computed here, so
        :mod:`.complexity` counts only the layers each side runs."""
        y = self.encode(x)
        return (lambda: self.encode(x)), (lambda: self.decode(y))

    def config(self) -> dict[str, Any]:
        return {"arch": self.arch, "latent": self.latent, "width": self.width,
                "stride": self.stride}


class BlockAE(Autoencoder):
    """Fully connected autoencoder on non-overlapping 16×16 blocks."""

    arch = "ae"
    stride = pad_multiple = 16

    def __init__(self, latent: int, width: int):
        super().__init__(latent, width)
        n = self.stride * self.stride
        self.enc = nn.Sequential(
            nn.Linear(n, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(),
            nn.Linear(width, latent),
        )
        self.dec = nn.Sequential(
            nn.Linear(latent, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(),
            nn.Linear(width, n),
        )

    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        s = self.stride
        blocks = x.reshape(b, h // s, s, w // s, s).permute(0, 1, 3, 2, 4)
        code = self.enc(blocks.reshape(b, h // s, w // s, s * s))
        return code.permute(0, 3, 1, 2).contiguous()

    def _decode(self, y: torch.Tensor) -> torch.Tensor:
        b, _, hb, wb = y.shape
        s = self.stride
        blocks = self.dec(y.permute(0, 2, 3, 1)).reshape(b, hb, wb, s, s)
        return blocks.permute(0, 1, 3, 2, 4).reshape(b, 1, hb * s, wb * s)


def _down(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=5, stride=2, padding=2)


def _up(cin: int, cout: int) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(cin, cout, kernel_size=5, stride=2, padding=2, output_padding=1)


class ShallowCNN(Autoencoder):
    """Two strided convolutions down, two transposed convolutions up (ReLU)."""

    arch = "cnn"
    stride = pad_multiple = 4

    def __init__(self, latent: int, width: int):
        super().__init__(latent, width)
        self.enc = nn.Sequential(_down(1, width), nn.ReLU(), _down(width, latent))
        self.dec = nn.Sequential(_up(latent, width), nn.ReLU(), _up(width, 1))

    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.enc(x)

    def _decode(self, y: torch.Tensor) -> torch.Tensor:
        return self.dec(y)


class _Residual(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1), nn.PReLU(channels),
            nn.Conv2d(channels, channels, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class DeepCAE(Autoencoder):
    """Deep convolutional autoencoder with PReLU and residual blocks (stride 8)."""

    arch = "dcae"
    stride = pad_multiple = 8
    blocks = 2

    def __init__(self, latent: int, width: int):
        super().__init__(latent, width)
        w2 = 2 * width
        self.enc = nn.Sequential(
            _down(1, width), nn.PReLU(width),
            _down(width, w2), nn.PReLU(w2),
            *[_Residual(w2) for _ in range(self.blocks)],
            _down(w2, latent),
        )
        self.dec = nn.Sequential(
            _up(latent, w2), nn.PReLU(w2),
            *[_Residual(w2) for _ in range(self.blocks)],
            _up(w2, width), nn.PReLU(width),
            _up(width, 1),
        )

    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.enc(x)

    def _decode(self, y: torch.Tensor) -> torch.Tensor:
        return self.dec(y)


class GDN(nn.Module):
    """Generalized divisive normalization (or its inverse, for synthesis).

    ``y_i = x_i / sqrt(beta_i + sum_j gamma_ij x_j**2)``; ``beta`` and ``gamma`` are
    kept positive by taking absolute values (the simplified GDN of Johnston et al. 2019).
    """

    def __init__(self, channels: int, inverse: bool = False):
        super().__init__()
        self.inverse = inverse
        self.beta = nn.Parameter(torch.ones(channels))
        self.gamma = nn.Parameter(0.1 * torch.eye(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        beta = self.beta.abs() + 1e-6
        gamma = self.gamma.abs()[:, :, None, None]
        norm = torch.sqrt(F.conv2d(x * x, gamma, beta))
        return x * norm if self.inverse else x / norm


class MeanScaleHyperprior(Autoencoder):
    """Analysis/synthesis with GDN (stride 16) and a mean-scale hyper-prior (stride 4 more).

    ``encode``/``decode`` are the main transforms; ``hyper_encode`` gives the hyper-latents
    ``z`` of latents ``y`` and ``hyper_decode`` the raw ``(means, scale parameters)`` of
    ``y`` from ``z`` (the codec turns them into coding tables, see :mod:`.hyperprior`).
    """

    arch = "hyperprior"
    stride = 16
    hyper_stride = 4
    pad_multiple = 64

    def __init__(self, latent: int, width: int):
        super().__init__(latent, width)
        n, m = width, latent
        mid = max(1, m * 3 // 2)
        self.enc = nn.Sequential(
            _down(1, n), GDN(n), _down(n, n), GDN(n), _down(n, n), GDN(n), _down(n, m),
        )
        self.dec = nn.Sequential(
            _up(m, n), GDN(n, inverse=True), _up(n, n), GDN(n, inverse=True),
            _up(n, n), GDN(n, inverse=True), _up(n, 1),
        )
        self.hyper_enc = nn.Sequential(
            nn.Conv2d(m, n, 3, padding=1), nn.LeakyReLU(),
            _down(n, n), nn.LeakyReLU(), _down(n, n),
        )
        self.hyper_dec = nn.Sequential(
            _up(n, m), nn.LeakyReLU(), _up(m, mid), nn.LeakyReLU(),
            nn.Conv2d(mid, 2 * m, 3, padding=1),
        )

    @property
    def density_channels(self) -> int:
        """The factorized density codes the hyper-latents (``width`` channels)."""
        return self.width

    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.enc(x)

    def _decode(self, y: torch.Tensor) -> torch.Tensor:
        return self.dec(y)

    def hyper_encode(self, y: torch.Tensor) -> torch.Tensor:
        return self.hyper_enc(y)

    def hyper_decode(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Means and raw scale parameters of the latents (``(B, latent, ...)`` each)."""
        means, raw = self.hyper_dec(z).chunk(2, dim=1)
        return means, raw

    def complexity_passes(self, x: torch.Tensor) -> tuple[Callable[[], object],
                                                          Callable[[], object]]:
        """Encoder: analysis, hyper-analysis and the hyper-synthesis giving the means and
        scales; decoder: hyper-synthesis and synthesis."""
        y = self.encode(x)
        z = self.hyper_encode(y)
        return ((lambda: self.hyper_decode(self.hyper_encode(self.encode(x)))),
                (lambda: (self.hyper_decode(z), self.decode(y))))


def pad_to_stride(x: torch.Tensor, stride: int) -> tuple[torch.Tensor, int, int]:
    """Pad the bottom/right edges of ``(B, C, H, W)`` by edge replication to a multiple of
    ``stride``; returns the padded tensor and the two pad widths (crop them back after)."""
    h, w = x.shape[-2:]
    pad_h, pad_w = (-h) % stride, (-w) % stride
    if pad_h or pad_w:
        x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
    return x, pad_h, pad_w
