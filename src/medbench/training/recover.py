"""``medbench provenance``: record, in models trained before medbench kept them, the content
hashes of the images they trained on, re-derived from the split they trained on.

A model's config.json names its dataset, ``--limit`` and ``--seed``; the split comes from
the same code as training (:func:`~medbench.training.data.choose_splits`), through the
split manifest in ``MODELS/manifests/`` when the models folder still holds it (as it did
while training), else from the group hash alone. The images are read and hashed
(:func:`~medbench.image.pixel_sha256`, and their files' SHA-256) and the ``trained_on``
block (:mod:`medbench.codecs.provenance`) is written into the config. Nothing is
retrained: the weights, and so the model id, stay as they are. The derived split must
have exactly the train and val counts the config recorded; otherwise the data changed
since, and the model is left alone with the reason.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medbench.codecs import provenance
from medbench.codecs.learned.checkpoint import CONFIG
from medbench.datasets import get_dataset
from medbench.datasets.cache import prepare_image
from medbench.datasets.manifest import attach_hashes, choose_with_manifest
from medbench.datasets.protocols import parse_protocol
from medbench.errors import MedbenchError

log = logging.getLogger(__name__)

#: Hashes of ``(image_sha256, file_sha256)`` per split, per (dataset, limit, seed).
Splits = dict[str, list[tuple[str | None, str | None]]]


@dataclass
class Recovered:
    """What :func:`recover` did: models written, left as they were, refused (and why)."""

    written: list[Path] = field(default_factory=list)
    kept: list[Path] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)


def recover(folders: list[Path], data_root: Path | None, manifest_dir: Path | None = None,
            overwrite: bool = False, echo: Callable[[str], Any] = log.info) -> Recovered:
    """Write the ``trained_on`` block of each model folder in ``folders``.

    Parameters
    ----------
    folders
        Finished model folders (``config.json`` + ``model.safetensors``).
    data_root
        Where the models' training dataset is (``--data-root`` of their training).
    manifest_dir
        The folder whose ``manifests/`` kept the training split (the ``--models`` folder
        of the training); None: the split from the group hash alone (correct where no
        files were added to the dataset after the first training).
    overwrite
        Recompute a block a config already has (default: keep it).

    Returns
    -------
    Recovered
        The folders written, kept and refused (with one-sentence reasons).
    """
    out = Recovered()
    derived: dict[tuple, Splits] = {}
    for folder in folders:
        folder = Path(folder)
        path = folder / CONFIG
        try:
            config = _config(path)
            if config.get("trained_on") is not None and not overwrite:
                out.kept.append(folder)
                continue
            train = config.get("train") if isinstance(config.get("train"), dict) else {}
            key = (train.get("dataset"), train.get("limit"), train.get("seed", 0))
            if not isinstance(key[0], str):
                raise MedbenchError(f"{path} names no training dataset")
            if key not in derived:
                derived[key] = _hash_splits(*key, data_root, manifest_dir, echo)
            splits = derived[key]
            _check_counts(path, train.get("images"), splits)
            config["trained_on"] = provenance.block(key[0], splits)
            _write(path, config)
            out.written.append(folder)
            echo(f"{folder}: recorded {sum(len(v) for v in splits.values())} training and "
                 f"validation images of {key[0]}")
        except MedbenchError as exc:
            out.refused[str(folder)] = str(exc)
        except OSError as exc:  # a read-only or full model folder: this model only
            out.refused[str(folder)] = (f"{path} could not be written "
                                        f"({exc.strerror or exc}); make it writable")
    return out


def _config(path: Path) -> dict[str, Any]:
    try:
        config = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MedbenchError(f"{path} is not a readable model config ({exc})") from None
    if not isinstance(config, dict):
        raise MedbenchError(f"{path} is not a model config (a JSON object)")
    return config


def _hash_splits(spec: str, limit: int | None, seed: int, data_root: Path | None,
                 manifest_dir: Path | None, echo: Callable[[str], Any]) -> Splits:
    """``(image_sha256, file_sha256)`` of every train and val image, chosen as training
    chose them."""
    dataset = get_dataset(spec, data_root)
    chosen = choose_with_manifest(dataset, spec, ("train", "val"), limit, manifest_dir,
                                  seed if isinstance(seed, int) else 0)
    native = parse_protocol("native")
    out: Splits = {}
    for split, records in chosen.items():
        echo(f"{spec}: hashing {len(records)} {split} images")
        records = attach_hashes(dataset, records)  # file hashes, where it reads files
        pairs = []
        for record in records:
            image = prepare_image(dataset, record, native)
            pairs.append((image.meta.get("image_sha256"), record.meta.get("file_hash")))
        out[split] = pairs
    return out


def _check_counts(path: Path, recorded: Any, splits: Splits) -> None:
    """The derived split must hold as many images as the model trained on."""
    if not isinstance(recorded, dict):
        return  # an older config without counts: nothing to check against
    for split, pairs in splits.items():
        if recorded.get(split) is not None and recorded[split] != len(pairs):
            raise MedbenchError(
                f"{path} trained on {recorded[split]} {split} images but the split now "
                f"gives {len(pairs)}: the dataset changed since; give --models the folder "
                f"whose manifests/ kept the training split, or the data as it was")


def _write(path: Path, config: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(config, indent=2) + "\n")
    tmp.replace(path)
