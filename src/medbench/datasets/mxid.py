"""MXID: 6,869 X-ray images of 18 body parts from AOUINET Hospital, Tébessa (Algeria).

The collection of the seed paper's earlier work (its reference [7]); 1024×1024 images,
manually sorted into one folder per body part.

``<data-root>/mxid/<body part>/.../*.png|jpg`` — the body part is the name of the
top-level folder exactly as found on disk (so ``Lung`` and ``lung`` stay distinct) and
is carried as metadata. Files directly in ``mxid/`` are skipped: their body part is
unknown. PNG, JPEG, TIFF and DICOM files are read with the shared readers (JPEGs saved
as RGB from grey images are accepted when their chroma is neutral).

The collection publishes no patient ids (its file names carry none), so each image is its
own split group; two images of one patient may land in different splits. That is a limit
of the collection, stated here rather than hidden.
"""

from __future__ import annotations

from pathlib import Path

from medbench.datasets.base import Record
from medbench.datasets.files import safe_id
from medbench.datasets.tree import FileTreeDataset


class MxidDataset(FileTreeDataset):
    """MXID: X-rays of 18 body parts, one folder per body part."""

    name = "mxid"
    folder = "mxid"
    description = "MXID: X-rays of 18 body parts, one sub-folder each (PNG/JPEG)"
    expected = "one sub-folder per body part holding PNG/JPEG images"

    def describe(self, path: Path, kind: str, root: Path) -> Record | str:
        relative = path.relative_to(root)
        if len(relative.parts) < 2:
            return "not inside a body-part folder, so its body part is unknown"
        body_part = relative.parts[0]
        inner = relative.with_suffix("").parts[1:]
        image_id = safe_id(body_part, *inner)
        return self.make_record(path, image_id, image_id, kind, body_part=body_part)
