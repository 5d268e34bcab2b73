"""The folder a DICOM export writes into: checked before work, its index, and replacing an
earlier export in it.

An export folder holds ``<dataset>/<codec>_<setting>/<image>.dcm`` files, the RLE
references ``<dataset>/reference_rle/<image>.dcm`` and ``index.csv``, which lists every
row of the run as written or skipped (with the run's id), so a later export with
``--overwrite`` knows which files the earlier one wrote: it removes them before writing,
and a viewer never shows the old run's series beside the new one. Files the folder held
that no export listed (a user's notes) are left alone.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from medbench.errors import MedbenchError
from medbench.folders import check_writable

INDEX = "index.csv"
INDEX_COLUMNS = ("dataset", "image_id", "codec", "setting", "status", "transfer_syntax",
                 "file", "stream_sha256", "note", "knob", "run_id")
REFERENCE = "reference_rle"


def check_out_folder(out: Path, overwrite: bool, *, option: str = "--out",
                     overwrite_option: str = "--overwrite", run_id: str | None = None) -> None:
    """Refuse an output folder that cannot be written, or that holds other files unless
    ``overwrite`` (or unless it holds only the export of ``run_id``, which is replaced).

    Parameters
    ----------
    out
        The folder.
    overwrite
        Whether the user allowed writing into a folder that holds files.
    option, overwrite_option
        The options that name the folder and allow overwriting, for the message
        (``--write-dicom`` and ``--overwrite-dicom`` for ``run``).
    run_id
        The run being exported: a folder holding only an earlier export of this very run
        (an interrupted or repeated ``run --resume``) is not "other files".

    Raises
    ------
    MedbenchError
        ``out`` is a file, cannot be written, or holds other files.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise MedbenchError(f"DICOM output {out} is a file; give a folder as {option}")
    check_writable(out, option)
    if out.is_dir() and not overwrite and any(out.iterdir()):
        if run_id is not None and holds_export_of(out, run_id):
            return
        raise MedbenchError(
            f"DICOM output folder {out} already holds files; choose an empty folder or "
            f"pass {overwrite_option} to replace what it holds"
        )


def holds_export_of(out: Path, run_id: str) -> bool:
    """Whether ``out`` holds nothing but an export of ``run_id`` (its index names no other
    run, and every file is the index or under a folder the index lists)."""
    entries = read_index(out)
    if not entries or {e.get("run_id") for e in entries} != {run_id}:
        return False
    folders = {safe(e["dataset"]) for e in entries}
    return all(p.name == INDEX or p.name in folders for p in out.iterdir())


def read_index(out: Path) -> list[dict[str, str]]:
    """The rows of ``out/index.csv`` (empty when there is none or it is unreadable)."""
    try:
        with open(Path(out) / INDEX, newline="", encoding="utf-8") as f:
            return list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error):
        return []


def clear_previous(out: Path) -> int:
    """Remove the files an earlier export into ``out`` wrote (listed in its index.csv:
    coded files and their references); returns how many went.

    Only paths inside ``out`` of the export layout are removed, whatever the index says;
    folders left empty go too.
    """
    out = Path(out)
    entries = read_index(out)
    paths = set()
    for e in entries:
        folder = out / safe(e.get("dataset", ""))
        paths.add(folder / REFERENCE / f"{safe(e.get('image_id', ''))}.dcm")
        if e.get("status") == "written":
            paths.add(coded_path(out, e.get("dataset", ""), e.get("codec", ""),
                                 e.get("setting", ""), e.get("image_id", "")))
    removed = 0
    for path in sorted(paths):
        if path.is_file() and not path.is_symlink():
            path.unlink()
            removed += 1
    for folder in sorted({p.parent for p in paths} | {p.parent.parent for p in paths},
                         key=lambda p: len(p.parts), reverse=True):
        if folder != out and folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
    return removed


def coded_path(out: Path, dataset: str, codec: str, setting: str, image_id: str) -> Path:
    """``out/<dataset>/<codec>_<setting>/<image_id>.dcm``, each part made file-safe."""
    return Path(out) / safe(dataset) / safe(f"{codec}_{setting}") / f"{safe(image_id)}.dcm"


def reference_path(out: Path, dataset: str, image_id: str) -> Path:
    """``out/<dataset>/reference_rle/<image_id>.dcm``."""
    return Path(out) / safe(dataset) / REFERENCE / f"{safe(image_id)}.dcm"


def safe(name: str) -> str:
    """A file or folder name: ``folder:/data/x`` → ``folder_data_x``."""
    return re.sub(r"[^A-Za-z0-9._=+-]+", "_", str(name)).strip("_.") or "_"


def write_index(out: Path, entries: Iterable[dict[str, Any]], run_id: str) -> Path:
    """Write ``out/index.csv``: one row per result row, written or skipped."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / INDEX
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=INDEX_COLUMNS)
        writer.writeheader()
        writer.writerows({**entry, "run_id": run_id} for entry in entries)
    return path
