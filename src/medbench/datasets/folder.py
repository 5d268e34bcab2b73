"""``folder:PATH``: any tree of PNG, JPEG, TIFF and DICOM files.

``PATH`` is taken as given (relative to the working directory, not to ``--data-root``).
Every image is read with the shared readers; its id is its path inside the tree without
the suffix (``chest/a.png`` → ``chest_a``) and each file is its own split group, since a
bare folder says nothing about patients.
"""

from __future__ import annotations

from pathlib import Path

from medbench.datasets.base import Record
from medbench.datasets.files import safe_id
from medbench.datasets.formats import FORMAT_NAMES
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

    def describe(self, path: Path, kind: str, root: Path) -> Record | str:
        image_id = safe_id(*path.relative_to(root).with_suffix("").parts)
        return self.make_record(path, image_id, image_id, kind)
