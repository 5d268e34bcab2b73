"""``jpeg2000+pf``: JPEG 2000 with a learned decoder-side post-filter.

The encoder is plain JPEG 2000 (:class:`~medbench.codecs.jpeg2000.Jpeg2000Codec` at the
model's ratio); the decoder decodes the codestream with OpenJPEG, then a small CNN trained
on that dataset and ratio removes the codec's artefacts (ringing, blur of fine
structure). Nothing is sent for the filter: it is part of the decoder, as the weights of
an end-to-end learned codec are. This is a learned codec in the sense that matters in a
PACS: the archive keeps a standard JPEG 2000 codestream any viewer opens, and a viewer
that has the filter shows a better image from the same bytes.

The stream is the JPEG 2000 codestream whose comment segment (COM, T.800 A.9.2) reads
``medbench-pf <model id>`` instead of OpenJPEG's "Created by OpenJPEG version …": the
same bytes as the ``jpeg2000`` codec's stream, and a stream names the filter that
decodes it (any JPEG 2000 decoder skips comments). Where OpenJPEG's comment is missing
or too short, a COM segment is inserted after SIZ and its bytes are counted.

A model is ``<models>/jpeg2000+pf/<name>/{model.safetensors, config.json}`` (written
by ``medbench train --model jpeg2000+pf --ratio R``), or shipped in
``pretrained/jpeg2000+pf/``. The filter runs in float32 on the codec's device; its
output is rounded to the image's bit depth.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file
from torch import nn

import medbench
from medbench.codecs.base import Codec, Knob, parse_setting
from medbench.codecs.jpeg2000 import Jpeg2000Codec
from medbench.codecs.learned.checkpoint import (
    CONFIG,
    WEIGHTS,
    Checkpoint,
    CheckpointError,
    _load_tensors,
    _tensors_id,
    loadable_folders,
    read_config,
    training_images,
)
from medbench.codecs.learned.codec import complexity_notes, model_roots
from medbench.codecs.learned.coding import resolve_device, runtime
from medbench.codecs.learned.complexity import Complexity, filter_complexity
from medbench.codecs.provenance import TrainingImages
from medbench.errors import MedbenchError
from medbench.image import Image

log = logging.getLogger(__name__)

CODEC = "jpeg2000+pf"
ARCH = "postfilter"
FORMAT = "medbench-postfilter/1"
#: Rows of one band of a large image and the context rows on each side (multiples of 4;
#: the margin exceeds the filter's receptive-field radius of about 30 px).
BAND_ROWS, BAND_MARGIN = 256, 48
#: Scale of the filter's correction (see :class:`PostFilterNet`).
RESIDUAL_SCALE = 0.1
#: Filter widths a config may declare (checked before a tensor is made).
MAX_WIDTH = 256
_TEXT = b"medbench-pf "
_SIZ, _COM, _SOT = 0xFF51, 0xFF64, 0xFF90
#: Bytes an inserted COM segment adds (marker, Lcom, Rcom, text, 16 hex digits).
MARKER_BYTES = 6 + len(_TEXT) + 16


class PostFilterNet(nn.Module):
    """A small residual U-Net: ``out = x + f(x)`` on pixels scaled to ``[0, 1]``.

    Three scales (1, 1/2, 1/4) of ``width``, ``2·width``, ``4·width`` channels give a
    receptive field of about 40 px for little compute at full resolution; the last
    layer starts at zero, so an untrained filter is the identity (it can only learn to
    improve on plain JPEG 2000), and its output is scaled by :data:`RESIDUAL_SCALE`:
    the corrections are a few grey levels, and a full-size first Adam step on that layer
    would add noise far larger than them.
    """

    def __init__(self, width: int = 16):
        super().__init__()
        w = width

        def block(cin: int, cout: int, stride: int = 1) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 3, stride=stride, padding=1), nn.LeakyReLU(0.1)]

        self.enc1 = nn.Sequential(*block(1, w), *block(w, w))
        self.enc2 = nn.Sequential(*block(w, 2 * w, 2), *block(2 * w, 2 * w))
        self.enc4 = nn.Sequential(*block(2 * w, 4 * w, 2), *block(4 * w, 4 * w),
                                     *block(4 * w, 4 * w))
        self.up_half = nn.ConvTranspose2d(4 * w, 2 * w, 2, stride=2)
        self.mix_half = nn.Sequential(*block(2 * w, 2 * w))
        self.up_full = nn.ConvTranspose2d(2 * w, w, 2, stride=2)
        self.mix_full = nn.Sequential(*block(w, w))
        self.out = nn.Conv2d(w, 1, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        pad_h, pad_w = (-h) % 4, (-w) % 4
        # replicate padding: reflect fails on 1-px images, and edges should not ring
        xp = nn.functional.pad(x, (0, pad_w, 0, pad_h), mode="replicate") if pad_h or pad_w \
            else x
        full = self.enc1(xp)
        half = self.enc2(full)
        quarter = self.enc4(half)
        half = self.mix_half(half + self.up_half(quarter))
        full = self.mix_full(full + self.up_full(half))
        return (xp + RESIDUAL_SCALE * self.out(full))[..., :h, :w]


@functools.cache
def _filter_complexity(width: int) -> Complexity:
    """Complexity of a filter of ``width`` (weights do not change it: counted once)."""
    return filter_complexity(PostFilterNet(width).eval())


def apply_filter(net: PostFilterNet, pixels: np.ndarray, bit_depth: int,
                 device: torch.device | str = "cpu") -> np.ndarray:
    """``pixels`` (a JPEG 2000 decode of a ``bit_depth``-bit image) through ``net``, back
    at that bit depth.

    Large images go through in bands of :data:`BAND_ROWS` rows, each with
    :data:`BAND_MARGIN` rows of context above and below (more than the filter's
    receptive field, and multiples of 4 so the strided scales stay aligned): a 2048²
    image needs about 200 MB instead of 1.5 GB, for the same pixels.
    """
    peak = float(2**bit_depth - 1)
    x = torch.from_numpy(pixels.astype(np.float32) / peak)[None, None]
    height = x.shape[-2]
    bands = []
    with torch.inference_mode():
        for top in range(0, height, BAND_ROWS):
            start, stop = max(0, top - BAND_MARGIN), min(height, top + BAND_ROWS + BAND_MARGIN)
            y = net(x[..., start:stop, :].to(device)).clamp_(0.0, 1.0)
            bands.append(y[0, 0, top - start: top - start + BAND_ROWS].cpu())
    out = torch.cat(bands).numpy()
    return np.rint(out * peak).astype(pixels.dtype)


# -- checkpoints -----------------------------------------------------------------------
def save_filter(net: PostFilterNet, folder: Path, config: dict[str, Any]) -> Checkpoint:
    """Write ``model.safetensors`` then ``config.json`` (the latter marks it finished)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = stored_weights(net)
    save_file(tensors, str(folder / WEIGHTS), metadata={"format": FORMAT, "arch": ARCH})
    model_id = _tensors_id(tensors)
    full = {"format": FORMAT, "arch": ARCH, "codec": CODEC, **config, "model_id": model_id}
    tmp = folder / (CONFIG + ".tmp")
    tmp.write_text(json.dumps(full, indent=2) + "\n")
    tmp.replace(folder / CONFIG)
    return Checkpoint(folder, full, model_id)


