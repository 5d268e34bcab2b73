"""Export a dataset's images exactly as codecs receive them, as PNG, to look at.

Behind ``medbench datasets export``. Each image is read, prepared by the protocol (through
the same cache a run uses) and written as ``<image_id>.png``: 8-bit PNG up to 8 bits,
16-bit PNG above. Bit depths between 9 and 15 are written the way the PNG standard asks
(scaled to 16 bits by bit replication, with an ``sBIT`` chunk naming the true depth), so
viewers show full contrast and medbench reads back the exact values it coded. An
``index.csv`` beside them lists id, split, group, bit depth, size, protocol and source.
Exporting again into the same folder replaces the earlier export (the PNG files its
``index.csv`` lists), so the folder never mixes two protocols or samples; other files in
it are left alone.

Which images: those ``medbench run`` would choose (the split, then a ``limit`` sample
drawn with ``seed``, split decisions read from a run's manifest when one is given, never
written), or exactly the records given (the images a stored run coded).
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass, field
from pathlib import Path

from medbench.datasets.base import Dataset, Record, Skipped
from medbench.datasets.cache import PreparedCache, prepare_image
from medbench.datasets.files import safe_id
from medbench.datasets.inspect import failure
from medbench.datasets.manifest import SplitManifest, choose_records
from medbench.datasets.protocols import PAPER, Protocol
from medbench.datasets.raster import write_png
from medbench.errors import MedbenchError

log = logging.getLogger(__name__)

INDEX_COLUMNS = ["image_id", "file", "split", "group", "bit_depth", "height", "width",
                 "protocol", "source"]


@dataclass
class ExportResult:
    out: Path
    written: list[Path] = field(default_factory=list)
    failed: list[Skipped] = field(default_factory=list)
    index: Path | None = None
    #: PNG files of an earlier export into the same folder, removed first.
    replaced: int = 0


def export_images(
    dataset: Dataset,
    out: Path,
    split: str = "test",
    protocol: Protocol | None = None,
    limit: int | None = None,
    cache: PreparedCache | None = None,
    *,
    seed: int = 0,
    manifest: SplitManifest | None = None,
    records: list[Record] | None = None,
) -> ExportResult:
    """Write the chosen images of ``dataset`` into ``out``; a bad image is listed, not fatal.

    Parameters
    ----------
    dataset, out
        What to export, and the folder for ``<image_id>.png`` and ``index.csv``.
    split, limit, seed
        The images ``medbench run --split S --limit N --seed SEED`` chooses.
    protocol, cache
        How images are prepared (default ``paper``) and the prepared-image cache.
    manifest
        A run's split manifest (read, never saved): its split decisions win over the group
        hash, as in that run.
    records
        Exactly these records instead (``split``, ``limit``, ``seed``, ``manifest`` unused).

    Returns
    -------
    ExportResult
        The files written, the images that could not be read and the index.
    """
    protocol = protocol or PAPER
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    result = ExportResult(out)
    result.replaced = clear_previous(out)
    rows = []
    if records is None:
        records = choose_records(dataset, split, limit, manifest, seed)
    for record in records:
        try:
            image = prepare_image(dataset, record, protocol, cache)
        except Exception as exc:  # one bad image is listed, as a run makes it an error row
            log.info("export: %s could not be read: %s", record.source, exc)
            reason = failure(exc)
            if not isinstance(exc, MedbenchError):
                reason = f"{record.source}: {reason}"
            result.failed.append(Skipped(record.source, reason))
            continue
        path = out / f"{safe_id(record.image_id)}.png"
        write_png(path, image.pixels, image.bit_depth)
        result.written.append(path)
        rows.append({
            "image_id": record.image_id, "file": path.name, "split": record.meta["split"],
            "group": record.group, "bit_depth": image.bit_depth, "height": image.height,
            "width": image.width, "protocol": protocol.name, "source": record.source,
        })
    result.index = out / "index.csv"
    with open(result.index, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=INDEX_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return result


def clear_previous(out: Path) -> int:
    """Remove the PNG files an earlier export into ``out`` listed in its ``index.csv``;
    returns how many went."""
    try:
        with open(Path(out) / "index.csv", newline="", encoding="utf-8") as f:
            names = [row.get("file") or "" for row in csv.DictReader(f)]
    except (OSError, UnicodeDecodeError, csv.Error):
        return 0
    removed = 0
    for name in names:
        path = Path(out) / name
        if name and Path(name).name == name and path.suffix == ".png" and path.is_file():
            path.unlink()
            removed += 1
    return removed
