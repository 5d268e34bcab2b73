"""The dataset interface: list records cheaply, load one record's pixels on demand.

Besides :meth:`Dataset.records` and :meth:`Dataset.load`, a dataset declares what else it
can do. The base class gives each ability a default that works for any dataset; readers
of a folder of files (:class:`~medbench.datasets.tree.FileTreeDataset`) override them:

- :meth:`~Dataset.root`: the folder read (default None; file trees: their folder);
- :meth:`~Dataset.probe`: size and bit depth (default: load the image; file trees: read
  the file's header);
- :meth:`~Dataset.fingerprint` and ``content_fingerprint``: what identifies a record
  (default: its source, not content; file trees: the SHA-256 of its file, content);
- ``hasher``: the file hashes computed so far (default None; file trees: a
  :class:`~medbench.datasets.files.FileHasher`);
- ``splits_manifest``: whether runs keep a split manifest (default False; file trees:
  True).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medbench.datasets.files import FileHasher
from medbench.datasets.grouping import Grouping
from medbench.errors import DatasetError
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


@dataclass(frozen=True)
class Probe:
    """What a file's header says, without decoding its pixels."""

    height: int
    width: int
    bit_depth: int


class Dataset(ABC):
    """Base class of dataset readers.

    A reader only reads: it returns MONOCHROME2 :class:`Image` objects with their true
    bit depth; resizing and bit-depth changes belong to protocols.

    Parameters
    ----------
    data_root
        The folder holding one sub-folder per dataset (``--data-root``); None when the
        user gave none (datasets that need one say so when their records are listed).
    argument
        The text after the colon of the dataset's spec (``PATH`` of ``folder:PATH``),
        None when there is none.
    """

    name: str = ""
    description: str = ""
    #: Folder under ``--data-root`` holding this dataset (None: needs no data root).
    folder: str | None = None
    #: What a record's ``group`` is (``patient``, ``report``...): splits and --limit
    #: samples keep a group whole, and confidence intervals resample whole groups.
    #: ``image`` (the default) says the collection names no grouping: each image is its
    #: own group, and intervals then *assume* its images are independent.
    group_kind: str = "image"
    #: What :meth:`interval_group` returns, when it differs from ``group_kind`` (``sample``:
    #: tiles are split one by one but share their source ``radiograph``).
    interval_kind: str | None = None
    #: True when :meth:`fingerprint` is a hash of the record's content (the bytes of its
    #: file), so an edited file gets a new one and a renamed file keeps its own; the
    #: prepared-image cache keys on it and takes part only for such datasets.
    content_fingerprint: bool = False
    #: Whether runs keep a split manifest for this dataset (``OUT/manifests/``, see
    #: :mod:`~medbench.datasets.manifest`): True for datasets read from user files, whose
    #: content may grow; generated datasets need none.
    splits_manifest: bool = False
    #: The file hashes this dataset computed, shared with the split manifest so a later
    #: run does not hash unchanged files again (None: the dataset hashes no files).
    hasher: FileHasher | None = None

    def __init__(self, data_root: Path | None = None, argument: str | None = None):
        self.data_root = Path(data_root) if data_root is not None else None
        self.argument = argument
        self.skipped: list[Skipped] = []

    @abstractmethod
    def records(self) -> list[Record]:
        """Every usable image, sorted by ``image_id``; unusable files go to ``skipped``.

        Returns
        -------
        list of Record
            One record per usable image, sorted by ``image_id``; no pixels are read.

        Raises
        ------
        DatasetError
            The dataset's folder is missing or holds no usable image.
        """

    @abstractmethod
    def load(self, record: Record) -> Image:
        """The pixels of one record.

        Parameters
        ----------
        record
            One of the records :meth:`records` returned.

        Returns
        -------
        Image
            MONOCHROME2 pixels with their true bit depth; ``meta`` holds the record's
            metadata merged over what the file says.

        Raises
        ------
        ImageReadError
            The record's file cannot be read (one bad image: a run makes it an error row).
        """

    def root(self) -> Path | None:
        """The folder this dataset reads, shown by ``medbench datasets show``.

        Returns
        -------
        pathlib.Path or None
            The folder; None (the default) for datasets that read no folder.
        """
        return None

    def probe(self, record: Record) -> Probe:
        """Size and bit depth of a record, for summaries.

        The default loads the image; datasets that can read a file's header without
        decoding its pixels override it.

        Parameters
        ----------
        record
            One of the records :meth:`records` returned.

        Returns
        -------
        Probe
            Height, width and bit depth, as :meth:`load` would give them.

        Raises
        ------
        ImageReadError
            As :meth:`load`.
        """
        image = self.load(record)
        return Probe(image.height, image.width, image.bit_depth)

    def source_file(self, record: Record) -> Path | None:
        """The file a record's pixels come from (``dicom-export`` copies a DICOM's header).

        Parameters
        ----------
        record
            One of the records :meth:`records` returned.

        Returns
        -------
        pathlib.Path or None
            The default: ``record.source`` when it names an existing file, else None
            (generated images have none).
        """
        path = Path(record.source)
        return path if path.is_file() else None

    def use_grouping(self, grouping: Grouping) -> None:
        """Group the images as ``run --groups``/``--group-by`` say (``folder:`` only).

        Raises
        ------
        DatasetError
            The default: this dataset knows its groups (or has none to give).
        """
        raise DatasetError(f"dataset {self.name} takes no {grouping.source}: its groups are "
                           f"its own ({self.group_kind}); they apply to folder: datasets")

    def interval_group(self, record: Record) -> str:
        """The group a record's values are resampled with in confidence intervals.

        Parameters
        ----------
        record
            One of the records :meth:`records` returned.

        Returns
        -------
        str
            The default is the split group, ``record.group``; a dataset whose images share
            something their split groups do not (tiles of one radiograph) returns that.
        """
        return record.group

    def interval_group_kind(self) -> str:
        """What :meth:`interval_group` is (``patient``, ``report``, ``radiograph``, or
        ``image`` when no grouping is known)."""
        return self.interval_kind or self.group_kind

    def fingerprint(self, record: Record, fresh: bool = False) -> str:
        """Identifies the record for caches and manifests.

        Parameters
        ----------
        record
            One of the records :meth:`records` returned.
        fresh
            For content fingerprints: compute it from the content now, trusting no hash
            remembered by file size and modification time (what the prepared-image cache
            asks, so a replaced file is never served stale).

        Returns
        -------
        str
            The default is the record's ``source``; it is a content hash only where
            :attr:`content_fingerprint` says so.
        """
        return record.source
