"""``byo``: bring your own CompressAI-style model, benchmarked without writing a plugin.

A model is described by a spec file ``<--models>/byo/<name>.toml`` (or ``.json``); each
spec is one setting of the ``byo`` codec (one rate point, as each trained model is one
setting of ``ae``), named by its ``name`` key or its file name. Settings are ordered by
name, so name one model family's specs in rate order (``mymodel-q1`` .. ``mymodel-q8``).
Keys::

    factory     = "package.module:callable"  # returns a torch.nn.Module (required)
    weights     = "q1.safetensors"           # next to the spec; safetensors only (required)
    channels    = 1                          # 1, or 3: grey replicated, mean taken back
    pad         = 64                         # input padded (edge replication) to a multiple
    bit_depth   = 8                          # optional: the only depth the model accepts
    name        = "mymodel-q1"               # optional: the setting name
    python_path = "src"                      # optional: put on sys.path (relative; trusted)
    args        = { quality = 1 }            # optional: keyword arguments of the factory
    train_dataset = "nih"                    # optional: shown in the rows

The module follows CompressAI's convention: ``compress(x) -> {"strings": [[bytes, ...],
...], "shape": ...}`` and ``decompress(strings, shape) -> {"x_hat": tensor}``, on
``(1, channels, H, W)`` tensors in ``[0, 1]`` (pixels divided by ``2**bit_depth - 1``).
Weights are read with :func:`safetensors.torch.load_file` (nothing is unpickled);
``.pt``/``.pth``/``.pkl`` weights are refused. A spec that does not parse, whose weights
are not safetensors or (in a trusted folder) whose factory does not import is skipped
with one warning line.

Trust
-----
A model folder is data, and a spec names code: a folder received from someone would run
their code if listing it imported the factory. So specs are only *parsed* (listed, with
their factory, by ``medbench codecs``) and nothing is imported, nor put on ``sys.path``,
unless the spec folder is the one the user trusts explicitly on this call
(:attr:`~medbench.codecs.base.CodecContext.trusted_byo`, given by ``medbench run
--codecs byo --trust-byo DIR``; ``--codecs all`` never hands it on). No file inside the
folder can give that trust, since such a file travels with the folder.

Stream (big-endian), every byte counted::

    offset size field
    0      4    magic b"MBYO"
    4      1    format version (1)
    5      8    model id: SHA-256 of the factory and the weights' tensors
    13     1    bit depth
    14     2    height
    16     2    width
    18     1    dimensions D of the model's ``shape`` (0..8)
    19     4·D  each dimension (u32)
    ...    1    number of string groups G (1..64)
    per group: 2 bytes count N (0..64), then N × (4-byte length, bytes)
"""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
import struct
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medbench.codecs._libraries import distribution
from medbench.codecs.base import Codec
from medbench.codecs.limits import check_declared_size
from medbench.errors import MedbenchError, UnsupportedInput
from medbench.image import Image, dtype_for, peak_value

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: JSON specs only
    tomllib = None

log = logging.getLogger(__name__)

