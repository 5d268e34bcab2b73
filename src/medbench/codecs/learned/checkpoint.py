"""A trained model on disk: ``model.safetensors`` (weights and coding tables) + ``config.json``.

Layout: ``<models>/<arch>/<name>/{model.safetensors, config.json}``. The weights file is
read with :func:`safetensors.torch.load_file`, which parses a JSON header and raw
tensor bytes: nothing is unpickled, so a checkpoint from anywhere is safe to load. The
model id written into every bitstream is the start of a SHA-256 over its tensors.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import torch
from safetensors.torch import load_file, save_file

from medbench.codecs import provenance
from medbench.codecs.learned import archs
from medbench.codecs.learned.archs import new_model
from medbench.codecs.learned.compression import CheckpointError, CompressionModel
from medbench.codecs.learned.entropy import TableError

__all__ = ["Checkpoint", "CheckpointError", "CompressionModel", "new_model", "file_id",
           "save_checkpoint", "read_checkpoint", "find_checkpoints", "training_images"]

log = logging.getLogger(__name__)
T = TypeVar("T")

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
#: Sub-folder of a model holding its milestone checkpoints (``milestones/<budget>/``).
MILESTONES = "milestones"
FORMAT = "medbench-learned/1"
#: Bounds on a config's sizes, checked before any tensor is made: a hostile
#: ``components: 1e8`` must not allocate gigabytes. They are far above any real model.
SIZE_LIMITS = {"latent": 4096, "width": 4096, "components": 256}


@dataclass
class Checkpoint:
    """A finished model folder: its config and where its weights are."""

    folder: Path
    config: dict[str, Any]
    model_id: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.folder.name

    @property
    def arch(self) -> str:
        return str(self.config["arch"])

    @property
    def weights_path(self) -> Path:
        return self.folder / WEIGHTS

    def load(self, device: str | torch.device = "cpu") -> CompressionModel:
        """The model with its weights and tables, in eval mode on ``device``."""
        sizes = _sizes(self.config, self.folder / CONFIG)
        model = new_model(self.arch, *sizes)
        model.load_weights(_load_tensors(self.weights_path), str(self.weights_path))
        if model.tables is None:
            raise CheckpointError(
                f"{self.weights_path} has no coding tables; it is not a finished model"
            )
        return model.to(device).eval()


def file_id(path: Path) -> str:
    """Model id: 16 hex digits of a SHA-256 over the weights file's tensors.

    The hash covers each tensor's name, dtype, shape and bytes in name order, not the
    file's bytes: safetensors may order its JSON header differently from save to save,
    and the same weights must keep the same id.
    """
    return _tensors_id(_load_tensors(path))


def _tensors_id(tensors: dict[str, torch.Tensor]) -> str:
    digest = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()[:16]


def save_checkpoint(model: CompressionModel, folder: Path, config: dict[str, Any],
                    half: bool = False) -> Checkpoint:
    """Write ``model.safetensors`` then ``config.json`` (the latter marks it finished);
    ``half``: weights as float16 (see :meth:`CompressionModel.round_to_half`)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    meta = {"format": FORMAT, "arch": model.net.arch}
    save_file(model.weights(half), str(folder / WEIGHTS), metadata=meta)
    model_id = file_id(folder / WEIGHTS)
    full = {"format": FORMAT, **config, **model.config(), "model_id": model_id}
    tmp = folder / (CONFIG + ".tmp")
    tmp.write_text(json.dumps(full, indent=2, sort_keys=False) + "\n")
    tmp.replace(folder / CONFIG)
    return Checkpoint(folder, full, model_id)


