"""The dataset interface: list records cheaply, load one record's pixels on demand."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medbench.image import Image


@dataclass(frozen=True)
class Record:
    """One image of a dataset, before its pixels are read.

    ``group`` is what the split is grouped by (patient, report...): every record of a
    group lands in the same split, so no patient is in two splits.
    """

    image_id: str
    group: str
    source: str
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Skipped:
    """A file a reader could not use, and why."""

    source: str
    reason: str


class Dataset(ABC):
    """Base class of dataset readers.

    A reader only reads: it returns MONOCHROME2 :class:`Image` objects with their true
    bit depth; resizing and bit-depth changes belong to protocols.
    """

    name: str = ""
    description: str = ""
    #: Folder under ``--data-root`` holding this dataset (None: needs no data root).
    folder: str | None = None

    def __init__(self, data_root: Path | None = None, argument: str | None = None):
        self.data_root = Path(data_root) if data_root is not None else None
        self.argument = argument
        self.skipped: list[Skipped] = []

    @abstractmethod
    def records(self) -> list[Record]:
        """Every usable image, sorted by ``image_id``; unusable files go to ``skipped``."""

    @abstractmethod
    def load(self, record: Record) -> Image:
        """The pixels of one record (raises :class:`~medbench.errors.ImageReadError`)."""

    def fingerprint(self, record: Record) -> str:
        """Identifies the record's content for caches and manifests (default: source path)."""
        return record.source
