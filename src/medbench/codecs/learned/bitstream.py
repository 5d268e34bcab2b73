"""The learned codecs' bitstream: a 20-byte header, then the ANS-coded latents.

Layout (big-endian header, then the coder's little-endian 32-bit words)::

    offset size field
    0      4    magic  b"MBLC"
    4      1    format version (1)
    5      8    model id: first 8 bytes of a SHA-256 over the checkpoint's tensors
    13     1    bit depth of the image (1..16)
    14     2    height (pixels)
    16     2    width (pixels)
    18     1    rows of padding added at the bottom (to a multiple of the stride)
    19     1    columns of padding added at the right
    20     ...  ANS words (entropy-coded integer latents)

The latent grid is ``((height + pad_h) / stride, (width + pad_w) / stride)``; the stride
and the probability tables come from the checkpoint named by the model id. Every byte,
header included, counts towards the rate. The ``hyperprior`` codec uses the same header
with magic ``b"MBHP"`` and its own payload (see :mod:`.hyperprior`).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from medbench.errors import MedbenchError

MAGIC = b"MBLC"
VERSION = 1
_HEADER = struct.Struct(">4sB8sBHHBB")
_KINDS = {MAGIC: "learned-codec", b"MBHP": "hyperprior"}
HEADER_SIZE = _HEADER.size
MAX_SIDE = 0xFFFF


class BitstreamError(MedbenchError):
    """Bytes that are not a medbench learned-codec stream (or a newer version of one)."""


@dataclass(frozen=True)
class Header:
    model_id: bytes  # 8 bytes
    bit_depth: int
    height: int
    width: int
    pad_h: int
    pad_w: int

    @property
    def model_hex(self) -> str:
        return self.model_id.hex()

    def latent_shape(self, stride: int) -> tuple[int, int]:
        h, w = self.height + self.pad_h, self.width + self.pad_w
        # The encoder pads by less than one stride; more would only inflate the latents.
        if (self.pad_h, self.pad_w) != ((-self.height) % stride, (-self.width) % stride):
            raise BitstreamError(
                f"stream padding ({self.pad_h}, {self.pad_w}) is not what brings "
                f"{self.height}x{self.width} to the next multiple of the model stride "
                f"{stride}; the stream is corrupt or from another model"
            )
        return h // stride, w // stride


def pack(header: Header, payload: bytes, magic: bytes = MAGIC) -> bytes:
    if len(header.model_id) != 8:
        raise ValueError(f"model id must be 8 bytes, got {len(header.model_id)}")
    if not (1 <= header.height <= MAX_SIDE and 1 <= header.width <= MAX_SIDE):
        raise ValueError(f"image size {header.height}x{header.width} exceeds {MAX_SIDE}")
    return _HEADER.pack(magic, VERSION, header.model_id, header.bit_depth, header.height,
                        header.width, header.pad_h, header.pad_w) + payload


def unpack(data: bytes, magic: bytes = MAGIC, kind: str | None = None
           ) -> tuple[Header, bytes]:
    """Header and latent payload of a stream; :class:`BitstreamError` if it is not one
    (or has another ``magic``: a stream of another kind of learned codec, ``kind`` the
    name the error gives this one)."""
    if len(data) < HEADER_SIZE:
        raise BitstreamError(
            f"a learned-codec stream has at least {HEADER_SIZE} bytes, got {len(data)}"
        )
    found, version, model_id, bits, h, w, pad_h, pad_w = _HEADER.unpack_from(data)
    if found != magic:
        kind = kind or _KINDS.get(magic, "learned-codec")
        raise BitstreamError(f"not a medbench {kind} stream "
                             f"(magic {found!r}, expected {magic!r})")
    if version != VERSION:
        raise BitstreamError(
            f"stream format version {version} is not supported (this medbench reads "
            f"version {VERSION}); decode it with the medbench that wrote it"
        )
    if not 1 <= bits <= 16:
        raise BitstreamError(f"stream declares bit depth {bits}, outside 1..16")
    if h < 1 or w < 1:
        raise BitstreamError(f"stream declares an empty {h}x{w} image; it is corrupt")
    return Header(model_id, bits, h, w, pad_h, pad_w), data[HEADER_SIZE:]
