"""Transfer learning (``medbench train --init MODEL_DIR``): start from a finished model and
fine-tune it on another dataset.

The new model has the parent's shape (architecture, latent and hidden channels, density
components), so its weights load as they are; only the schedule and the data are new. An
architecture may also start from another it extends (its ``warm_start``: ``ckbd`` from a
trained ``hyperprior`` of the same sizes): the shared layers load, the added ones start
fresh. Its config.json records the parent (``parent``: folder, model id, train dataset,
name), and its rows' ``train_dataset`` reads ``<dataset> (from <parent dataset>)``, so
the generalization matrix shows fine-tuned models beside those trained from scratch. A
model fine-tuned on its parent's own dataset (another λ of a ladder, started from its
neighbour) reads just that dataset: its rows are one RD curve with the ladder's.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from medbench.codecs.learned.archs import get as get_architecture
from medbench.codecs.learned.checkpoint import CompressionModel, read_checkpoint
from medbench.codecs.provenance import TrainingImages, from_config
from medbench.errors import MedbenchError

if TYPE_CHECKING:
    from medbench.training.config import TrainConfig

#: Density components of a model ``medbench train`` builds (CompressionModel's default).
COMPONENTS = 3


def check_parent(cfg: TrainConfig) -> dict[str, Any]:
    """The config.json of ``cfg.init``, after checking it fits ``cfg``.

    Fills ``cfg.latent`` and ``cfg.width`` from the parent when they are None.

    Raises
    ------
    MedbenchError
        When ``cfg.init`` is not a finished model, or its architecture or sizes differ
        from those ``cfg`` asks for.
    """
    folder = Path(str(cfg.init))
    parent = read_checkpoint(folder).config  # CheckpointError names the folder and the fix
    shape = {"arch": parent["arch"], "latent": parent["latent"], "width": parent["width"],
             "components": parent["components"]}
    wanted = {"arch": cfg.arch, "latent": cfg.latent, "width": cfg.width,
              "components": COMPONENTS}
    if parent["arch"] in get_architecture(cfg.arch).warm_start:
        wanted["arch"] = parent["arch"]  # started from the architecture it extends
    differ = {k: (shape[k], v) for k, v in wanted.items() if v is not None and v != shape[k]}
    if differ:
        told = ", ".join(f"{k} {theirs!r} here vs {mine!r} in the model"
                         for k, (mine, theirs) in differ.items())
        raise MedbenchError(
            f"--init {folder} is a {shape['arch']} model with latent {shape['latent']} and "
            f"width {shape['width']}, which does not fit this run ({told}); use --model "
            f"{shape['arch']} and drop --latent/--width to fine-tune it"
        )
    cfg.latent, cfg.width = shape["latent"], shape["width"]
    return parent


def parent_record(cfg: TrainConfig) -> dict[str, Any] | None:
    """The ``parent`` block of the new model's config.json (None from scratch)."""
    parent = cfg.parent
    if parent is None:
        return None
    train = parent.get("train") if isinstance(parent.get("train"), dict) else {}
    return {"path": str(Path(str(cfg.init)).resolve()), "model_id": parent.get("model_id"),
            "name": parent.get("name"), "dataset": train.get("dataset"),
            "budget": parent.get("budget")}


def parent_images(cfg: TrainConfig) -> TrainingImages | None:
    """The images the ``init`` model trained on (its child has seen them too); None from
    scratch or when the parent records none."""
    if cfg.parent is None:
        return None
    return from_config(cfg.parent, str(Path(str(cfg.init)) / "config.json"))


def load_parent_weights(model: CompressionModel, cfg: TrainConfig) -> None:
    """Copy the ``init`` model's weights into ``model`` (its coding tables are rebuilt
    at the end of training, so they are not copied)."""
    parent = read_checkpoint(Path(str(cfg.init))).load("cpu")
    with torch.no_grad():
        if parent.net.arch == model.net.arch:
            model.load_state_dict(parent.state_dict())
            return
        # A warm start: every parent weight has its place; only the added layers are new.
        result = model.load_state_dict(parent.state_dict(), strict=False)
    if result.unexpected_keys:
        raise MedbenchError(
            f"--init {cfg.init}: the {parent.net.arch} weights "
            f"{', '.join(result.unexpected_keys[:3])} have no place in a {model.net.arch} "
            f"model; start {model.net.arch} from scratch or from a model it extends")