def read_checkpoint(folder: Path) -> Checkpoint:
    """The finished model in ``folder`` (raises :class:`CheckpointError`).

    The config and the weights file are checked against each other before the model is
    ever built: sizes within :data:`SIZE_LIMITS`, every tensor of the right shape (built
    on torch's ``meta`` device, which allocates nothing) and coding tables that decode.
    """
    folder = Path(folder)
    config_path, weights = folder / CONFIG, folder / WEIGHTS
    config = read_config(folder, FORMAT, "finish it with `medbench train` (training resumes "
                                         "from its last epoch)")
    for key in ("arch", "latent", "width", "components"):
        if key not in config:
            raise CheckpointError(f"{config_path} lacks {key!r}; re-train this model")
    if config["arch"] not in archs.registered():
        raise CheckpointError(
            f"{config_path} names architecture {config['arch']!r}, not one of "
            f"{', '.join(archs.names())}; re-train this model"
        )
    sizes = _sizes(config, config_path)
    tensors = _load_tensors(weights)
    _check_shapes(str(config["arch"]), sizes, tensors, weights)
    return Checkpoint(folder, config, _tensors_id(tensors))


def read_config(folder: Path, fmt: str, fix: str) -> dict[str, Any]:
    """The ``config.json`` of the finished model in ``folder``, whose format is ``fmt``.

    Raises :class:`CheckpointError` (``fix`` says how to finish an unfinished folder)
    unless both files are there, the config is a JSON object of that format, and its
    ``validation`` and ``train`` entries, when present, are objects.
    """
    config_path = Path(folder) / CONFIG
    if not config_path.is_file() or not (Path(folder) / WEIGHTS).is_file():
        raise CheckpointError(
            f"{folder} is not a finished model: it needs {CONFIG} and {WEIGHTS}; {fix}"
        )
    try:
        config = json.loads(config_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{config_path} is not valid JSON ({exc}); re-train") from None
    if not isinstance(config, dict):
        raise CheckpointError(
            f"{config_path} holds a JSON {type(config).__name__}, not an object; re-train"
        )
    if config.get("format") != fmt:
        raise CheckpointError(
            f"{config_path} has format {config.get('format')!r}, expected {fmt!r}"
        )
    for key in ("validation", "train"):
        if not isinstance(config.get(key, {}), dict):
            raise CheckpointError(
                f"{config_path}: {key!r} must be a JSON object, not "
                f"{type(config[key]).__name__}; re-train this model"
            )
    try:  # the images it trained on: a malformed list must not pass for "none seen"
        provenance.from_config(config, str(config_path))
    except provenance.ProvenanceError as exc:
        raise CheckpointError(str(exc)) from None
    return config


def training_images(ckpt: Checkpoint) -> provenance.TrainingImages | None:
    """The images ``ckpt`` trained and validated on (its ``trained_on`` block, see
    :mod:`medbench.codecs.provenance`); None for a model that records none. Parsed once
    per checkpoint (every cell of a run asks)."""
    if "trained_on" not in ckpt.extra:
        ckpt.extra["trained_on"] = provenance.from_config(ckpt.config,
                                                          str(ckpt.folder / CONFIG))
    return ckpt.extra["trained_on"]


def _sizes(config: dict[str, Any], source: Path) -> tuple[int, int, int]:
    """``latent``, ``width``, ``components`` of a config: positive integers in bounds."""
    out = []
    for key, limit in SIZE_LIMITS.items():
        value = config.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= limit:
            raise CheckpointError(
                f"{source}: {key!r} is {value!r}, not an integer 1..{limit}; re-train"
            )
        out.append(value)
    return out[0], out[1], out[2]


def _load_tensors(path: Path) -> dict[str, torch.Tensor]:
    """Every tensor of a safetensors file (no pickle); a broken file is a CheckpointError."""
    try:
        return load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types for bad files
        raise CheckpointError(
            f"{path} is not a readable safetensors file ({exc}); re-train or re-copy it"
        ) from None


def _check_shapes(arch: str, sizes: tuple[int, int, int], tensors: dict[str, torch.Tensor],
                  path: Path) -> None:
    """Raise unless ``tensors`` hold exactly the model ``arch``/``sizes`` and its tables."""
    with torch.device("meta"):  # shapes only: no memory is allocated
        model = new_model(arch, *sizes)
        expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in tensors.items()
             if not k.startswith(model.table_prefixes)}
    if found != expected:
        wrong = sorted(k for k in expected.keys() | found.keys()
                       if expected.get(k) != found.get(k))
        raise CheckpointError(
            f"{path} does not match a {arch} model with latent {sizes[0]}, width "
            f"{sizes[1]} and {sizes[2]} components (tensors {', '.join(wrong[:3])} "
            f"differ); re-train it"
        )
    if "tables.freqs" not in tensors:
        raise CheckpointError(f"{path} has no coding tables; it is not a finished model")
    try:
        model.check_table_tensors(tensors)
    except TableError as exc:
        raise CheckpointError(f"{path}: {exc}; re-train this model") from None


