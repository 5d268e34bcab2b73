"""The mean-scale hyperprior (Minnen, Ballé, Toderici 2018) as a medbench model and codec:
:class:`HyperpriorModel` (its entropy model, training losses and coding; transforms in
:mod:`.models`, declared as an architecture in :mod:`.archs.hyperprior`).

Coding: pixels / ``2**bit_depth - 1`` → pad to a multiple of 64 → latents ``y`` (1/16)
→ hyper-latents ``z = round(h_a(y))`` (1/64), coded under the factorized integer tables
of :mod:`.entropy` → means and scales of ``y`` from ``h_s(z)`` → ``q = round(y - mean)``
coded under the Gaussian ladder tables of :mod:`.gaussian`. The decoder reverses it and
runs the synthesis on ``y_hat = q + mean``.

**The stream is the contract.** The decoder must pick, for every latent, the same table
and the same mean as the encoder, from ``z`` alone; one differing index makes the ANS
decoder silently read garbage from there on. Convolutions differ in their last bits
between devices (GPU/CPU), kernels and thread counts, so the hyper-synthesis that
derives them is made deterministic on both sides:

1. ``h_s(z)`` always runs on the CPU in float64 (weights cast from the stored float32;
   ``z`` are integers), whatever device the transforms use;
2. its outputs are snapped before use: means to multiples of 1/64 (within ±2**14, so
   ``q + mean`` is exact in float32), scales to the index of a fixed ladder scale.

A float64 result differs across thread counts or BLAS builds by ~1e-16 relative, so
two machines disagree only when a value falls within that distance of a snapping
boundary: with float32-trained weights this does not happen in practice (tested across
thread counts in a fresh process; ``benchmarks/gpu_hyperprior.py`` checks GPU → CPU).
The main transforms may run anywhere: they change the reconstruction's last bits, never
the ability to decode.

Stream layout (big-endian; see :mod:`.bitstream` for the first 20 bytes)::

    offset size field
    0      4    magic  b"MBHP"
    4      1    format version (1)
    5      8    model id
    13     1    bit depth (1..16)
    14     2    height
    16     2    width
    18     1    rows of padding (to a multiple of 64)
    19     1    columns of padding
    20     4    bytes of the hyper-latent payload (Z)
    24     4    bytes of the latent payload (Y)
    28     Z    ANS words of z (factorized tables)
    28+Z   Y    ANS words of q (Gaussian ladder tables)

Every byte counts towards the rate.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

import numpy as np
import torch
from torch.func import functional_call

from medbench.codecs.learned import gaussian
from medbench.codecs.learned.bitstream import BitstreamError, Header, pack, unpack
from medbench.codecs.learned.compression import CompressionModel, autocast
from medbench.codecs.learned.entropy import (
    LATENT_MAX,
    LATENT_MIN,
    CodingTables,
    StreamError,
    TableError,
    decode_latents,
    encode_latents,
    min_payload_bits,
)
from medbench.codecs.learned.models import MeanScaleHyperprior, pad_to_stride
from medbench.codecs.limits import check_declared_size
from medbench.image import Image, dtype_for, peak_value

MAGIC = b"MBHP"
_LENGTHS = struct.Struct(">II")

__all__ = ["HyperpriorModel", "encode_images", "decode_streams", "stream_latents", "MAGIC"]


class HyperpriorModel(CompressionModel):
    """Mean-scale hyperprior: the transforms, the density of ``z``, and two sets of tables
    (factorized for ``z``, the Gaussian ladder for ``y``) once frozen."""

    magic = MAGIC
    table_prefixes = ("tables.", "scale_tables.", "scale_ladder")
    net: MeanScaleHyperprior

    def __init__(self, net: MeanScaleHyperprior, components: int = 3):
        super().__init__(net, components)
        self.scale_tables: CodingTables | None = None
        self.ladder: np.ndarray | None = None

    # -- training ----------------------------------------------------------------------
    @torch.no_grad()
    def init_density(self, x: torch.Tensor) -> None:
        self.density.init_from(self.net.hyper_encode(self.net.encode(x)))

    def _params(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        means, raw = self.net.hyper_decode(z)
        return means, torch.nn.functional.softplus(raw)

    def _rd_params(self, z: torch.Tensor, y: torch.Tensor, straight_through: bool
                   ) -> tuple[torch.Tensor, torch.Tensor]:
        """Means and scales of ``y``'s Gaussian conditional in training and estimates:
        the hyper-decoder's from ``z`` alone. A context model overrides this to read the
        (``straight_through``-quantised) ``y`` as well; the rest of the pass is shared."""
        return self._params(z)

    def forward_rd(self, x: torch.Tensor, generator: torch.Generator,
                   rate_grad: bool = True, amp: bool = False
                   ) -> tuple[torch.Tensor, torch.Tensor]:
        """Training pass (see :meth:`CompressionModel.forward_rd`): bits of ``z`` under the
        factorized density plus bits of ``y`` under the Gaussian conditional. Without
        ``rate_grad`` the hyper transforms still learn to model ``y``, but ``y`` itself
        is detached from the rate. ``amp``: only the main transforms use bf16."""
        def noise(t: torch.Tensor) -> torch.Tensor:
            return torch.rand(t.shape, generator=generator, device=t.device,
                              dtype=t.dtype) - 0.5

        with autocast(amp):
            y = self.net.encode(x)
        y = y.float()
        y_rate = y if rate_grad else y.detach()
        z_noisy = self.net.hyper_encode(y_rate)
        z_noisy = z_noisy + noise(z_noisy)
        means, scales = self._rd_params(z_noisy, y_rate, straight_through=True)
        y_hat = means + (torch.round(y - means) - (y - means)).detach() + (y - means)
        with autocast(amp):
            x_hat = self.net.decode(y_hat).float()
        p = gaussian.likelihood(y_rate + noise(y) - means, scales)
        bits = self.density.bits(z_noisy) - torch.log2(p).flatten(1).sum(dim=1)
        return x_hat, bits

    @torch.no_grad()
    def estimate(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = self.net.encode(x)
        z = torch.round(self.net.hyper_encode(y))
        means, scales = self._rd_params(z, y, straight_through=False)
        q = torch.round(y - means)
        bits = (self.density.bits(z)
                - torch.log2(gaussian.likelihood(q, scales)).flatten(1).sum(dim=1))
        return self.net.decode(q + means), bits

    def freeze_tables(self) -> None:
        super().freeze_tables()
        self.ladder = gaussian.scale_ladder()
        self.scale_tables = gaussian.ladder_tables(self.ladder)

    # -- coding ------------------------------------------------------------------------
    def compress(self, model_id: str, images: Sequence[Image],
                 device: torch.device) -> list[bytes]:
        return encode_images(self, model_id, images, device)

    def decompress(self, streams: Sequence[bytes], device: torch.device) -> list[np.ndarray]:
        return decode_streams(self, streams, device)

    # -- weights -----------------------------------------------------------------------
    def weights(self, half: bool = False) -> dict[str, torch.Tensor]:
        tensors = super().weights(half)
        if self.scale_tables is not None and self.ladder is not None:
            tensors.update(self.scale_tables.as_tensors("scale_tables"))
            tensors["scale_ladder"] = torch.from_numpy(self.ladder.astype(np.float64))
        return tensors

    def check_table_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        self._read_scale_tables(tensors)
        super().check_table_tensors(tensors)

    def load_tables(self, tensors: dict[str, torch.Tensor]) -> None:
        self.scale_tables, self.ladder = self._read_scale_tables(tensors)
        super().load_tables(tensors)

    @staticmethod
    def _read_scale_tables(tensors) -> tuple[CodingTables, np.ndarray]:
        if "scale_ladder" not in tensors:
            raise TableError("the hyperprior's scale ladder (tensor 'scale_ladder') is missing")
        tables = CodingTables.from_tensors(tensors, prefix="scale_tables")
        ladder = tensors["scale_ladder"].numpy().astype(np.float64)
        gaussian.check_ladder(ladder, tables)
        return tables, ladder

    # -- the deterministic hyper-synthesis ---------------------------------------------
    @torch.no_grad()
    def hyper_params(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Snapped means (float64) and ladder indices (uint8) of ``y`` from integer ``z``
        ``(C, h, w)``: CPU, float64, identical wherever it runs (see the module notes)."""
        assert self.ladder is not None
        params = {name: p.detach().to("cpu", torch.float64)
                  for name, p in self.net.hyper_dec.named_parameters()}
        z64 = torch.from_numpy(np.ascontiguousarray(z, dtype=np.float64))[None]
        out = functional_call(self.net.hyper_dec, params, (z64,))[0]
        means, raw = out.chunk(2, dim=0)
        scales = torch.nn.functional.softplus(raw).numpy()
        return gaussian.snap_means(means.numpy()), gaussian.scale_indices(scales, self.ladder)


