"""Which images a trained model has seen: content hashes kept in its ``config.json``.

A model scored on an image it trained or validated on looks better than it is, and a file
name says nothing about that: the same radiograph can arrive as ``nih/images/x.png``, as
``folder:copy/renamed.png`` or re-saved as another PNG. So every model records, under
``trained_on`` in its config, the content hashes of its train and validation images::

    "trained_on": {
      "hash": "sha256/16",
      "dataset": "nih",
      "train": {"count": 74, "images": ["3f5c0e1a9b2d4c77", ...], "files": [...]},
      "val":   {"count": 8, "images": [...], "files": [...]}
    }

``images`` are :func:`medbench.image.pixel_sha256` of the pixels as the reader gave them
(before the protocol), ``files`` the SHA-256 of the files' bytes (datasets read from files),
each cut to its first :data:`DIGITS` hex digits (64 bits: among a million test images and a
million training images the chance of one false match is about 5·10⁻⁸). A row of a learned
codec is ``seen_in_training`` when either hash of its source image is in the model's sets.
A model fine-tuned from another (``train --init``) also lists its parent's images (with
its train ``count``). Identical images within a split are listed once.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

#: Hex digits kept of each SHA-256.
DIGITS = 16
HASH = f"sha256/{DIGITS}"
#: Most hashes one list may hold (a hostile config must not make a run allocate gigabytes).
MAX_HASHES = 2_000_000
SPLITS = ("train", "val")
_HEX = re.compile(rf"^[0-9a-f]{{{DIGITS}}}$")


class ProvenanceError(ValueError):
    """A ``trained_on`` block that is not what this module writes."""


def short(digest: str | None) -> str | None:
    """The first :data:`DIGITS` hex digits of a SHA-256 (None stays None)."""
    if not digest or not isinstance(digest, str):
        return None
    return digest[:DIGITS].lower()


@dataclass(frozen=True)
class TrainingImages:
    """The content hashes of the images a model trained and validated on."""

    images: frozenset[str]
    files: frozenset[str]
    #: Images listed (train + val), for messages.
    count: int
    #: The dataset the images came from, as the training named it (for messages).
    dataset: str | None = None

    def seen(self, image_sha256: str | None, file_sha256: str | None) -> bool | None:
        """Whether an image with these hashes is among the model's images; None when
        neither hash is known (nothing to compare)."""
        image, file = short(image_sha256), short(file_sha256)
        if image is None and file is None:
            return None
        return (image is not None and image in self.images) or \
            (file is not None and file in self.files)

    def union(self, other: TrainingImages | None) -> TrainingImages:
        """These images and ``other``'s (a fine-tuned model has seen its parent's)."""
        if other is None:
            return self
        return TrainingImages(self.images | other.images, self.files | other.files,
                              self.count + other.count, self.dataset)


def block(dataset: str, splits: Mapping[str, Iterable[tuple[str | None, str | None]]],
          parent: TrainingImages | None = None) -> dict[str, Any]:
    """The ``trained_on`` block of a config: per split, ``(image_sha256, file_sha256)`` of
    each image (either may be None); a parent's images are added to ``train``."""
    out: dict[str, Any] = {"hash": HASH, "dataset": dataset}
    for split in SPLITS:
        pairs = list(splits.get(split, ()))
        images = sorted({h for h in (short(i) for i, _ in pairs) if h})
        files = sorted({h for h in (short(f) for _, f in pairs) if h})
        out[split] = {"count": len(pairs), "images": images, "files": files}
    if parent is not None:
        out["train"]["images"] = sorted(set(out["train"]["images"]) | parent.images)
        out["train"]["files"] = sorted(set(out["train"]["files"]) | parent.files)
        out["train"]["count"] += parent.count
    return out


def from_config(config: Mapping[str, Any], source: str) -> TrainingImages | None:
    """The images a config's ``trained_on`` block lists; None when it has none (a model
    trained before medbench recorded them).

    Raises
    ------
    ProvenanceError
        The block is malformed (``source`` names the file in the message).
    """
    raw = config.get("trained_on")
    if raw is None:
        return None
    if not isinstance(raw, dict) or raw.get("hash") != HASH:
        raise ProvenanceError(f"{source}: 'trained_on' is not a {HASH} block of train and "
                              "val image hashes; re-train or restore the model's config")
    images: set[str] = set()
    files: set[str] = set()
    count = 0
    for split in SPLITS:
        entry = raw.get(split)
        if not isinstance(entry, dict):
            raise ProvenanceError(f"{source}: 'trained_on.{split}' must be an object with "
                                  "'images' and 'files' lists")
        for key, into in (("images", images), ("files", files)):
            values = entry.get(key, [])
            if not isinstance(values, list) or len(values) > MAX_HASHES \
                    or not all(isinstance(v, str) and _HEX.match(v) for v in values):
                raise ProvenanceError(
                    f"{source}: 'trained_on.{split}.{key}' must be a list of "
                    f"{DIGITS}-digit lower-case hex hashes")
            into.update(values)
        listed = max(len(entry.get("images", [])), len(entry.get("files", [])))
        number = entry.get("count", listed)
        if isinstance(number, bool) or not isinstance(number, int) or number < listed:
            raise ProvenanceError(f"{source}: 'trained_on.{split}.count' must be a whole "
                                  f"number of at least the {listed} hashes listed")
        count += number
    dataset = raw.get("dataset")
    return TrainingImages(frozenset(images), frozenset(files), count,
                          dataset if isinstance(dataset, str) else None)
