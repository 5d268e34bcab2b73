"""OPEN-I: the Indiana University chest X-ray collection (NLMCXR), as PNG and/or DICOM.

Demner-Fushman D, et al. Preparing a collection of radiology examinations for distribution
and retrieval. JAMIA 2016;23(2):304-310. doi:10.1093/jamia/ocv080. Downloads:
https://openi.nlm.nih.gov/faq (``NLMCXR_png.tgz``, ``NLMCXR_dcm.tgz``,
``NLMCXR_reports.tgz``).

``<data-root>/openi/`` holds, in any sub-folders:

- PNGs named ``CXR<report>_<n>_IM-<a>-<b>.png`` (8-bit grey);
- DICOMs (``.dcm``) named after the same images, with or without the ``CXR`` prefix. They
  mix MONOCHROME1 and MONOCHROME2 and Bits Stored 10-15; each file's own photometric
  interpretation, Rescale Slope/Intercept and Bits Stored are applied by
  :func:`~medbench.datasets.dicom.read_dicom` (INVERSE on MONOCHROME1 inverts once);
- optionally the reports, ``ecgen-radiology/<k>.xml``: each ``<eCitation>`` names its
  report (``<uId id="CXR1"/>``, else ``CXR`` + the file stem) and its images
  (``<parentImage id="CXR1_1_IM-0001-3001">``).

Split groups are reports: an image listed by a report is grouped with it; an image no
report lists is grouped by the ``CXR<report>`` prefix of its name. Where a PNG and a DICOM
of the same image are both present, both are kept, as ``<id>_png`` and ``<id>_dcm``, in
the same group.
"""

from __future__ import annotations

import logging
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from medbench.datasets.base import Record
from medbench.datasets.files import safe_id
from medbench.datasets.tree import FileTreeDataset

log = logging.getLogger(__name__)

_REPORT_PREFIX = re.compile(r"^(?:CXR)?(\d+)_", re.IGNORECASE)


def parse_report(path: Path) -> tuple[str, list[str], dict[str, Any]]:
    """``(report id, image ids, metadata)`` of one ``ecgen-radiology`` XML report."""
    root = ET.parse(path).getroot()
    uid = root.find(".//uId")
    report = (uid.get("id") if uid is not None else None) or f"CXR{path.stem}"
    images = [p.get("id", "").strip() for p in root.iter("parentImage")]
    major = [m.text.strip() for m in root.iter("major") if m.text and m.text.strip()]
    impression = None
    for node in root.iter("AbstractText"):
        if (node.get("Label") or "").upper() == "IMPRESSION" and node.text:
            impression = node.text.strip()
    meta = {"mesh": "; ".join(major) or None, "impression": impression}
    return report, [i for i in images if i], meta


def report_of_name(stem: str) -> str | None:
    """``CXR<report>`` from an image name such as ``CXR12_1_IM-0123-1001``."""
    match = _REPORT_PREFIX.match(stem)
    return f"CXR{int(match.group(1))}" if match else None


class OpenIDataset(FileTreeDataset):
    """OPEN-I (Indiana NLMCXR) chest radiographs, grouped by report."""

    name = "openi"
    group_kind = "report"
    folder = "openi"
    description = "OPEN-I (Indiana NLMCXR): chest X-rays as PNG and/or DICOM, by report"
    expected = "the NLMCXR PNGs (CXR<report>_<n>_IM-....png) and/or DICOMs (.dcm)"
    body_part = "CHEST"

    def is_side_file(self, path: Path) -> bool:
        return path.suffix.lower() == ".xml"

    def prepare(self, root: Path, files: list[Path]) -> None:
        self._reports: dict[str, tuple[str, dict[str, Any]]] = {}
        stems: dict[str, int] = {}
        for path in files:
            if self.is_side_file(path):
                try:
                    report, images, meta = parse_report(path)
                except (ET.ParseError, OSError) as exc:
                    self.skip(path, f"unreadable report XML ({exc})")
                    continue
                for image in images:
                    self._reports[_key(image)] = (report, meta)
            elif self.kind_of(path) is not None:
                stems[_key(path.stem)] = stems.get(_key(path.stem), 0) + 1
        self._shared_stems = {stem for stem, n in stems.items() if n > 1}

    def describe(self, path: Path, kind: str, root: Path) -> Record | str:
        key = _key(path.stem)
        report, meta = self._reports.get(key, (None, {}))
        if report is None:
            report = report_of_name(path.stem)
        if report is None:
            return (
                "no report lists this image and its name has no CXR<report>_ prefix, "
                "so its split group is unknown"
            )
        image_id = safe_id(path.stem)
        if key in self._shared_stems:
            image_id = safe_id(path.stem, "dcm" if kind == "dicom" else kind)
        return self.make_record(path, image_id, report, kind, report=report, **meta)


def _key(name: str) -> str:
    """Image names compared without the ``CXR`` prefix (DICOMs often lack it)."""
    name = name.strip()
    return name[3:].lower() if name.upper().startswith("CXR") else name.lower()