MAGIC, VERSION = b"MBYO", 1
_HEAD = struct.Struct(">4sB8sBHHB")
PICKLE_SUFFIXES = (".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".bin")
MAX_DIMS, MAX_GROUPS, MAX_STRINGS = 8, 64, 64


class SpecError(MedbenchError):
    """A bring-your-own spec that cannot be used (skipped with its reason)."""


class ByoStreamError(MedbenchError):
    """Bytes that are not a ``byo`` stream, or one this model cannot decompress."""


@dataclass
class Spec:
    """One bring-your-own model: where it comes from and how to feed it."""

    path: Path
    name: str
    factory: str
    weights: Path
    channels: int = 1
    pad: int = 64
    bit_depth: int | None = None
    args: dict[str, Any] = field(default_factory=dict)
    train_dataset: str | None = None
    #: Folder put on ``sys.path`` before the factory is imported (a trusted folder only).
    python_path: Path | None = None


def read_spec(path: Path) -> Spec:
    """Parse and check one spec file (raises :class:`SpecError` with the fix).

    Reads the file only: nothing it names is imported and ``sys.path`` is left alone.
    """
    if path.suffix == ".toml" and tomllib is None:
        raise SpecError(f"{path}: TOML specs need Python 3.11+; write it as JSON")
    try:
        text = path.read_text()
        raw = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise SpecError(f"{path} is not valid {path.suffix[1:].upper()} ({exc}); fix it") \
            from None
    if not isinstance(raw, dict):
        raise SpecError(f"{path} must hold a table of keys (factory, weights, ...)")
    known = {"factory", "weights", "channels", "pad", "bit_depth", "name", "python_path",
             "args", "train_dataset"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise SpecError(f"{path} has unknown keys {unknown}; known: {sorted(known)}")
    for key in ("factory", "weights"):
        if not isinstance(raw.get(key), str):
            raise SpecError(f"{path} needs {key} = \"...\" (a string)")
    weights = path.parent / raw["weights"]
    if weights.suffix.lower() in PICKLE_SUFFIXES or weights.suffix != ".safetensors":
        raise SpecError(
            f"{path}: weights {raw['weights']!r} are not a .safetensors file; medbench never "
            f"unpickles weights: convert them with safetensors.torch.save_file"
        )
    if not weights.is_file():
        raise SpecError(f"{path}: weights file {weights} does not exist")
    channels, pad = raw.get("channels", 1), raw.get("pad", 64)
    if channels not in (1, 3) or isinstance(channels, bool):
        raise SpecError(f"{path}: channels must be 1 or 3, not {channels!r}")
    if isinstance(pad, bool) or not isinstance(pad, int) or not 1 <= pad <= 1024:
        raise SpecError(f"{path}: pad must be an integer 1..1024, not {pad!r}")
    bits = raw.get("bit_depth")
    if bits is not None and (isinstance(bits, bool) or bits not in range(1, 17)):
        raise SpecError(f"{path}: bit_depth must be an integer 1..16, not {bits!r}")
    if not isinstance(raw.get("args", {}), dict):
        raise SpecError(f"{path}: args must be a table of keyword arguments")
    if ":" not in raw["factory"]:
        raise SpecError(f"{path}: factory {raw['factory']!r} is not 'package.module:callable'")
    extra = None
    if "python_path" in raw:
        if not isinstance(raw["python_path"], str):
            raise SpecError(f"{path}: python_path must be a folder name (a string)")
        extra = (path.parent / raw["python_path"]).resolve()
    name = str(raw.get("name") or path.stem)
    return Spec(path, name, raw["factory"], weights, channels, pad, bits,
                dict(raw.get("args", {})), raw.get("train_dataset"), extra)


def load_factory(spec: Spec):
    """Import the callable the spec names: **runs the spec's code** (a trusted folder only).

    Puts ``spec.python_path`` on ``sys.path`` first; raises :class:`SpecError` when the
    factory does not import or is not callable.
    """
    if spec.python_path is not None and str(spec.python_path) not in sys.path:
        sys.path.insert(0, str(spec.python_path))
    module_name, _, attr = spec.factory.partition(":")
    try:
        obj = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except Exception as exc:  # user code: any import error is the spec's problem
        raise SpecError(f"{spec.path}: factory {spec.factory!r} does not import "
                        f"({type(exc).__name__}: {exc}); install it or set python_path") \
            from None
    if not callable(obj):
        raise SpecError(f"{spec.path}: factory {spec.factory!r} is not callable")
    return obj


def pack_stream(model_id: bytes, bits: int, height: int, width: int, shape, strings) -> bytes:
    """Header, the model's ``shape`` and its length-prefixed ``strings``, in one stream."""
    dims = [int(d) for d in shape]
    if len(dims) > MAX_DIMS or any(not 0 <= d < 2**32 for d in dims):
        raise ValueError(f"the model's shape {dims} does not fit a byo stream")
    if not 1 <= len(strings) <= MAX_GROUPS:
        raise ValueError(f"the model returned {len(strings)} string groups (1..{MAX_GROUPS})")
    out = [_HEAD.pack(MAGIC, VERSION, model_id, bits, height, width, len(dims)),
           struct.pack(f">{len(dims)}I", *dims), struct.pack(">B", len(strings))]
    for group in strings:
        if len(group) > MAX_STRINGS:
            raise ValueError(f"a string group holds {len(group)} strings (most {MAX_STRINGS})")
        out.append(struct.pack(">H", len(group)))
        for s in group:
            out += [struct.pack(">I", len(s)), bytes(s)]
    return b"".join(out)


def unpack_stream(data: bytes) -> tuple[bytes, int, int, int, list[int], list[list[bytes]]]:
    """Model id, bit depth, height, width, shape and strings (raises ByoStreamError)."""
    def need(n: int, at: int, what: str) -> None:
        if at + n > len(data):
            raise ByoStreamError(f"byo stream of {len(data)} bytes ends inside its {what}; "
                                 f"it is truncated")

    need(_HEAD.size, 0, "header")
    magic, version, model_id, bits, h, w, ndim = _HEAD.unpack_from(data)
    if magic != MAGIC:
        raise ByoStreamError(f"not a medbench byo stream (magic {magic!r})")
    if version != VERSION:
        raise ByoStreamError(f"byo stream format version {version} is not supported "
                             f"(this medbench reads {VERSION})")
    if not 1 <= bits <= 16 or ndim > MAX_DIMS:
        raise ByoStreamError(f"byo stream declares bit depth {bits} and {ndim} shape "
                             f"dimensions; it is corrupt")
    check_declared_size("byo stream", h, w)
    at = _HEAD.size
    need(4 * ndim + 1, at, "shape")
    dims = list(struct.unpack_from(f">{ndim}I", data, at))
    at += 4 * ndim
    if any(d > max(h, w) for d in dims):
        raise ByoStreamError(f"byo stream declares a shape {dims} larger than its {h}x{w} "
                             f"image; it is corrupt")
    (groups,) = struct.unpack_from(">B", data, at)
    at += 1
    if not 1 <= groups <= MAX_GROUPS:
        raise ByoStreamError(f"byo stream declares {groups} string groups; it is corrupt")
    strings: list[list[bytes]] = []
    for _ in range(groups):
        need(2, at, "string counts")
        (count,) = struct.unpack_from(">H", data, at)
        at += 2
        if count > MAX_STRINGS:
            raise ByoStreamError(f"byo stream declares {count} strings in a group; corrupt")
        group = []
        for _ in range(count):
            need(4, at, "string lengths")
            (n,) = struct.unpack_from(">I", data, at)
            need(n, at + 4, "strings")
            group.append(bytes(data[at + 4 : at + 4 + n]))
            at += 4 + n
        strings.append(group)
    if at != len(data):
        raise ByoStreamError(f"byo stream has {len(data) - at} bytes after its strings; "
                             f"it is corrupt")
    return model_id, bits, h, w, dims, strings


class ByoCodec(Codec):
    """CompressAI-style models named by spec files in ``<--models>/byo/``."""

    name = "byo"
    kind = "learned"
    bit_depths = tuple(range(1, 17))
    rate_knob = "bring-your-own model spec <--models>/byo/<name>.toml; ordered by name"

    def __init__(self, context=None):
        super().__init__(context)
        self._specs: dict[str, Spec] | None = None
        self._models: dict[str, Any] = {}
        self._ids: dict[str, bytes] = {}
        self._device = None
        #: Spec files that were skipped, and why (file → reason).
        self.skipped: dict[str, str] = {}

    @property
    def folder(self) -> Path:
        return Path(self.context.models_dir) / "byo"

    @property
    def trusted(self) -> bool:
        """Whether the user trusts this spec folder (its factories may be imported)."""
        chosen = self.context.trusted_byo
        return chosen is not None and Path(chosen).resolve() == self.folder.resolve()

    def specs(self) -> dict[str, Spec]:
        """Setting name → usable spec, ordered by name: parsed and checked and, in a
        trusted folder only, its factory imported (a spec whose factory fails is skipped)."""
        if self._specs is None:
            found: dict[str, Spec] = {}
            paths = sorted(self.folder.glob("*.toml")) + sorted(self.folder.glob("*.json"))
            for path in paths:
                try:
                    spec = read_spec(path)
                    if self.trusted:
                        load_factory(spec)
                    if spec.name in found:
                        raise SpecError(f"{path}: name {spec.name!r} is already used by "
                                        f"{found[spec.name].path}; rename one")
                except SpecError as exc:
                    log.warning("skipping bring-your-own spec: %s", exc)
                    self.skipped[str(path)] = str(exc)
                    continue
                found[spec.name] = spec
            self._specs = dict(sorted(found.items()))
        return self._specs

    def settings(self) -> list[str]:
        return list(self.specs())

    def unavailable_reason(self) -> str | None:
        specs = self.specs()
        if specs and self.trusted:
            return None
        if specs:
            return self.untrusted_reason()
        broken = f" ({len(self.skipped)} broken spec(s) skipped)" if self.skipped else ""
        return (f"no bring-your-own model spec in {self.folder}{broken}; add "
                f"<name>.toml with factory and weights (see the README)")

    def untrusted_reason(self) -> str:
        """Why the specs' code is not imported, and how to trust the folder (one line)."""
        given = self.context.trusted_byo
        other = (f"--trust-byo {given} is not this spec folder; "
                 if given is not None else "")
        return (f"{other}the {len(self.specs())} spec(s) in {self.folder} name Python code "
                f"that medbench imports only when byo is named in --codecs and the folder "
                f"is trusted: --codecs byo --trust-byo {self.folder}")

    def describe(self) -> dict[str, Any]:
        """The base description, each spec's factory (``notes``) and skipped specs."""
        info = super().describe()
        state = "trusted" if self.trusted else "not imported"
        info["notes"] = [
            f"{name}: factory {spec.factory}"
            + (f" (python_path {spec.python_path})" if spec.python_path else "")
            + f", weights {spec.weights.name} [{state}]"
            for name, spec in self.specs().items()
        ] + [f"skipped {path}: {reason}" for path, reason in self.skipped.items()]
        info["skipped"] = dict(self.skipped)
        return info

    @property
    def device(self):
        if self._device is None:
            from medbench.codecs.learned.coding import resolve_device

            self._device = resolve_device(self.context.device)
        return self._device

    def model(self, setting: str):
        """The spec's module with its weights, in eval mode (cached); refused (SpecError)
        unless the folder is trusted, since building it runs the spec's code."""
        self.check_setting(setting)
        if not self.trusted:
            raise SpecError(self.untrusted_reason())
        if setting not in self._models:
            from safetensors.torch import load_file

            from medbench.codecs.learned.checkpoint import _tensors_id

            spec = self.specs()[setting]
            try:
                tensors = load_file(str(spec.weights))
            except Exception as exc:  # safetensors raises its own types for bad files
                raise SpecError(f"{spec.weights} is not a readable safetensors file "
                                f"({exc})") from None
            net = load_factory(spec)(**spec.args)
            try:
                net.load_state_dict(tensors, strict=True)
            except RuntimeError as exc:
                raise SpecError(f"{spec.weights} does not match {spec.factory} "
                                f"({str(exc).splitlines()[0]})") from None
            digest = hashlib.sha256(f"{spec.factory}|{_tensors_id(tensors)}".encode())
            self._ids[setting] = digest.digest()[:8]
            self._models[setting] = net.to(self.device).eval()
        return self._models[setting]

    def library(self, setting: str) -> str:
        """``byo <factory> (<its distribution>; torch …, cpu …)``: the spec's factory is the
        code that writes the strings (medbench only frames them)."""
        from medbench.codecs.learned.coding import runtime

        spec = self.specs().get(setting)
        factory = spec.factory if spec is not None else "(no such spec)"
        provider = distribution(factory.partition(":")[0]) if spec is not None else None
        try:
            where = runtime(self.device, entropy_coder=False)
        except MedbenchError as exc:  # --device cuda without a GPU
            where = str(exc)
        return f"byo {factory} ({provider + '; ' if provider else ''}{where})"

    def setting_info(self, setting: str) -> dict[str, Any]:
        spec = self.specs().get(setting)
        if spec is None:
            self.check_setting(setting)
        self.model(setting)  # loaded here, so latency never includes reading weights
        info = {
            "model_id": self._ids[setting].hex(), "arch": "byo", "factory": spec.factory,
            "weights": str(spec.weights), "spec": str(spec.path), "pad": spec.pad,
            "channels": spec.channels,
            "input": ("grey replicated to 3 channels; output is the mean of the 3"
                      if spec.channels == 3 else "grey, 1 channel"),
        }
        return {"train_dataset": spec.train_dataset,
                "model_info": json.dumps(info, sort_keys=True)}

    def encode(self, image: Image, setting: str) -> bytes:
        import torch

        from medbench.codecs.learned.models import pad_to_stride

        self.check(image)
        net = self.model(setting)
        spec = self.specs()[setting]
        if spec.bit_depth is not None and image.bit_depth != spec.bit_depth:
            raise UnsupportedInput(f"byo model {setting} codes {spec.bit_depth}-bit images, "
                                   f"not {image.bit_depth}-bit ({image.image_id}); use "
                                   f"--bit-depth {spec.bit_depth}")
        if max(image.height, image.width) > 0xFFFF:
            raise UnsupportedInput(f"byo codes images up to 65535 px a side ({image.image_id})")
        x = torch.from_numpy(image.pixels.astype(np.float32) / peak_value(image.bit_depth))
        x, _, _ = pad_to_stride(x[None, None].to(self.device), spec.pad)
        if spec.channels == 3:
            x = x.repeat(1, 3, 1, 1)
        with torch.no_grad():
            out = net.compress(x)
        strings = [list(group) for group in out["strings"]]
        return pack_stream(self._ids[setting], image.bit_depth, image.height, image.width,
                           out["shape"], strings)

    def decode(self, data: bytes) -> np.ndarray:
        import torch

        model_id, bits, h, w, dims, strings = unpack_stream(bytes(data))
        if not self.trusted:  # finding the stream's model would import the specs' code
            raise SpecError(self.untrusted_reason())
        setting = next((s for s in self.specs() if self._id_of(s) == model_id), None)
        if setting is None:
            raise ByoStreamError(f"this stream was written by byo model {model_id.hex()}, "
                                 f"which is not among the specs in {self.folder}")
        try:
            with torch.no_grad():
                x_hat = self.model(setting).decompress(strings, torch.Size(dims))["x_hat"]
        except Exception as exc:  # the user's model failing on a corrupt stream
            raise ByoStreamError(f"byo model {setting} could not decompress this stream "
                                 f"({type(exc).__name__}: {exc}); it is corrupt") from None
        if x_hat.ndim != 4 or x_hat.shape[-2] < h or x_hat.shape[-1] < w:
            raise ByoStreamError(f"byo model {setting} decompressed {tuple(x_hat.shape)}, "
                                 f"not a (1, C, >= {h}, >= {w}) image")
        x = x_hat[0, :, :h, :w].float().mean(dim=0).clamp(0.0, 1.0) * peak_value(bits)
        return np.ascontiguousarray(torch.round(x).cpu().numpy().astype(dtype_for(bits)))

    def _id_of(self, setting: str) -> bytes | None:
        try:
            self.model(setting)
        except MedbenchError as exc:
            log.warning("skipping bring-your-own spec: %s", exc)
            return None
        return self._ids[setting]