def _tables(model: HyperpriorModel) -> tuple[CodingTables, CodingTables]:
    if model.tables is None or model.scale_tables is None:
        raise ValueError("the model has no coding tables; load a finished checkpoint")
    return model.tables, model.scale_tables


@torch.no_grad()
def encode_images(model: HyperpriorModel, model_id: str, images: Sequence[Image],
                  device: torch.device) -> list[bytes]:
    """The complete bitstream of each image (one network pass per image)."""
    z_tables, y_tables = _tables(model)
    streams = []
    for image in images:
        x = torch.from_numpy(image.pixels.astype(np.float32)).to(device)[None, None]
        x, pad_h, pad_w = pad_to_stride(x / float(peak_value(image.bit_depth)), model.stride)
        y = model.net.encode(x)
        z = torch.round(model.net.hyper_encode(y)).clamp_(LATENT_MIN, LATENT_MAX)
        z = z[0].to(torch.int32).cpu().numpy()
        means, index = model.hyper_params(z)
        y64 = y[0].to("cpu", torch.float64).numpy()
        q = np.clip(np.round(y64 - means), LATENT_MIN, LATENT_MAX).astype(np.int32)
        z_bytes = encode_latents(z, z_tables)
        y_bytes = gaussian.encode_symbols(q, index, y_tables)
        header = Header(bytes.fromhex(model_id), image.bit_depth, image.height, image.width,
                        pad_h, pad_w)
        payload = _LENGTHS.pack(len(z_bytes), len(y_bytes)) + z_bytes + y_bytes
        streams.append(pack(header, payload, magic=MAGIC))
    return streams


