"""NIH ChestX-ray14: 112,120 frontal chest radiographs of 30,805 patients.

Wang X, et al. ChestX-ray8: Hospital-scale chest X-ray database and benchmarks on
weakly-supervised classification and localization of common thorax diseases. CVPR 2017.
doi:10.1109/CVPR.2017.369. Download: https://nihcc.app.box.com/v/ChestXray-NIHCC.

``<data-root>/nih/`` holds the PNGs as NIH ships them — ``images/PPPPPPPP_FFF.png``, the
unpacked archives ``images_001/images/...``, or the files directly in the folder.
``PPPPPPPP`` is the patient id (the split group) and ``FFF`` the follow-up number. The
images are 1024×1024, 8-bit grey; a few are stored as RGBA with R = G = B, which are read
as grey with the alpha dropped (real colour would be refused). An optional
``Data_Entry_2017*.csv`` (``Image Index, Finding Labels, Follow-up #, Patient ID, Patient
Age, Patient Gender, View Position, ...``) adds findings, age, sex and view; NIH's other
side files (bounding boxes, official train/test lists, README) are recognised and left
alone. Files with other names are skipped: without the ``PPPPPPPP_`` prefix the patient
is unknown and the split could leak.
"""

from __future__ import annotations

import csv
import logging
import re
from pathlib import Path
from typing import Any

from medbench.datasets.base import Record
from medbench.datasets.tree import FileTreeDataset

log = logging.getLogger(__name__)

NAME = re.compile(r"^(\d{8})_(\d{3})$")
_DATA_ENTRY = re.compile(r"^Data_Entry_2017.*\.csv$", re.IGNORECASE)
_NIH_SIDE = re.compile(
    r"^(Data_Entry_2017.*\.csv|BBox_List_2017.*\.csv|train_val_list.*\.txt|test_list.*\.txt"
    r"|README.*|FAQ.*|LOG_.*)$",
    re.IGNORECASE,
)


def _age(text: str | None) -> int | None:
    """``58`` from ``58`` or NIH's older ``058Y``."""
    match = re.match(r"^\s*(\d+)\s*[Yy]?\s*$", text or "")
    return int(match.group(1)) if match else None


def parse_data_entry(path: Path) -> dict[str, dict[str, Any]]:
    """Rows of a ``Data_Entry_2017*.csv`` by image id (file stem)."""
    rows: dict[str, dict[str, Any]] = {}
    with open(path, newline="", encoding="utf-8-sig") as f:
        for row in csv.DictReader(f):
            index = (row.get("Image Index") or "").strip()
            if not index:
                continue
            findings = (row.get("Finding Labels") or "").strip()
            rows[Path(index).stem] = {
                "findings": findings.replace("|", "; ") or None,
                "age": _age(row.get("Patient Age")),
                "sex": (row.get("Patient Gender") or "").strip() or None,
                "view": (row.get("View Position") or "").strip() or None,
            }
    return rows


class NihDataset(FileTreeDataset):
    """NIH ChestX-ray14 chest radiographs, grouped by patient."""

    name = "nih"
    group_kind = "patient"
    folder = "nih"
    description = "NIH ChestX-ray14: 8-bit 1024x1024 chest PNGs, grouped by patient"
    expected = "the ChestX-ray14 PNGs (images/PPPPPPPP_FFF.png)"
    body_part = "CHEST"

    def is_side_file(self, path: Path) -> bool:
        return bool(_NIH_SIDE.match(path.name))

    def prepare(self, root: Path, files: list[Path]) -> None:
        self._entries: dict[str, dict[str, Any]] = {}
        # Sorted names put Data_Entry_2017_v2020.csv after Data_Entry_2017.csv: newer wins.
        for path in sorted((p for p in files if _DATA_ENTRY.match(p.name)), key=lambda p: p.name):
            try:
                self._entries.update(parse_data_entry(path))
            except (OSError, csv.Error, UnicodeDecodeError) as exc:
                self.skip(path, f"unreadable Data_Entry table ({exc})")

    def describe(self, path: Path, kind: str, root: Path) -> Record | str:
        match = NAME.match(path.stem)
        if not match:
            return "not a ChestX-ray14 name (PPPPPPPP_FFF.png), so its patient is unknown"
        patient, follow_up = match.groups()
        meta = self._entries.get(path.stem, {})
        return self.make_record(
            path, path.stem, patient, kind, patient_id=patient, follow_up=int(follow_up), **meta
        )
