"""The built-in ``sample`` dataset: real CR radiographs shipped by ``pydicom-data``.

``RG1_UNCR.dcm`` (chest PA, 1955×1841, 15-bit) and ``RG3_UNCR.dcm`` (tibia, 1760×1760,
10-bit), both MONOCHROME1 and uncompressed, are cut into non-overlapping 320×320 tiles at
native resolution; tiles that are almost empty background (standard deviation below 1 %
of the peak) are dropped, which leaves 49 images. Each tile is its own split group: the
tiles share no pixels, but they do share a patient, so ``sample`` is for smoke tests,
demos and CI, not for generalization claims. For the same reason its confidence
intervals group tiles by their source radiograph (:meth:`SampleDataset.interval_group`):
with two radiographs there are too few groups for any interval, and reports say so
rather than treat 11 tiles of two films as 11 independent images.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from medbench.datasets.base import Dataset, Record
from medbench.datasets.dicom import read_dicom
from medbench.errors import DatasetError
from medbench.image import Image, peak_value

TILE = 320
MIN_STD_FRACTION = 0.01
SOURCES = {"RG1_UNCR.dcm": "CHEST", "RG3_UNCR.dcm": "TIBIA"}


@lru_cache(maxsize=4)
def _source_pixels(filename: str) -> tuple[np.ndarray, int, dict | None]:
    """The radiograph's pixels, bit depth and window (``meta["voi"]``, datasets.voi)."""
    path = _source_path(filename)
    pixels, bit_depth, meta = read_dicom(path)
    pixels.setflags(write=False)
    return pixels, bit_depth, meta.get("voi")


def _source_path(filename: str) -> Path:
    try:
        from pydicom.data import get_testdata_file
    except ImportError as exc:  # pragma: no cover
        raise DatasetError(f"pydicom is not installed ({exc}); pip install pydicom") from exc
    path = get_testdata_file(filename)
    if path is None:
        raise DatasetError(
            f"the sample radiograph {filename} was not found; pip install pydicom-data"
        )
    return Path(path)


class SampleDataset(Dataset):
    """Tiles of two real CR radiographs from pydicom-data (needs no download)."""

    name = "sample"
    description = "built-in: 320 px tiles of two real CR radiographs (pydicom-data)"
    folder = None
    group_kind = "tile"
    interval_kind = "radiograph"

    def interval_group(self, record: Record) -> str:
        return str(record.meta["file"])  # the radiograph the tile is cut from

    def records(self) -> list[Record]:
        records = []
        for filename, body_part in SOURCES.items():
            pixels, bit_depth, _ = _source_pixels(filename)
            peak = peak_value(bit_depth)
            stem = filename.split("_")[0].lower()
            rows, cols = pixels.shape[0] // TILE, pixels.shape[1] // TILE
            for r in range(rows):
                for c in range(cols):
                    tile = pixels[r * TILE : (r + 1) * TILE, c * TILE : (c + 1) * TILE]
                    if tile.std() < MIN_STD_FRACTION * peak:
                        continue
                    image_id = f"{stem}_r{r}c{c}"
                    records.append(
                        Record(
                            image_id=image_id,
                            group=image_id,
                            source=f"{filename}#r{r}c{c}",
                            meta={"body_part": body_part, "row": r, "col": c, "file": filename,
                                  "tile": f"{TILE}x{TILE} tile of {filename}"},
                        )
                    )
        return sorted(records, key=lambda rec: rec.image_id)

    def source_file(self, record: Record) -> Path | None:
        return _source_path(record.meta["file"])  # the DICOM the tile is cut from

    def load(self, record: Record) -> Image:
        pixels, bit_depth, voi = _source_pixels(record.meta["file"])
        r, c = record.meta["row"], record.meta["col"]
        tile = np.ascontiguousarray(pixels[r * TILE : (r + 1) * TILE, c * TILE : (c + 1) * TILE])
        meta = {"body_part": record.meta["body_part"]}
        if voi:  # the radiograph's window applies to each of its tiles
            meta["voi"] = voi
        return Image(tile, bit_depth, record.image_id, meta)
