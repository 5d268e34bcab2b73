"""Images ⇄ bitstreams with a loaded :class:`CompressionModel`, in batches.

Encoding: pixels / ``2**bit_depth - 1`` → pad to the stride → analysis transform →
round to integers (clamped to int16) → ANS-code under the model's integer tables.
Decoding: header → ANS-decode the integers (CPU, exact) → synthesis transform → crop →
scale by the peak, round and clip at the image's bit depth. Images of one shape and bit
depth go through the network together; entropy coding runs per image.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

import numpy as np
import torch

from medbench.codecs.learned.bitstream import BitstreamError, Header, pack, unpack
from medbench.codecs.learned.entropy import (
    LATENT_MAX,
    LATENT_MIN,
    StreamError,
    decode_latents,
    encode_latents,
)
from medbench.codecs.learned.models import pad_to_stride
from medbench.codecs.limits import check_declared_size
from medbench.image import Image, dtype_for, peak_value

if TYPE_CHECKING:  # the model calls this module's coding, not the other way round
    from medbench.codecs.learned.compression import CompressionModel


def resolve_device(device: str) -> torch.device:
    """``auto`` → CUDA when present, else CPU; ``cuda`` without a GPU is an error."""
    from medbench.errors import MedbenchError

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise MedbenchError(
            f"--device {device} was asked for but torch sees no CUDA GPU here; "
            f"use --device cpu or auto"
        )
    return torch.device(device)


def runtime(device: torch.device, entropy_coder: bool = True) -> str:
    """What decides a learned codec's bytes besides its weights, for ``codec_library``.

    ``torch 2.13.0+cpu, constriction 0.5.0, cpu AVX512`` (or ``cuda <GPU name>``): the
    framework (and the entropy coder, where one is used), and the kind of processor the
    transforms ran on, whose kernels round differently (a latent that rounds the other way
    changes the stream).
    """
    parts = [f"torch {torch.__version__}"]
    if entropy_coder:
        parts.append(f"constriction {_version('constriction')}")
    if device.type == "cuda":
        parts.append(f"cuda {torch.cuda.get_device_name(device)}")
    else:
        parts.append(f"{device.type} {torch.backends.cpu.get_cpu_capability()}")
    return ", ".join(parts)


def _version(distribution: str) -> str:
    try:
        return version(distribution)
    except PackageNotFoundError:
        return "?"


def _groups(items: Sequence, key) -> dict:
    groups: dict = defaultdict(list)
    for index, item in enumerate(items):
        groups[key(item)].append(index)
    return groups


@torch.no_grad()
def image_latents(model: CompressionModel, images: Sequence[Image],
                  device: torch.device) -> list[np.ndarray]:
    """Integer latents ``(L, h, w)`` (int32) of each image; same-shape images batched."""
    out: list[np.ndarray | None] = [None] * len(images)
    shape_key = lambda im: (*im.pixels.shape, im.bit_depth)  # noqa: E731
    for (_, _, bits), idx in _groups(images, shape_key).items():
        stack = np.stack([images[i].pixels for i in idx]).astype(np.float32)
        x = torch.from_numpy(stack).to(device).unsqueeze(1) / float(peak_value(bits))
        x, _, _ = pad_to_stride(x, model.stride)
        y = torch.round(model.net.encode(x)).clamp_(LATENT_MIN, LATENT_MAX)
        y = y.to(torch.int32).cpu().numpy()
        for j, i in enumerate(idx):
            out[i] = y[j]
    return out  # type: ignore[return-value]


def encode_images(model: CompressionModel, model_id: str, images: Sequence[Image],
                  device: torch.device) -> list[bytes]:
    """The complete bitstream of each image, as the model's architecture codes it
    (:meth:`~.compression.CompressionModel.compress`)."""
    return model.compress(model_id, images, device)


def decode_streams(model: CompressionModel, streams: Sequence[bytes],
                   device: torch.device) -> list[np.ndarray]:
    """Pixels of each stream (:meth:`~.compression.CompressionModel.decompress`)."""
    return model.decompress(streams, device)


def encode_factorized(model: CompressionModel, model_id: str, images: Sequence[Image],
                      device: torch.device) -> list[bytes]:
    """The bitstream of each image under the factorized prior (``ae``, ``cnn``, ``dcae``)."""
    if model.tables is None:
        raise ValueError("the model has no coding tables; load a finished checkpoint")
    streams = []
    for image, latents in zip(images, image_latents(model, images, device)):
        pad_h, pad_w = (-image.height) % model.stride, (-image.width) % model.stride
        header = Header(bytes.fromhex(model_id), image.bit_depth, image.height, image.width,
                        pad_h, pad_w)
        streams.append(pack(header, encode_latents(latents, model.tables), magic=model.magic))
    return streams


def stream_latents(model: CompressionModel, data: bytes) -> tuple[Header, np.ndarray]:
    """The header and integer latents of one stream (exactly as the encoder coded them).

    The declared size is checked against the pixel budget, and the payload against the
    declared size, before anything of that size is allocated.
    """
    header, payload = unpack(data, magic=model.magic)
    if model.tables is None:
        raise ValueError("the model has no coding tables; load a finished checkpoint")
    check_declared_size("learned-codec stream", header.height, header.width)
    shape = header.latent_shape(model.stride)
    try:
        return header, decode_latents(payload, model.tables, shape)
    except StreamError as exc:
        raise BitstreamError(str(exc)) from None


@torch.no_grad()
def decode_factorized(model: CompressionModel, streams: Sequence[bytes],
                      device: torch.device) -> list[np.ndarray]:
    """Pixels of each factorized-prior stream (uint8 up to 8 bits, else uint16); same
    shapes batched."""
    decoded = [stream_latents(model, data) for data in streams]
    out: list[np.ndarray | None] = [None] * len(streams)
    key = lambda item: (item[0].height, item[0].width, item[0].bit_depth)  # noqa: E731
    for (h, w, bits), idx in _groups(decoded, key).items():
        y = torch.from_numpy(np.stack([decoded[i][1] for i in idx])).to(device).float()
        x = model.net.decode(y)[:, 0, :h, :w].clamp_(0.0, 1.0) * float(peak_value(bits))
        pixels = torch.round(x).cpu().numpy().astype(dtype_for(bits))
        for j, i in enumerate(idx):
            out[i] = np.ascontiguousarray(pixels[j])
    return out  # type: ignore[return-value]