def find_checkpoints(root: Path, arch: str,
                     skipped: dict[str, str] | None = None) -> list[Checkpoint]:
    """Finished models of ``arch`` under ``root/arch``.

    A broken folder is skipped with a one-line warning; its reason is also put in
    ``skipped`` (folder → reason) when given, so callers can show it.
    """
    base = Path(root) / arch
    if not base.is_dir():
        return []
    skipped = {} if skipped is None else skipped
    return [ckpt for folder, ckpt in _loadable(base, arch, skipped, "model")]


def _loadable(base: Path, arch: str, skipped: dict[str, str],
              what: str) -> list[tuple[Path, Checkpoint]]:
    """Every sub-folder of ``base`` holding a finished ``arch`` model, by name; a broken or
    foreign one is skipped with a one-line warning and its reason put in ``skipped``."""
    def read(folder: Path) -> Checkpoint:
        ckpt = read_checkpoint(folder)
        if ckpt.arch != arch:
            raise CheckpointError(f"{folder} holds a {ckpt.arch} model, not {arch}")
        return ckpt

    return loadable_folders(base, read, skipped, what)


def loadable_folders(base: Path, read: Callable[[Path], T], skipped: dict[str, str],
                     what: str) -> list[tuple[Path, T]]:
    """``(folder, read(folder))`` for every sub-folder of ``base`` with a ``config.json``,
    by name. A folder ``read`` refuses (:class:`CheckpointError`) is skipped with a
    one-line warning naming ``what`` it is, and its reason put in ``skipped``; one
    without a config is unfinished training (resumable) or foreign, and passed over."""
    found = []
    for folder in sorted(p for p in base.iterdir() if p.is_dir()):
        if not (folder / CONFIG).is_file():
            continue
        try:
            found.append((folder, read(folder)))
        except CheckpointError as exc:
            log.warning("skipping %s folder: %s", what, exc)
            skipped[str(folder)] = str(exc)
    return found


def find_milestones(models: list[Checkpoint],
                    skipped: dict[str, str] | None = None) -> dict[str, Checkpoint]:
    """Setting ``<model>@<budget>`` → milestone checkpoint, for every model in ``models``.

    Milestones are finished models of their own in ``<model>/milestones/<budget>/`` (see
    ``medbench train --budget``); they are ordered by budget (device seconds, then
    steps), then by their model's position in ``models``. Broken ones are skipped as in
    :func:`find_checkpoints`.
    """
    skipped = {} if skipped is None else skipped
    found = []
    for rank, model in enumerate(models):
        base = model.folder / MILESTONES
        if not base.is_dir():
            continue
        for folder, ckpt in _loadable(base, model.arch, skipped, "milestone"):
            budget = ckpt.config.get("budget")
            budget = budget if isinstance(budget, dict) else {}
            key = (_number(budget.get("wall_s")), _number(budget.get("steps")), rank)
            found.append((key, f"{model.name}@{folder.name}", ckpt))
    return {name: ckpt for _, name, ckpt in sorted(found, key=lambda f: f[0])}


def _number(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) else float("inf")
