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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from medbench.codecs.learned.entropy import CodingTables, FactorizedDensity
from medbench.codecs.learned.models import Autoencoder, build_model
from medbench.errors import MedbenchError

log = logging.getLogger(__name__)

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
FORMAT = "medbench-learned/1"


class CheckpointError(MedbenchError):
    """A model folder that cannot be used (missing file, wrong format, bad tensors)."""


class CompressionModel(nn.Module):
    """An autoencoder, the density of its latents, and (once frozen) the coding tables."""

    def __init__(self, arch: str, latent: int | None = None, width: int | None = None,
                 components: int = 3):
        super().__init__()
        self.net: Autoencoder = build_model(arch, latent, width)
        self.density = FactorizedDensity(self.net.latent, components)
        self.tables: CodingTables | None = None

    @property
    def stride(self) -> int:
        return self.net.stride

    def config(self) -> dict[str, Any]:
        return {**self.net.config(), "components": self.density.components}

    def weights(self) -> dict[str, torch.Tensor]:
        """Every tensor of the checkpoint, on the CPU, contiguous."""
        tensors = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        if self.tables is not None:
            tensors.update(self.tables.as_tensors())
        return tensors

    def load_weights(self, tensors: dict[str, torch.Tensor], source: str) -> None:
        own = {k: v for k, v in tensors.items() if not k.startswith("tables.")}
        try:
            self.load_state_dict(own, strict=True)
        except RuntimeError as exc:
            raise CheckpointError(
                f"{source} does not match a {self.net.arch} model with latent "
                f"{self.net.latent} and width {self.net.width} ({exc}); re-train it"
            ) from None
        if "tables.freqs" in tensors:
            self.tables = CodingTables.from_tensors(tensors)


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
        model = CompressionModel(self.arch, int(self.config["latent"]),
                                 int(self.config["width"]), int(self.config["components"]))
        tensors = load_file(str(self.weights_path))  # safetensors: no pickle
        model.load_weights(tensors, str(self.weights_path))
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
    digest = hashlib.sha256()
    tensors = load_file(str(path))
    for name in sorted(tensors):
        t = tensors[name].contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()[:16]


def save_checkpoint(model: CompressionModel, folder: Path, config: dict[str, Any]) -> Checkpoint:
    """Write ``model.safetensors`` then ``config.json`` (the latter marks it finished)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    meta = {"format": FORMAT, "arch": model.net.arch}
    save_file(model.weights(), str(folder / WEIGHTS), metadata=meta)
    model_id = file_id(folder / WEIGHTS)
    full = {"format": FORMAT, **config, **model.config(), "model_id": model_id}
    tmp = folder / (CONFIG + ".tmp")
    tmp.write_text(json.dumps(full, indent=2, sort_keys=False) + "\n")
    tmp.replace(folder / CONFIG)
    return Checkpoint(folder, full, model_id)


def read_checkpoint(folder: Path) -> Checkpoint:
    """The finished model in ``folder`` (raises :class:`CheckpointError`)."""
    folder = Path(folder)
    config_path, weights = folder / CONFIG, folder / WEIGHTS
    if not config_path.is_file() or not weights.is_file():
        raise CheckpointError(
            f"{folder} is not a finished model: it needs {CONFIG} and {WEIGHTS}; "
            f"finish it with `medbench train` (training resumes from its last epoch)"
        )
    try:
        config = json.loads(config_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{config_path} is not valid JSON ({exc}); re-train") from None
    if config.get("format") != FORMAT:
        raise CheckpointError(
            f"{config_path} has format {config.get('format')!r}, expected {FORMAT!r}"
        )
    for key in ("arch", "latent", "width", "components"):
        if key not in config:
            raise CheckpointError(f"{config_path} lacks {key!r}; re-train this model")
    return Checkpoint(folder, config, file_id(weights))


def find_checkpoints(root: Path, arch: str) -> list[Checkpoint]:
    """Finished models of ``arch`` under ``root/arch``; broken folders are logged, skipped."""
    base = Path(root) / arch
    if not base.is_dir():
        return []
    found = []
    for folder in sorted(p for p in base.iterdir() if p.is_dir()):
        if not (folder / CONFIG).is_file():
            continue  # unfinished training (resumable) or foreign folder
        try:
            ckpt = read_checkpoint(folder)
        except CheckpointError as exc:
            log.warning("skipping model folder: %s", exc)
            continue
        if ckpt.arch != arch:
            log.warning("skipping %s: it holds a %s model, not %s", folder, ckpt.arch, arch)
            continue
        found.append(ckpt)
    return found
