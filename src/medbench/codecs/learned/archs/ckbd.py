"""``ckbd``: the checkerboard context model (He et al. 2021) on the mean-scale hyperprior.

The transforms, hyper-transforms and hyper-latent coding are the ``hyperprior``'s
(:mod:`..hyperprior`). The latents ``y`` (``latent`` channels at 1/16) are split by a
checkerboard over the latent grid: **anchors** at ``(i + j)`` even, **non-anchors** at
``(i + j)`` odd. The hyper-synthesis gives ``2·latent`` features; a small network of
1×1 convolutions (``entropy_params``: ``4L → 10L/3 → 8L/3 → 2L``, LeakyReLU) turns them,
concatenated with ``2·latent`` context features, into a mean and a scale per latent:

1. anchors: context zero, so their parameters come from the hyperprior alone;
2. non-anchors: context from a 5×5 convolution over the *decoded* anchors (non-anchors
   zeroed) whose taps at even offsets are masked, so it sees anchors only.

Both passes run over the whole grid at once, so decoding is two parallel steps, not a
raster scan. Training follows the hyperprior: the rate of ``y + noise`` (additive
uniform noise) under the Gaussian of its mean and scale, the decoder and the context
fed with ``mean + round(y - mean)`` through a straight-through gradient, so the context
sees during training exactly what the decoder will have.

**Determinism.** As for the hyperprior (see :mod:`..hyperprior`), everything that
chooses a table or a mean runs on the CPU in float64 and is snapped before use: the
hyper-synthesis, the context convolution and the parameter network (weights cast from
the stored float32; ``z`` integers, decoded anchors on the 1/64 mean grid, so the
context's input is exact); means are snapped to multiples of 1/64 and scales to the
index of the fixed ladder of :mod:`..gaussian`, whose integer tables code both passes.

Stream layout (big-endian; see :mod:`..bitstream` for the first 20 bytes)::

    offset     size field
    0          4    magic  b"MBCK"
    4          1    format version (1)
    5          8    model id
    13         1    bit depth (1..16)
    14         2    height
    16         2    width
    18         1    rows of padding (to a multiple of 64)
    19         1    columns of padding
    20         4    bytes of the hyper-latent payload (Z)
    24         4    bytes of the anchor payload (A)
    28         4    bytes of the non-anchor payload (N)
    32         Z    ANS words of z (factorized tables)
    32+Z       A    ANS words of the anchors' symbols, channel-major raster order
    32+Z+A     N    ANS words of the non-anchors' symbols, same order

Every byte counts towards the rate.

References
----------
D. He, Y. Zheng, B. Sun, Y. Wang, H. Qin, "Checkerboard context model for efficient
learned image compression", CVPR 2021, arXiv:2103.15306.
D. Minnen, J. Ballé, G. Toderici, "Joint autoregressive and hierarchical priors for
learned image compression", NeurIPS 2018, arXiv:1809.02736.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from medbench.codecs.learned import gaussian
from medbench.codecs.learned.architecture import Architecture
from medbench.codecs.learned.bitstream import BitstreamError, Header, pack, unpack
from medbench.codecs.learned.entropy import (
    LATENT_MAX,
    LATENT_MIN,
    StreamError,
    decode_latents,
    encode_latents,
    min_payload_bits,
)
from medbench.codecs.learned.hyperprior import HyperpriorModel
from medbench.codecs.learned.models import MeanScaleHyperprior, pad_to_stride
from medbench.codecs.limits import check_declared_size
from medbench.image import Image, dtype_for, peak_value

MAGIC = b"MBCK"
_LENGTHS = struct.Struct(">III")

__all__ = ["CheckerboardConv", "CheckerboardHyperprior", "CheckerboardModel",
           "anchor_mask", "stream_latents", "MAGIC", "ARCHITECTURE"]


def anchor_mask(h: int, w: int) -> np.ndarray:
    """Anchors of an ``h × w`` latent grid (bool): ``(i + j)`` even."""
    i, j = np.indices((h, w))
    return (i + j) % 2 == 0


class CheckerboardConv(nn.Conv2d):
    """A ``k × k`` convolution (odd ``k``) whose taps at even offsets from the centre (the
    centre included) are zero: at a non-anchor it sees only anchors.

    The mask multiplies the weight at every call, so masked taps get no gradient and the
    stored weights hold whatever they were initialised to there.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 5):
        super().__init__(in_channels, out_channels, kernel_size, padding=kernel_size // 2)
        a, b = np.indices((kernel_size, kernel_size))
        mask = torch.from_numpy(((a + b) % 2 == 1).astype(np.float32))
        self.register_buffer("mask", mask, persistent=False)  # derived, not stored

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.mask.to(self.weight.dtype), self.bias,
                        padding=self.padding)