def stream_latents(model: HyperpriorModel, data: bytes
                   ) -> tuple[Header, np.ndarray, np.ndarray, np.ndarray]:
    """Header, hyper-latents ``z``, symbols ``q`` and snapped means of one stream.

    Sizes are checked before anything of the declared size is made: the pixel budget,
    the two payload lengths against the stream's bytes, and each payload against the
    fewest bytes its declared latents can take.
    """
    header, payload = unpack(data, magic=MAGIC)
    z_tables, y_tables = _tables(model)
    check_declared_size("hyperprior stream", header.height, header.width)
    if len(payload) < _LENGTHS.size:
        raise BitstreamError(f"hyperprior stream of {len(data)} bytes lacks its payload "
                             f"lengths; it is truncated")
    z_len, y_len = _LENGTHS.unpack_from(payload)
    body = payload[_LENGTHS.size :]
    if z_len + y_len != len(body):
        raise BitstreamError(
            f"hyperprior stream declares payloads of {z_len} + {y_len} bytes but holds "
            f"{len(body)}; it is truncated or corrupt"
        )
    hz, wz = header.latent_shape(model.stride)
    n_y = model.net.latent * hz * wz * model.net.hyper_stride**2
    # Cheapest possible latents: refuse a short payload before the hyper-synthesis runs.
    need = n_y * float(gaussian.table_bits(y_tables).min())
    try:
        if 8 * y_len + 64 < need:
            raise StreamError(f"latent payload of {y_len} bytes cannot hold {n_y} latents "
                              f"(at least {need / 8:.0f} bytes); the stream is truncated "
                              f"or its header is corrupt")
        if 8 * z_len + 64 < min_payload_bits(z_tables, hz * wz):
            raise StreamError(f"hyper-latent payload of {z_len} bytes is too short for "
                              f"{hz}x{wz} hyper-latents; the stream is truncated or corrupt")
        z = decode_latents(body[:z_len], z_tables, (hz, wz))
        means, index = model.hyper_params(z)
        q = gaussian.decode_symbols(body[z_len:], index, y_tables)
    except StreamError as exc:
        raise BitstreamError(str(exc)) from None
    return header, z, q, means


@torch.no_grad()
def decode_streams(model: HyperpriorModel, streams: Sequence[bytes],
                   device: torch.device) -> list[np.ndarray]:
    """Pixels of each stream (uint8 up to 8 bits, else uint16)."""
    out = []
    for data in streams:
        header, _, q, means = stream_latents(model, data)
        y_hat = torch.from_numpy((q + means).astype(np.float32)).to(device)[None]
        x = model.net.decode(y_hat)[0, 0, : header.height, : header.width]
        x = x.clamp_(0.0, 1.0) * float(peak_value(header.bit_depth))
        pixels = torch.round(x).cpu().numpy().astype(dtype_for(header.bit_depth))
        out.append(np.ascontiguousarray(pixels))
    return out