def stored_weights(net: PostFilterNet) -> dict[str, torch.Tensor]:
    """The filter's weights as a checkpoint stores them: float16, half the bytes (the
    filter then runs in float32; training validates with these very weights)."""
    return {k: v.detach().to("cpu", torch.float16).contiguous()
            for k, v in net.state_dict().items()}


def read_filter(folder: Path) -> tuple[Checkpoint, dict[str, torch.Tensor]]:
    """The finished filter in ``folder`` and its tensors (raises :class:`CheckpointError`).

    The config's sizes are checked before any tensor is made, and the weights against a
    filter of that width built on torch's ``meta`` device (which allocates nothing).
    """
    folder = Path(folder)
    config_path, weights = folder / CONFIG, folder / WEIGHTS
    config = read_config(folder, FORMAT, f"train it with `medbench train --model {CODEC}`")
    width, ratio = config.get("width"), config.get("ratio")
    if isinstance(width, bool) or not isinstance(width, int) or not 1 <= width <= MAX_WIDTH:
        raise CheckpointError(f"{config_path}: 'width' is {width!r}, not an integer "
                              f"1..{MAX_WIDTH}; re-train")
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 1 < ratio <= 1000:
        raise CheckpointError(f"{config_path}: 'ratio' is {ratio!r}, not a JPEG 2000 ratio "
                              f"above 1 and up to 1000; re-train")
    tensors = _load_tensors(weights)
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in PostFilterNet(width).state_dict().items()}
    found = {k: tuple(v.shape) for k, v in tensors.items()}
    if not all(v.dtype in (torch.float16, torch.float32) for v in tensors.values()):
        raise CheckpointError(f"{weights} holds tensors that are not float16/float32; "
                              f"re-train it")
    if found != expected:
        wrong = sorted(k for k in expected.keys() | found.keys()
                       if expected.get(k) != found.get(k))
        raise CheckpointError(f"{weights} does not match a width-{width} post-filter "
                              f"(tensors {', '.join(wrong[:3])} differ); re-train it")
    return Checkpoint(folder, config, _tensors_id(tensors)), tensors


