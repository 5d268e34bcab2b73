"""``folder:PATH``: any tree of PNG, JPEG, TIFF and DICOM files.

``PATH`` is taken as given (relative to the working directory, not to ``--data-root``).
Every image is read with the shared readers; its id is its path inside the tree without
the suffix (``chest/a.png`` → ``chest_a``) and each file is its own split group, since a
bare folder says nothing about patients (intervals then assume independent images),
unless ``run --groups CSV`` or ``--group-by REGEX`` says what the groups are
(:mod:`medbench.datasets.grouping`).
"""

from __future__ import annotations

from pathlib import Path

from medbench.datasets.base import Record
from medbench.datasets.files import safe_id
from medbench.datasets.formats import FORMAT_NAMES
from medbench.datasets.grouping import Grouping
from medbench.datasets.tree import FileTreeDataset
from medbench.errors import DatasetError


class FolderDataset(FileTreeDataset):
    """Any folder tree of radiographs: ``folder:PATH``."""

    name = "folder"
    folder = None
    description = "folder:PATH - any tree of PNG/JPEG/TIFF/DICOM files"
    expected = f"{FORMAT_NAMES} files"

    def root(self) -> Path:
        if not self.argument:
            raise DatasetError(
                "dataset folder needs a path: use folder:PATH with PATH a folder of "
                f"{FORMAT_NAMES} files"
            )
        path = Path(self.argument).expanduser()
        if not path.is_dir():
            raise DatasetError(
                f"folder:{self.argument}: {path} is not a folder; give a folder of "
                f"{FORMAT_NAMES} files"
            )
        return path

    grouping: Grouping | None = None

    def use_grouping(self, grouping: Grouping) -> None:
        self.grouping = grouping
        self.group_kind = grouping.kind
        self._records = None  # listed again, with the groups

    def describe(self, path: Path, kind: str, root: Path) -> Record | str:
        relative = path.relative_to(root)
        image_id = safe_id(*relative.with_suffix("").parts)
        group = image_id
        if self.grouping is not None:
            group = self.grouping.group_of(relative.as_posix(), image_id)
            if group is None:
                return self.grouping.reason()
        return self.make_record(path, image_id, group, kind)