def _quantise_ste(y: torch.Tensor, means: torch.Tensor) -> torch.Tensor:
    """``means + round(y - means)`` with the gradient of ``y`` (straight through)."""
    return means + (torch.round(y - means) - (y - means)).detach() + (y - means)


def _quantise(y: torch.Tensor, means: torch.Tensor) -> torch.Tensor:
    return means + torch.round(y - means)


class CheckerboardHyperprior(MeanScaleHyperprior):
    """The hyperprior's transforms plus the checkerboard context and the parameter network.

    ``hyper_dec`` gives ``2·latent`` features (not means and scales directly);
    :meth:`checkerboard_params` turns them and the decoded anchors into both.
    """

    arch = "ckbd"

    def __init__(self, latent: int, width: int):
        super().__init__(latent, width)
        m = latent
        self.context = CheckerboardConv(m, 2 * m, 5)
        self.entropy_params = nn.Sequential(
            nn.Conv2d(4 * m, max(1, 10 * m // 3), 1), nn.LeakyReLU(),
            nn.Conv2d(max(1, 10 * m // 3), max(1, 8 * m // 3), 1), nn.LeakyReLU(),
            nn.Conv2d(max(1, 8 * m // 3), 2 * m, 1),
        )

    def checkerboard_params(self, hyper: torch.Tensor, y: torch.Tensor,
                            quantise: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
                            ) -> tuple[torch.Tensor, torch.Tensor]:
        """Means and raw scales of ``y`` from hyper features: anchors with context zero,
        non-anchors with the context of the anchors as ``quantise(y, means)`` decodes them."""
        h, w = y.shape[-2:]
        anchor = torch.from_numpy(anchor_mask(h, w)).to(y.device)[None, None]
        means_a, raw_a = self.entropy_params(
            torch.cat([hyper, torch.zeros_like(hyper)], dim=1)).chunk(2, dim=1)
        anchors = torch.where(anchor, quantise(y, means_a), torch.zeros_like(y))
        ctx = self.context(anchors)
        means_n, raw_n = self.entropy_params(torch.cat([hyper, ctx], dim=1)).chunk(2, dim=1)
        return torch.where(anchor, means_a, means_n), torch.where(anchor, raw_a, raw_n)

    def complexity_passes(self, x: torch.Tensor) -> tuple[Callable[[], object],
                                                          Callable[[], object]]:
        """Both sides run the hyper-synthesis, the anchor pass of the parameter network,
        the context and the non-anchor pass; the encoder also the analyses, the decoder
        the synthesis."""
        y = self.encode(x)
        z = self.hyper_encode(y)

        def encoder() -> None:
            y_ = self.encode(x)
            self.checkerboard_params(self.hyper_dec(self.hyper_encode(y_)), y_, _quantise)

        def decoder() -> None:
            self.checkerboard_params(self.hyper_dec(z), y, _quantise)
            self.decode(y)

        return encoder, decoder


class CheckerboardModel(HyperpriorModel):
    """The hyperprior's entropy model with the checkerboard's two passes (same tables:
    factorized for ``z``, the Gaussian ladder for both halves of ``y``)."""

    magic = MAGIC
    net: CheckerboardHyperprior

    # -- training ----------------------------------------------------------------------
    def _rd_params(self, z: torch.Tensor, y: torch.Tensor, straight_through: bool
                   ) -> tuple[torch.Tensor, torch.Tensor]:
        """The checkerboard's means and scales (the hyperprior's training pass and
        estimate do the rest): anchors from ``z``, non-anchors from ``z`` and the
        quantised anchors of ``y``."""
        quantise = _quantise_ste if straight_through else _quantise
        means, raw = self.net.checkerboard_params(self.net.hyper_dec(z), y, quantise)
        return means, F.softplus(raw)

    # -- the deterministic parameter passes --------------------------------------------
    def _float64(self, module: nn.Module) -> dict[str, torch.Tensor]:
        return {name: p.detach().to("cpu", torch.float64)
                for name, p in module.named_parameters()}

    @torch.no_grad()
    def hyper_features(self, z: np.ndarray) -> torch.Tensor:
        """Hyper-synthesis of integer ``z`` ``(C, h, w)``: CPU, float64, ``(1, 2L, H, W)``."""
        z64 = torch.from_numpy(np.ascontiguousarray(z, dtype=np.float64))[None]
        return functional_call(self.net.hyper_dec, self._float64(self.net.hyper_dec),
                               (z64,))

    @torch.no_grad()
    def pass_params(self, hyper: torch.Tensor, anchors: np.ndarray | None
                    ) -> tuple[np.ndarray, np.ndarray]:
        """Snapped means (float64) and ladder indices (uint8), ``(L, H, W)`` each, of one
        pass: the anchors' (``anchors`` None: context zero) or the non-anchors' (from the
        decoded anchors, zero at non-anchors). CPU, float64, as :meth:`hyper_params`."""
        assert self.ladder is not None
        if anchors is None:
            ctx = torch.zeros_like(hyper)
        else:
            conv = self.net.context
            a64 = torch.from_numpy(np.ascontiguousarray(anchors, dtype=np.float64))[None]
            weight = conv.weight.detach().to("cpu", torch.float64)
            mask = conv.mask.detach().to("cpu", torch.float64)
            ctx = F.conv2d(a64, weight * mask, conv.bias.detach().to("cpu", torch.float64),
                           padding=conv.padding)
        out = functional_call(self.net.entropy_params,
                              self._float64(self.net.entropy_params),
                              (torch.cat([hyper, ctx], dim=1),))[0]
        means, raw = out.chunk(2, dim=0)
        scales = F.softplus(raw).numpy()
        return gaussian.snap_means(means.numpy()), gaussian.scale_indices(scales, self.ladder)

    # -- coding ------------------------------------------------------------------------
    def compress(self, model_id: str, images: Sequence[Image],
                 device: torch.device) -> list[bytes]:
        return [self._encode_one(model_id, image, device) for image in images]

    @torch.no_grad()
    def _encode_one(self, model_id: str, image: Image, device: torch.device) -> bytes:
        z_tables, y_tables = self._tables()
        x = torch.from_numpy(image.pixels.astype(np.float32)).to(device)[None, None]
        x, pad_h, pad_w = pad_to_stride(x / float(peak_value(image.bit_depth)), self.stride)
        y = self.net.encode(x)
        z = torch.round(self.net.hyper_encode(y)).clamp_(LATENT_MIN, LATENT_MAX)
        z = z[0].to(torch.int32).cpu().numpy()
        y64 = y[0].to("cpu", torch.float64).numpy()
        anchor = np.broadcast_to(anchor_mask(*y64.shape[-2:]), y64.shape)
        hyper = self.hyper_features(z)
        means_a, index_a = self.pass_params(hyper, None)
        q = np.clip(np.round(y64 - means_a), LATENT_MIN, LATENT_MAX).astype(np.int32)
        means_n, index_n = self.pass_params(hyper, np.where(anchor, q + means_a, 0.0))
        q_n = np.clip(np.round(y64 - means_n), LATENT_MIN, LATENT_MAX).astype(np.int32)
        z_bytes = encode_latents(z, z_tables)
        a_bytes = gaussian.encode_symbols(q[anchor], index_a[anchor], y_tables)
        n_bytes = gaussian.encode_symbols(q_n[~anchor], index_n[~anchor], y_tables)
        header = Header(bytes.fromhex(model_id), image.bit_depth, image.height, image.width,
                        pad_h, pad_w)
        lengths = _LENGTHS.pack(len(z_bytes), len(a_bytes), len(n_bytes))
        return pack(header, lengths + z_bytes + a_bytes + n_bytes, magic=MAGIC)

    def _tables(self):
        if self.tables is None or self.scale_tables is None:
            raise ValueError("the model has no coding tables; load a finished checkpoint")
        return self.tables, self.scale_tables

    @torch.no_grad()
    def decompress(self, streams: Sequence[bytes], device: torch.device) -> list[np.ndarray]:
        out = []
        for data in streams:
            header, _, q, means = stream_latents(self, data)
            y_hat = torch.from_numpy((q + means).astype(np.float32)).to(device)[None]
            x = self.net.decode(y_hat)[0, 0, : header.height, : header.width]
            x = x.clamp_(0.0, 1.0) * float(peak_value(header.bit_depth))
            pixels = torch.round(x).cpu().numpy().astype(dtype_for(header.bit_depth))
            out.append(np.ascontiguousarray(pixels))
        return out


def stream_latents(model: CheckerboardModel, data: bytes
                   ) -> tuple[Header, np.ndarray, np.ndarray, np.ndarray]:
    """Header, hyper-latents ``z``, symbols ``q`` and snapped means of one stream.

    Sizes are checked before anything of the declared size is made (as the hyperprior's
    :func:`~medbench.codecs.learned.hyperprior.stream_latents` does).
    """
    header, payload = unpack(data, magic=MAGIC, kind="ckbd")
    z_tables, y_tables = model._tables()
    check_declared_size("ckbd stream", header.height, header.width)
    if len(payload) < _LENGTHS.size:
        raise BitstreamError(f"ckbd stream of {len(data)} bytes lacks its payload lengths; "
                             f"it is truncated")
    z_len, a_len, n_len = _LENGTHS.unpack_from(payload)
    body = payload[_LENGTHS.size :]
    if z_len + a_len + n_len != len(body):
        raise BitstreamError(
            f"ckbd stream declares payloads of {z_len} + {a_len} + {n_len} bytes but holds "
            f"{len(body)}; it is truncated or corrupt"
        )
    hz, wz = header.latent_shape(model.stride)
    hs = model.net.hyper_stride
    n_y = model.net.latent * hz * wz * hs**2
    need = n_y * float(gaussian.table_bits(y_tables).min())
    try:
        if 8 * (a_len + n_len) + 128 < need:  # two coders, each up to 64 bits unwritten
            raise StreamError(f"latent payloads of {a_len} + {n_len} bytes cannot hold {n_y} "
                              f"latents (at least {need / 8:.0f} bytes); the stream is "
                              f"truncated or its header is corrupt")
        if 8 * z_len + 64 < min_payload_bits(z_tables, hz * wz):
            raise StreamError(f"hyper-latent payload of {z_len} bytes is too short for "
                              f"{hz}x{wz} hyper-latents; the stream is truncated or corrupt")
        z = decode_latents(body[:z_len], z_tables, (hz, wz))
        hyper = model.hyper_features(z)
        means, index_a = model.pass_params(hyper, None)
        anchor = np.broadcast_to(anchor_mask(hz * hs, wz * hs), means.shape)
        q = np.zeros(means.shape, dtype=np.int32)
        q[anchor] = gaussian.decode_symbols(body[z_len : z_len + a_len], index_a[anchor],
                                            y_tables)
        means_n, index_n = model.pass_params(hyper, np.where(anchor, q + means, 0.0))
        q[~anchor] = gaussian.decode_symbols(body[z_len + a_len :], index_n[~anchor],
                                             y_tables)
        means = np.where(anchor, means, means_n)
    except StreamError as exc:
        raise BitstreamError(str(exc)) from None
    return header, z, q, means


ARCHITECTURE = Architecture(
    name="ckbd",
    summary="The checkerboard context model (He et al. 2021) on the mean-scale "
            "hyperprior: anchors, then non-anchors from their decoded neighbours.",
    net=CheckerboardHyperprior, model=CheckerboardModel, latent=96, width=64,
    ladder=tuple({"objective": "rd", "lmbda": lam} for lam in (1e-2, 3e-3, 1e-3, 3e-4)),
    # Its transforms and hyperprior are the hyperprior's: a trained one gives the
    # context model hyper-latents that already carry information (trained from scratch
    # the context learns faster and z can collapse to nothing).
    warm_start=("hyperprior",),
)