# -- the stream ------------------------------------------------------------------------
def _main_header(data: bytes) -> list[tuple[int, int, int]]:
    """``(position, marker, length)`` of each segment of a codestream's main header."""
    if data[:4] != b"\xff\x4f\xff\x51":
        return []
    segments, pos = [], 2
    while pos + 4 <= len(data):
        marker, length = struct.unpack_from(">HH", data, pos)
        if marker == _SOT or marker >> 8 != 0xFF or length < 2:
            break
        segments.append((pos, marker, length))
        pos += 2 + length
    return segments


def add_marker(codestream: bytes, model_id: str) -> bytes:
    """``codestream`` naming the filter ``model_id`` in a comment (COM) segment.

    OpenJPEG writes a comment of its own ("Created by OpenJPEG version …"); when it is
    long enough its text is replaced, so the stream has exactly JPEG 2000's bytes.
    Otherwise a COM segment is inserted after SIZ (:data:`MARKER_BYTES` more).
    """
    text = _TEXT + model_id.encode("ascii")
    for pos, marker, length in _main_header(codestream):
        if marker == _COM and length - 4 >= len(text):
            body = text.ljust(length - 4, b" ")
            return codestream[:pos + 4] + b"\x00\x01" + body + codestream[pos + 2 + length:]
    segments = _main_header(codestream)
    if not segments or segments[0][1] != _SIZ:
        raise MedbenchError("OpenJPEG wrote no SOC+SIZ codestream; cannot add the filter id")
    at = segments[0][0] + 2 + segments[0][2]
    segment = struct.pack(">HHH", _COM, 4 + len(text), 1) + text
    return codestream[:at] + segment + codestream[at:]


def read_marker(data: bytes) -> str:
    """The model id (hex) a ``jpeg2000+pf`` stream's comment names."""
    for pos, marker, length in _main_header(data):
        body = data[pos + 6: pos + 2 + length]
        if marker == _COM and body.startswith(_TEXT):
            model_id = body[len(_TEXT): len(_TEXT) + 16].decode("ascii", "replace")
            if len(model_id) == 16 and all(c in "0123456789abcdef" for c in model_id):
                return model_id
    raise MedbenchError(
        f"this is not a {CODEC} stream (no comment naming a post-filter in its JPEG 2000 "
        f"main header); decode a plain JPEG 2000 stream with the jpeg2000 codec"
    )


def siz_precision(data: bytes) -> int:
    """Bit depth of the first component in a codestream's SIZ (T.800 A.5.1: ``Ssiz``)."""
    if len(data) < 43:
        raise MedbenchError("JPEG 2000 stream too short for its SIZ segment; it is truncated")
    return (data[42] & 0x7F) + 1


