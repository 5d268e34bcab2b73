"""On-disk cache of images as a protocol prepared them, keyed by (dataset, file hash, protocol).

Reading a 2048² DICOM or JSRT file and resizing it with an anti-aliased filter costs far
more than loading the result; a second run (another codec, another setting, ``--resume``)
reads the prepared pixels back instead. Location: ``--cache-dir``, else
``$MEDBENCH_CACHE``, else ``~/.cache/medbench``. Layout::

    <cache>/v3/<dataset>/<protocol>/<hash[:2]>/<hash>.npy    pixels (numpy .npy, no pickle)
    <cache>/v3/<dataset>/<protocol>/<hash[:2]>/<hash>.json   bit depth and reader metadata

The key is the SHA-256 of the file's bytes, computed from the bytes each time an image is
prepared (never trusted from the file's size and modification time, which a replacement
can keep), so an edited or replaced file is never served stale, and a renamed one is
still found. Hashing a file costs far less than decoding and resizing it. Only datasets
whose ``fingerprint`` is a content hash take part (``content_fingerprint``: those of
:class:`~medbench.datasets.tree.FileTreeDataset`).
Entries are written to a temporary name and renamed into place, so concurrent workers and
interrupted runs never leave a half-written entry; an unreadable entry is recomputed.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from medbench.datasets.base import Dataset, Record
from medbench.datasets.protocols import Protocol
from medbench.errors import ImageReadError
from medbench.image import Image, pixel_sha256
from medbench.text import slug

log = logging.getLogger(__name__)

#: Bump when readers or protocols change what they produce, so old entries are not used
#: (v2: entries carry the source image's ``image_sha256``; v3: the reader's pixel spacing
#: and a DICOM's window, ``voi``).
CACHE_VERSION = "v3"
ENV = "MEDBENCH_CACHE"


def default_cache_dir() -> Path:
    """``$MEDBENCH_CACHE``, else ``~/.cache/medbench``."""
    env = os.environ.get(ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "medbench"


class PreparedCache:
    """Prepared images on disk under ``root``."""

    def __init__(self, root: Path | None = None):
        self.root = Path(root).expanduser() if root is not None else default_cache_dir()
        self.hits = 0
        self.misses = 0

    def _paths(self, dataset: str, file_hash: str, protocol: Protocol) -> tuple[Path, Path]:
        folder = (
            self.root / CACHE_VERSION / slug(dataset) / slug(protocol.name) / file_hash[:2]
        )
        return folder / f"{file_hash}.npy", folder / f"{file_hash}.json"

    def get(self, dataset: str, file_hash: str, protocol: Protocol, image_id: str) -> Image | None:
        npy, info = self._paths(dataset, file_hash, protocol)
        if not (npy.is_file() and info.is_file()):
            return None
        try:
            meta = json.loads(info.read_text(encoding="utf-8"))
            pixels = np.load(npy, allow_pickle=False)
            return Image(pixels, int(meta["bit_depth"]), image_id, dict(meta.get("meta", {})))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("cache entry %s is unreadable (%s); preparing the image again", npy, exc)
            return None

    def put(self, dataset: str, file_hash: str, protocol: Protocol, image: Image) -> None:
        npy, info = self._paths(dataset, file_hash, protocol)
        try:
            npy.parent.mkdir(parents=True, exist_ok=True)
            tag = f".{os.getpid()}.tmp"
            meta = {"bit_depth": image.bit_depth, "meta": _json_safe(image.meta)}
            tmp_info = info.with_name(info.name + tag)
            tmp_info.write_text(json.dumps(meta), encoding="utf-8")
            os.replace(tmp_info, info)
            tmp_npy = npy.with_name(npy.stem + tag + ".npy")
            np.save(tmp_npy, np.ascontiguousarray(image.pixels), allow_pickle=False)
            os.replace(tmp_npy, npy)  # the .npy appears last: its presence marks a whole entry
        except OSError as exc:  # a full or read-only cache must not stop a run
            log.warning("could not write cache entry %s (%s); going on without it", npy, exc)


def _json_safe(meta: dict[str, Any]) -> dict[str, Any]:
    """The metadata JSON can hold: scalars, and lists or dicts of them (a window)."""
    def safe(v: Any) -> bool:
        if v is None or isinstance(v, (str, int, float, bool)):
            return True
        if isinstance(v, (list, tuple)):
            return all(safe(x) for x in v)
        if isinstance(v, dict):
            return all(isinstance(k, str) and safe(x) for k, x in v.items())
        return False

    return {k: v for k, v in meta.items() if safe(v)}


def prepare_image(
    dataset: Dataset,
    record: Record,
    protocol: Protocol,
    cache: PreparedCache | None = None,
) -> Image:
    """``protocol.apply(dataset.load(record))``, served from ``cache`` when it holds it.

    The prepared image's ``meta["image_sha256"]`` is the :func:`~medbench.image.pixel_sha256`
    of the image as the reader gave it (before the protocol), kept in the cache entry too.
    """
    if cache is None or not dataset.content_fingerprint:
        return _prepared(dataset, record, protocol)
    try:
        file_hash = dataset.fingerprint(record, fresh=True)
    except PermissionError as exc:
        raise ImageReadError(f"{record.source}: permission denied; make the file readable") from exc
    except OSError as exc:
        raise ImageReadError(
            f"{record.source}: cannot be read ({exc.strerror or exc})"
        ) from exc
    hit = cache.get(dataset.name, file_hash, protocol, record.image_id)
    if hit is not None:
        cache.hits += 1
        # Two records may share one file (a copy in two folders): their own metadata wins.
        return hit.replace(meta={**hit.meta, **record.meta, "protocol": protocol.name})
    cache.misses += 1
    image = _prepared(dataset, record, protocol)
    cache.put(dataset.name, file_hash, protocol, image)
    return image


def _prepared(dataset: Dataset, record: Record, protocol: Protocol) -> Image:
    """The record read, its content hashed, then prepared by ``protocol``."""
    native = dataset.load(record)
    image = protocol.apply(native)
    return image.replace(meta={**image.meta, "image_sha256": pixel_sha256(native.pixels)})
