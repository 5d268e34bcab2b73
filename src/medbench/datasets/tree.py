"""Datasets read from a folder tree of image files (the base of jsrt, openi, mxid, nih, folder).

A subclass says where its folder is and how one file becomes a :class:`Record` (its id,
its split group, its metadata); this base walks the tree, refuses what is not an image,
keeps the reasons in ``skipped``, reads pixels with the shared readers of
:mod:`medbench.datasets.formats`, and identifies each record by the SHA-256 of its file so
caches and split manifests follow content, not paths.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from medbench.datasets.base import Dataset, Probe, Record, Skipped
from medbench.datasets.files import FileHasher, walk_files
from medbench.datasets.formats import kind_by_name, probe_image, read_image
from medbench.errors import DatasetError
from medbench.image import Image

log = logging.getLogger(__name__)


class FileTreeDataset(Dataset):
    """Base class of readers of a user-supplied folder of image files."""

    #: What the folder should hold, for error messages ("the JSRT .IMG files").
    expected: str = "image files"
    #: Body part of every image, when the collection has only one.
    body_part: str | None = None
    # Abilities declared on Dataset: files are hashed, hashes identify content, and the
    # collection can grow, so runs keep its splits in a manifest.
    content_fingerprint = True
    splits_manifest = True

    def __init__(self, data_root: Path | None = None, argument: str | None = None):
        super().__init__(data_root=data_root, argument=argument)
        self.hasher: FileHasher = FileHasher()
        self._records: list[Record] | None = None

    # -- where the files are ---------------------------------------------------------------
    def root(self) -> Path:
        """The dataset's folder, or a :class:`DatasetError` saying what was expected where."""
        folder = self.folder or self.name
        if self.data_root is None:
            raise DatasetError(
                f"dataset {self.name} needs --data-root (or MEDBENCH_DATA): a folder holding "
                f"{folder}/ with {self.expected}"
            )
        if not self.data_root.is_dir():
            raise DatasetError(
                f"--data-root {self.data_root} is not a folder; point it at the folder that "
                f"holds {folder}/ with {self.expected}"
            )
        path = self.data_root / folder
        if not path.is_dir():
            raise DatasetError(
                f"dataset {self.name} expects {self.expected} in {path}, which does not exist; "
                f"put them there or fix --data-root"
            )
        return path

    # -- hooks for subclasses -----------------------------------------------------------------
    def prepare(self, root: Path, files: list[Path]) -> None:
        """Read side files (metadata tables, reports) before records are made."""

    def is_side_file(self, path: Path) -> bool:
        """True for files the dataset uses that are not images (metadata, reports)."""
        return False

    def kind_of(self, path: Path) -> str | None:
        """The format of a file, by its name (None: not an image)."""
        return kind_by_name(path)

    def describe(self, path: Path, kind: str, root: Path) -> Record | str:
        """The record for one image file, or the reason it cannot be used."""
        raise NotImplementedError

    def read_file(self, path: Path, kind: str) -> tuple[Any, int, dict[str, Any]]:
        """Pixels, bit depth and metadata of one file (default: the shared readers)."""
        return read_image(path)

    def probe_file(self, path: Path, kind: str) -> Probe:
        return probe_image(path)

    # -- the Dataset interface ------------------------------------------------------------------
    def records(self) -> list[Record]:
        if self._records is None:
            self._records = self._scan()
        return list(self._records)

    def _scan(self) -> list[Record]:
        root = self.root()
        self.skipped = []
        not_entered: list[tuple[Path, str]] = []
        files = walk_files(root, not_entered)
        for folder, reason in not_entered:
            self.skip(folder, reason)
        self.prepare(root, files)
        by_id: dict[str, Record] = {}
        for path in files:
            if self.is_side_file(path):
                continue
            kind, reason = self._classify(path)
            if reason is None:
                outcome = self.describe(path, kind, root)
                if isinstance(outcome, str):
                    reason = outcome
                elif outcome.image_id in by_id:
                    reason = (
                        f"duplicate image id {outcome.image_id} "
                        f"(also {by_id[outcome.image_id].source})"
                    )
                else:
                    by_id[outcome.image_id] = outcome
            if reason is not None:
                self.skip(path, reason)
        if not by_id:
            detail = (
                f"; all {len(self.skipped)} files were skipped, e.g. "
                f"{Path(self.skipped[0].source).name}: {self.skipped[0].reason}"
                if self.skipped
                else ""
            )
            raise DatasetError(f"no usable images in {root}: expected {self.expected}{detail}")
        return sorted(by_id.values(), key=lambda rec: rec.image_id)

    def _classify(self, path: Path) -> tuple[str, str | None]:
        """The file's format by name, and why it cannot be used (None: it can)."""
        if path.name.startswith("."):
            return "", "hidden file"
        try:
            if not os.access(path, os.R_OK):
                return "", "permission denied; make the file readable"
            kind = self.kind_of(path)
            size = path.stat().st_size
        except PermissionError:
            return "", "permission denied; make the file readable"
        except OSError as exc:
            return "", f"cannot be read ({exc.strerror or exc})"
        if kind is None:
            return "", f"not an image file (expected {self.expected})"
        if size == 0:
            return kind, "zero-byte file"
        return kind, None

    def skip(self, path: Path | str, reason: str) -> None:
        log.info("%s: skipped %s: %s", self.name, path, reason)
        self.skipped.append(Skipped(str(path), reason))

    def load(self, record: Record) -> Image:
        path = Path(record.source)
        pixels, bit_depth, meta = self.read_file(path, record.meta.get("format", ""))
        # What the dataset knows (body part from its folder...) wins over file headers.
        merged = {**{k: v for k, v in meta.items() if v is not None}, **record.meta}
        return Image(pixels, bit_depth, record.image_id, merged)

    def probe(self, record: Record) -> Probe:
        """Size and bit depth of a record from its file's header (fast: no decoding)."""
        return self.probe_file(Path(record.source), record.meta.get("format", ""))

    def fingerprint(self, record: Record, fresh: bool = False) -> str:
        """SHA-256 of the record's file (remembered by size and modification time).

        A record may carry the hash from the process that listed it (``file_hash``,
        ``file_size``, ``file_mtime_ns`` in its metadata, see
        :func:`~medbench.datasets.manifest.attach_hashes`); it is trusted while the file's
        size and modification time are unchanged, unless ``fresh`` asks for the hash of
        the bytes as they are now.
        """
        meta = record.meta
        if not fresh and meta.get("file_hash") and meta.get("file_size") is not None:
            self.hasher.remember(
                record.source, meta["file_size"], meta["file_mtime_ns"], meta["file_hash"]
            )
        return self.hasher.hash(Path(record.source), fresh=fresh)

    # -- helpers for subclasses -------------------------------------------------------------------
    def make_record(
        self, path: Path, image_id: str, group: str, kind: str, **meta: Any
    ) -> Record:
        base: dict[str, Any] = {"format": kind}
        if self.body_part is not None:
            base["body_part"] = self.body_part
        base.update({k: v for k, v in meta.items() if v is not None})
        return Record(image_id=image_id, group=group, source=str(path), meta=base)