# -- the codec -------------------------------------------------------------------------
class Jpeg2000PostFilterCodec(Codec):
    """JPEG 2000 at a trained filter's ratio, decoded with that learned post-filter."""

    name = CODEC
    kind = "learned"
    conventions = ("the jpeg2000 codec's codestream, its comment naming the filter (same "
                   "bytes); learned residual CNN after OpenJPEG's decoder")
    bit_depths = tuple(range(1, 17))
    rate_knob = ("trained filter <train dataset>-ratio<R>: JPEG 2000 at ratio R; ordered "
                 "low to high rate (run --target: any ratio, the nearest filter)")

    def __init__(self, context=None):
        super().__init__(context)
        self.j2k = Jpeg2000Codec(context)
        self._found: dict[str, tuple[Checkpoint, dict[str, torch.Tensor]]] | None = None
        self._nets: dict[str, PostFilterNet] = {}
        self._device: torch.device | None = None
        #: Model folders that were skipped, and why (folder → reason).
        self.skipped: dict[str, str] = {}

    def checkpoints(self) -> dict[str, Checkpoint]:
        """Setting name → finished filter, low to high rate (high to low ratio)."""
        if self._found is None:
            found: dict[str, tuple[Checkpoint, dict[str, torch.Tensor]]] = {}
            for root in model_roots(self.context.models_dir):
                base = Path(root) / CODEC
                if not base.is_dir():
                    continue
                for folder, loaded in loadable_folders(base, read_filter, self.skipped,
                                                       f"{CODEC} model"):
                    found.setdefault(folder.name, loaded)  # --models shadows the shipped
            order = sorted(found.items(), key=lambda kv: (-float(kv[1][0].config["ratio"]),
                                                           kv[0]))
            self._found = dict(order)
        return {name: ckpt for name, (ckpt, _) in self._found.items()}

    def unavailable_reason(self) -> str | None:
        reason = self.j2k.unavailable_reason()
        if reason or self.checkpoints():
            return reason
        return (f"no trained {CODEC} filter in {self.context.models_dir}; train one with "
                f"`medbench train --model {CODEC} --ratio 40 --dataset sample --models "
                f"{self.context.models_dir}`")

    def settings(self) -> list[str]:
        return list(self.checkpoints())

    def library(self, setting: str) -> str:
        """JPEG 2000's library (the stream is its codestream) and the filter's runtime."""
        try:
            where = runtime(self.device, entropy_coder=False)
        except MedbenchError as exc:  # --device cuda without a GPU
            where = str(exc)
        return (f"{self.j2k.library(setting)}; filter: medbench {medbench.__version__} "
                f"{ARCH} ({where})")

    def knob(self, bit_depth: int) -> Knob | None:
        """JPEG 2000's ratio knob (``run --target``): any ratio, decoded by the filter
        trained at the nearest ratio (see :meth:`filter_for`)."""
        return self.j2k.knob(bit_depth) if self.checkpoints() else None

    def finer_knobs(self, bit_depth: int) -> list[Knob]:
        return self.j2k.finer_knobs(bit_depth) if self.checkpoints() else []

    def filter_for(self, setting: str) -> str:
        """The filter (setting name) that decodes ``setting``: the setting itself, or for
        a JPEG 2000 setting ``ratio=R[,cb=N]`` (what a rate-matching search asks for) the
        filter trained at the ratio nearest to R on a log scale."""
        if setting in self.checkpoints() or not setting.startswith("ratio="):
            self.check_setting(setting)
            return setting
        ratio = parse_setting(setting.partition(",")[0], "ratio")
        if not ratio >= 1:
            raise ValueError(f"JPEG 2000 ratio must be >= 1, got {setting!r}")
        found = self.checkpoints()
        if not found:
            self.check_setting(setting)  # no filter at all: the usual error
        return min(found, key=lambda name: (abs(math.log(ratio / found[name].config["ratio"])),
                                            name))

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info["skipped"] = dict(self.skipped)
        info["notes"].extend(complexity_notes({s: self.complexity(s) for s in self.settings()}))
        return info

    def complexity(self, setting: str) -> Complexity:
        """The filter's parameters and kMAC per pixel (the encoder, plain JPEG 2000, runs
        no learned layer): :func:`~medbench.codecs.learned.complexity.filter_complexity`."""
        return _filter_complexity(int(self.checkpoints()[self.filter_for(setting)]
                                      .config["width"]))

    @property
    def device(self) -> torch.device:
        if self._device is None:
            self._device = resolve_device(self.context.device)
        return self._device

    def net(self, setting: str) -> PostFilterNet:
        """The loaded filter of ``setting`` (cached)."""
        if setting not in self._nets:
            self.check_setting(setting)
            ckpt, tensors = self._found[setting]  # type: ignore[index]
            net = PostFilterNet(int(ckpt.config["width"]))
            net.load_state_dict({k: v.float() for k, v in tensors.items()})
            self._nets[setting] = net.to(self.device).eval()
        return self._nets[setting]

    def setting_info(self, setting: str) -> dict[str, Any]:
        """``train_dataset`` and ``model_info``; loads the filter so timings exclude it."""
        setting = self.filter_for(setting)
        self.net(setting)
        ckpt = self.checkpoints()[setting]
        cfg = ckpt.config
        train = cfg.get("train", {})
        info = {"model_id": ckpt.model_id, "arch": ARCH, "width": cfg["width"],
                "ratio": cfg["ratio"], "protocol": train.get("protocol"),
                "budget": cfg.get("budget"), "validation": cfg.get("validation"),
                "folder": str(ckpt.folder)}
        complexity = self.complexity(setting).as_dict()
        info.update(complexity)
        return {"train_dataset": train.get("dataset"), **complexity,
                "model_info": json.dumps(info, sort_keys=True)}

    def training_images(self, setting: str) -> TrainingImages | None:
        """The images the filter that decodes ``setting`` trained and validated on."""
        return training_images(self.checkpoints()[self.filter_for(setting)])

    def encode(self, image: Image, setting: str) -> bytes:
        self.check(image)
        name = self.filter_for(setting)
        ckpt = self.checkpoints()[name]
        coded_at = f"ratio={float(ckpt.config['ratio']):g}" if name == setting else setting
        return add_marker(self.j2k.encode(image, coded_at), ckpt.model_id)

    def decode(self, data: bytes) -> np.ndarray:
        return self.decode_batch([data])[0]

    def decode_batch(self, streams: Sequence[bytes]) -> list[np.ndarray]:
        out = []
        for data in streams:
            data = bytes(data)
            setting = self._setting_of(read_marker(data))
            pixels, bit_depth = self.j2k.decode(data), siz_precision(data)
            if bit_depth > 8 * pixels.dtype.itemsize:
                raise MedbenchError(f"this JPEG 2000 stream declares {bit_depth}-bit samples "
                                    f"but decodes to {pixels.dtype}; it is corrupt")
            out.append(self.filter(pixels, setting, bit_depth))
        return out

    def filter(self, pixels: np.ndarray, setting: str, bit_depth: int) -> np.ndarray:
        """``pixels`` through the filter of ``setting`` (see :func:`apply_filter`)."""
        return apply_filter(self.net(setting), pixels, bit_depth, self.device)

    def _setting_of(self, model_hex: str) -> str:
        for name, ckpt in self.checkpoints().items():
            if ckpt.model_id == model_hex:
                return name
        roots = ", ".join(str(r / CODEC) for r in model_roots(self.context.models_dir))
        raise MedbenchError(f"this stream names {CODEC} filter {model_hex}, which is not "
                            f"among the filters in {roots}; pass --models with the folder "
                            f"that holds it")

    def dicom_syntax(self, setting: str, bit_depth: int) -> str | None:
        # The codestream is JPEG 2000, but a DICOM viewer would show it unfiltered: not
        # the pixels medbench measured, so it is not exported as this codec's result.
        return None
