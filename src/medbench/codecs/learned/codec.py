"""The learned codecs, one per architecture of :mod:`.archs`: each trained model is one setting.

Every registered architecture is a codec of its name (:func:`architecture_codecs`): the
built-in ``ae``, ``cnn``, ``dcae`` and ``hyperprior`` keep the classes their entry points
name; any other (``ckbd``, or one from an outside package) gets a :class:`LearnedCodec`
subclass made from its declaration, with no entry point of its own.

Models are found in two places, in this order: ``<--models>/<arch>/<name>/`` (what
``medbench train`` writes) and the small models shipped in
``medbench/codecs/learned/pretrained/<arch>/`` (trained on ``sample`` by the commands
recorded in its README). A model in ``--models`` shadows a shipped one of the same name.
Settings are the model folder names, ordered by each model's measured validation rate
(low to high), so every codec gives an RD curve.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

import medbench
from medbench.codecs.base import Codec
from medbench.codecs.learned import archs
from medbench.codecs.learned.architecture import Architecture
from medbench.codecs.learned.bitstream import MAGIC, BitstreamError, unpack
from medbench.codecs.learned.checkpoint import (
    Checkpoint,
    CheckpointError,
    CompressionModel,
    find_checkpoints,
    find_milestones,
    training_images,
)
from medbench.codecs.learned.coding import (
    decode_streams,
    encode_images,
    resolve_device,
    runtime,
)
from medbench.codecs.learned.complexity import Complexity, model_complexity
from medbench.codecs.provenance import TrainingImages
from medbench.errors import MedbenchError, UnsupportedInput
from medbench.image import Image

log = logging.getLogger(__name__)

#: Models shipped with the package (see pretrained/README.md for how they were made).
PRETRAINED_DIR = Path(__file__).resolve().parent / "pretrained"


def model_roots(models_dir: Path) -> list[Path]:
    """Where models are looked up, first match wins."""
    return [Path(models_dir), PRETRAINED_DIR]


class LearnedCodec(Codec):
    """A codec bound to the trained models of one architecture."""

    kind = "learned"
    arch = ""
    #: First bytes of this codec's streams.
    magic = MAGIC
    bit_depths = tuple(range(1, 17))
    rate_knob = ("trained model <train dataset>-<size>; ordered by validation bpp, "
                 "low to high rate")

    def __init__(self, context=None):
        super().__init__(context)
        self._checkpoints: dict[str, Checkpoint] | None = None
        self._milestones: set[str] = set()  # settings of checkpoints() that are milestones
        self._loaded: dict[str, CompressionModel] = {}
        self._device = None
        #: Model folders that were skipped, and why (folder → reason).
        self.skipped: dict[str, str] = {}

    # -- models ----------------------------------------------------------------------
    def checkpoints(self) -> dict[str, Checkpoint]:
        """Setting name → finished model, ordered from low to high validation rate."""
        if self._checkpoints is None:
            found: dict[str, Checkpoint] = {}
            for root in model_roots(self.context.models_dir):
                for ckpt in find_checkpoints(root, self.arch, self.skipped):
                    if ckpt.name in found:
                        log.info("%s model %s in %s shadows the one in %s", self.arch,
                                 ckpt.name, found[ckpt.name].folder.parent, root)
                        continue
                    found[ckpt.name] = ckpt
            order = sorted(found.values(), key=lambda c: (_val_bpp(c), c.name))
            self._checkpoints = {c.name: c for c in order}
            if self.context.milestones:  # after the finished models, smallest budget first
                milestones = find_milestones(order, self.skipped)
                self._milestones = set(milestones)
                self._checkpoints.update(milestones)
        return self._checkpoints

    def forget_models(self) -> None:
        """Look the models up again on next use (after training added some)."""
        self._checkpoints = None
        self._loaded.clear()
        self.skipped.clear()

    def unavailable_reason(self) -> str | None:
        try:
            self.device  # noqa: B018 (--device cuda on a machine without a GPU)
        except MedbenchError as exc:
            return str(exc)
        if self.checkpoints():
            return None
        broken = f" ({len(self.skipped)} broken model folder(s) skipped)" if self.skipped else ""
        return (
            f"no trained {self.arch} model in {self.context.models_dir}{broken}; train one with "
            f"`medbench train --model {self.arch} --dataset sample --models "
            f"{self.context.models_dir}` (or pass --train-missing to medbench run)"
        )

    def settings(self) -> list[str]:
        return list(self.checkpoints())

    def library(self, setting: str) -> str:
        """``medbench <version> <arch> (torch …, constriction …, cpu AVX512)``: the code that
        turns the model into bytes and where it ran (:func:`~.coding.runtime`)."""
        try:
            where = runtime(self.device)
        except MedbenchError as exc:  # --device cuda without a GPU
            where = str(exc)
        return f"medbench {medbench.__version__} {self.arch} ({where})"

    def target_settings(self) -> list[str]:
        """Finished models only: a half-trained milestone (``run --milestones``) never
        stands in for a model in a ``--target`` row."""
        checkpoints = self.checkpoints()
        return [s for s in checkpoints if s not in self._milestones]

    def describe(self) -> dict[str, Any]:
        """The base description plus ``skipped`` (broken model folders and why) and a note
        per model shape: its parameters and kMAC per pixel (:meth:`complexity`)."""
        info = super().describe()
        info["skipped"] = dict(self.skipped)
        info["notes"].extend(complexity_notes({s: self.complexity(s) for s in self.settings()}))
        return info

    def complexity(self, setting: str) -> Complexity:
        """Parameters and encoder/decoder kMAC per pixel of the model of ``setting``,
        counted from its layers (:mod:`~medbench.codecs.learned.complexity`)."""
        cfg = self.checkpoint(setting).config
        return model_complexity(cfg["arch"], int(cfg["latent"]), int(cfg["width"]),
                                int(cfg.get("components", 3)))

    def checkpoint(self, setting: str) -> Checkpoint:
        self.check_setting(setting)
        return self.checkpoints()[setting]

    @property
    def device(self):
        if self._device is None:
            self._device = resolve_device(self.context.device)
        return self._device

    def model(self, setting: str) -> CompressionModel:
        """The loaded model of ``setting`` (cached)."""
        if setting not in self._loaded:
            self._loaded[setting] = self.checkpoint(setting).load(self.device)
        return self._loaded[setting]

    def setting_info(self, setting: str) -> dict[str, Any]:
        """``train_dataset`` and ``model_info`` (JSON: model, objective, training budget).

        The harness asks for this before timing a cell, so the model is loaded here:
        latency columns never include reading a checkpoint.
        """
        ckpt = self.checkpoint(setting)
        self.model(setting)
        cfg = ckpt.config
        train = cfg.get("train", {})
        dataset = train.get("dataset")
        parent = cfg.get("parent")
        if isinstance(parent, dict) and parent.get("dataset") \
                and parent["dataset"] != dataset:  # fine-tuned on another dataset
            # (one fine-tuned on its parent's dataset, e.g. a λ of a ladder started from
            # its neighbour, is of that dataset: one RD curve with its ladder)
            dataset = f"{dataset} (from {parent['dataset']})"
        info = {
            "model_id": ckpt.model_id,
            "arch": cfg["arch"],
            "latent": cfg["latent"],
            "width": cfg["width"],
            "objective": cfg.get("objective"),
            "lmbda": cfg.get("lmbda"),
            "protocol": train.get("protocol"),
            "epochs": train.get("epochs_run"),
            "budget": cfg.get("budget"),
            "validation": cfg.get("validation"),
            "folder": str(ckpt.folder),
        }
        for key in ("milestone", "parent"):  # budget curve and transfer learning
            if cfg.get(key) is not None:
                info[key] = cfg[key]
        complexity = self.complexity(setting).as_dict()
        info.update(complexity)
        return {"train_dataset": dataset, **complexity,
                "model_info": json.dumps(info, sort_keys=True)}

    def training_images(self, setting: str) -> TrainingImages | None:
        """The images the model of ``setting`` trained and validated on (its config's
        ``trained_on``; milestones list their model's)."""
        return training_images(self.checkpoint(setting))

    # -- coding ----------------------------------------------------------------------
    def check(self, image: Image) -> None:
        super().check(image)
        if max(image.height, image.width) > 0xFFFF:
            raise UnsupportedInput(
                f"{self.name} codes images up to 65535 px a side, not "
                f"{image.height}x{image.width} ({image.image_id}); use --size"
            )

    def encode(self, image: Image, setting: str) -> bytes:
        return self.encode_batch([image], setting)[0]

    def decode(self, data: bytes) -> np.ndarray:
        return self.decode_batch([data])[0]

    def encode_batch(self, images: Sequence[Image], setting: str) -> list[bytes]:
        """Bitstreams of several images; same-size images share one forward pass."""
        for image in images:
            self.check(image)
        ckpt = self.checkpoint(setting)
        return encode_images(self.model(setting), ckpt.model_id, images, self.device)

    def decode_batch(self, streams: Sequence[bytes]) -> list[np.ndarray]:
        """Pixels of several streams (any mix of this codec's models)."""
        by_setting: dict[str, list[int]] = {}
        for i, data in enumerate(streams):
            header, _ = unpack(bytes(data), magic=self.magic, kind=self.arch)
            by_setting.setdefault(self._setting_of(header.model_hex), []).append(i)
        out: list[np.ndarray | None] = [None] * len(streams)
        for setting, idx in by_setting.items():
            pixels = decode_streams(self.model(setting), [streams[i] for i in idx], self.device)
            for i, p in zip(idx, pixels):
                out[i] = p
        return out  # type: ignore[return-value]

    def _setting_of(self, model_hex: str) -> str:
        """The setting of the first model with id ``model_hex`` that loads.

        Copies of one model share its id; a copy whose folder turns out broken when
        loaded is skipped (with a warning) in favour of the next.
        """
        for name, ckpt in self.checkpoints().items():
            if ckpt.model_id != model_hex:
                continue
            try:
                self.model(name)
            except CheckpointError as exc:
                if str(ckpt.folder) not in self.skipped:
                    log.warning("skipping model folder: %s", exc)
                    self.skipped[str(ckpt.folder)] = str(exc)
                continue
            return name
        roots = ", ".join(str(r / self.arch) for r in model_roots(self.context.models_dir))
        raise BitstreamError(
            f"this stream was written by {self.arch} model {model_hex}, which is not among "
            f"the loadable models in {roots}; pass --models with the folder that holds it"
        )


def complexity_notes(found: dict[str, Complexity]) -> list[str]:
    """``medbench codecs`` lines: one per distinct complexity, naming its settings."""
    shapes: dict[Complexity, list[str]] = {}
    for setting, complexity in found.items():
        shapes.setdefault(complexity, []).append(setting)
    return [f"{c.params:,} params, {c.kmac_per_pixel_enc:g} kMAC/pixel encode, "
            f"{c.kmac_per_pixel_dec:g} decode: {', '.join(names)}"
            for c, names in shapes.items()]


def _val_bpp(ckpt: Checkpoint) -> float:
    validation = ckpt.config.get("validation", {})
    value = validation.get("bpp") if isinstance(validation, dict) else None
    return float(value) if isinstance(value, (int, float)) else float("inf")


class AeCodec(LearnedCodec):
    """The seed paper's fully connected autoencoder (on 16×16 blocks), as a codec."""

    name = "ae"
    arch = "ae"


class CnnCodec(LearnedCodec):
    """The seed paper's shallow convolutional autoencoder, as a codec."""

    name = "cnn"
    arch = "cnn"


class DcaeCodec(LearnedCodec):
    """The seed paper's deep convolutional autoencoder (PReLU), as a codec."""

    name = "dcae"
    arch = "dcae"


class HyperpriorCodec(LearnedCodec):
    """The mean-scale hyperprior (Minnen, Ballé, Toderici 2018): the learned reference."""

    name = "hyperprior"
    arch = "hyperprior"
    magic = b"MBHP"


_MADE: dict[str, type[LearnedCodec]] = {}


def architecture_codecs() -> dict[str, type[LearnedCodec]]:
    """Codec name → class, one per registered architecture (see the module notes).

    A :class:`LearnedCodec` subclass defined for an architecture (``arch`` set) is its
    codec; otherwise one is made, once, from the :class:`Architecture`.
    """
    defined: dict[str, type[LearnedCodec]] = {}
    for cls in _subclasses(LearnedCodec):
        if cls.arch and cls.name == cls.arch:
            defined.setdefault(cls.arch, cls)
    out: dict[str, type[LearnedCodec]] = {}
    for name, spec in archs.registered().items():
        if name in defined:
            out[name] = defined[name]
        else:
            if name not in _MADE or _MADE[name].magic != spec.magic:
                _MADE[name] = _codec_class(spec)
            out[name] = _MADE[name]
    return out


def _subclasses(cls: type) -> list[type]:
    found = []
    for sub in cls.__subclasses__():
        found.append(sub)
        found.extend(_subclasses(sub))
    return found


def _codec_class(spec: Architecture) -> type[LearnedCodec]:
    title = "".join(part.capitalize() for part in spec.name.replace("-", "_").split("_"))
    return type(f"{title}Codec", (LearnedCodec,), {
        "__doc__": spec.summary, "__module__": __name__, "name": spec.name,
        "arch": spec.name, "magic": spec.magic,
    })
