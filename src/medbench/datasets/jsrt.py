"""The JSRT chest radiograph database: 247 raw ``.IMG`` files (154 with a lung nodule).

Shiraishi J, et al. Development of a digital image database for chest radiographs with
and without a lung nodule. AJR 2000;174:71-74. doi:10.2214/ajr.174.1.1740071. Distributed
by the Japanese Society of Radiological Technology (http://db.jsrt.or.jp/eng.php).

``<data-root>/jsrt/`` holds ``JPCLN001.IMG``–``JPCLN154.IMG`` (with nodule) and
``JPCNN001.IMG``–``JPCNN093.IMG`` (without), in any sub-folders. Each ``.IMG`` is raw, no
header: 2048×2048 big-endian 16-bit words holding 12-bit values, stored inverted (high
value = dark), so pixels are ``4095 - value`` in MONOCHROME2. PNG conversions named
``JPCLN001.png`` are accepted too (read as the PNG says, polarity as stored); where both
exist the native ``.IMG`` is used.

``CLNDAT_EN.txt`` / ``CNNDAT_EN.txt`` (the clinical information, anywhere in the tree)
add metadata. Their layout, as distributed (the 2008 User's Guide is known to be wrong
about it): one row per image starting with its file name; CLNDAT rows are tab-separated
``name, subtlety (1-5), nodule size mm, age, sex, x, y, malignant|benign`` followed by
free text (the first field is taken as the anatomic location, the rest as the diagnosis);
CNNDAT rows are space-separated ``name, age, sex, non-nodule``. Age may be ``?``. Rows
are found by their ``JPCLNnnn``/``JPCNNnnn`` name, so files whose line ends were lost
still parse.

Each JSRT image is a different patient: the split group is the image.

The nodule of a JPCLN record is also given as a region for the region metrics
(:mod:`medbench.benchmark.regions`): a disc centred on ``(x, y)`` with the nodule's size
as diameter, at :data:`PIXEL_MM` mm per pixel, in the 2048×2048 film's pixels
(``roi_discs``, ``roi_shape``). ``x`` is the column from the left and ``y`` the row from the
top, origin at the top-left pixel, as the JSRT documentation gives them (consistent with
the location column: left-lung nodules lie at large ``x``, the film being displayed facing
the patient). A JPCLN record without position or size gets a ``roi_note`` instead.
"""

from __future__ import annotations

import logging
import math
import re
from pathlib import Path
from typing import Any

import numpy as np

from medbench.datasets.base import Probe, Record
from medbench.datasets.formats import kind_by_name
from medbench.datasets.tree import FileTreeDataset
from medbench.errors import ImageReadError

log = logging.getLogger(__name__)

SIDE = 2048
BIT_DEPTH = 12
#: Pixel spacing of the JSRT films (mm per pixel).
PIXEL_MM = 0.175
IMG_BYTES = SIDE * SIDE * 2
NAME = re.compile(r"^JPC(LN|NN)\d{3}$", re.IGNORECASE)
_ROW = re.compile(r"(JPC(?:LN|NN)\d{3})(?:\.IMG)?", re.IGNORECASE)
_CLINICAL = re.compile(r"^(CLNDAT|CNNDAT).*\.txt$", re.IGNORECASE)


# -- the raw format ---------------------------------------------------------------------------
def img_size_problem(path: Path, size: int) -> str | None:
    """Why a file of ``size`` bytes cannot be a JSRT ``.IMG`` (None when it can)."""
    if size == IMG_BYTES:
        return None
    if size == 0:
        return "zero-byte file; copy it again from the JSRT download"
    if size < IMG_BYTES:
        return (
            f"{size:,} bytes where a JSRT .IMG has exactly {IMG_BYTES:,} (2048x2048 16-bit "
            "words): the file is truncated; copy it again"
        )
    return (
        f"{size:,} bytes where a JSRT .IMG has exactly {IMG_BYTES:,} (2048x2048 16-bit "
        "words): not a JSRT raw image"
    )


def read_jsrt_img(path: Path) -> tuple[np.ndarray, int, dict[str, Any]]:
    """MONOCHROME2 pixels of a JSRT ``.IMG``: ``4095 - value``, 12 bits, 2048×2048."""
    path = Path(path)
    try:
        problem = img_size_problem(path, path.stat().st_size)
        if problem:
            raise ImageReadError(f"{path}: {problem}")
        words = np.fromfile(path, dtype=">u2")
    except PermissionError as exc:
        raise ImageReadError(f"{path}: permission denied; make the file readable") from exc
    except OSError as exc:
        raise ImageReadError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
    if words.size != SIDE * SIDE:
        raise ImageReadError(f"{path}: changed while being read; read it again")
    top = int(words.max())
    if top > 2**BIT_DEPTH - 1:
        raise ImageReadError(
            f"{path}: holds the value {top}, more than 12 bits, so it is not a big-endian "
            "12-bit JSRT .IMG (a little-endian or other raw file?)"
        )
    pixels = (2**BIT_DEPTH - 1 - words).astype(np.uint16).reshape(SIDE, SIDE)
    return pixels, BIT_DEPTH, {"format": "jsrt-img", "stored_inverted": True}


# -- the clinical information ------------------------------------------------------------------
def _number(text: str | None) -> int | float | None:
    if text is None:
        return None
    text = text.strip()
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return None


def parse_clinical(text: str) -> dict[str, dict[str, Any]]:
    """Rows of ``CLNDAT_EN.txt`` / ``CNNDAT_EN.txt`` by image id (``JPCLN001``)."""
    parts = _ROW.split(text)
    rows: dict[str, dict[str, Any]] = {}
    for i in range(1, len(parts), 2):
        image_id = parts[i].upper()
        rest = parts[i + 1].strip("\r\n")
        if image_id.startswith("JPCLN"):
            rows[image_id] = _nodule_row(rest)
        else:
            tokens = rest.split()
            rows[image_id] = {
                "nodule": False,
                "age": _number(tokens[0]) if tokens else None,
                "sex": tokens[1] if len(tokens) > 1 else None,
                "diagnosis": " ".join(tokens[2:]) or None,
            }
    return rows


def _nodule_row(rest: str) -> dict[str, Any]:
    if "\t" in rest:
        fields = [f.strip() for f in rest.strip("\t ").split("\t")]
    else:
        fields = rest.split()
    head = (fields + [""] * 7)[:7]
    tail = [f for f in fields[7:] if f]
    location, diagnosis = None, " ".join(tail) or None
    if "\t" in rest and len(tail) >= 2:
        location, diagnosis = tail[0], " ".join(tail[1:])
    return {
        "nodule": True,
        "subtlety": _number(head[0]),
        "nodule_size_mm": _number(head[1]),
        "age": _number(head[2]),
        "sex": head[3] or None,
        "nodule_x": _number(head[4]),
        "nodule_y": _number(head[5]),
        "malignancy": head[6] or None,
        "location": location,
        "diagnosis": diagnosis,
    }


def nodule_region(row: dict[str, Any]) -> dict[str, Any]:
    """Record metadata describing a JPCLN image's nodule as a region (``roi_*`` keys).

    A disc at ``(nodule_x, nodule_y)`` of diameter ``nodule_size_mm / PIXEL_MM`` pixels in
    the 2048×2048 frame; a ``roi_note`` when the clinical row lacks any of them.
    """
    x, y, size = row.get("nodule_x"), row.get("nodule_y"), row.get("nodule_size_mm")
    if any(v is None or not math.isfinite(v) for v in (x, y, size)) or size <= 0:
        return {"roi_note": "no nodule position and size in CLNDAT_EN.txt; "
                            "no region metrics for this image"}
    return {"roi_label": "nodule", "roi_discs": ((float(x), float(y), size / PIXEL_MM),),
            "roi_shape": (SIDE, SIDE), "roi_source": "CLNDAT_EN.txt"}


# -- the dataset -------------------------------------------------------------------------------
class JsrtDataset(FileTreeDataset):
    """JSRT: 247 raw 12-bit 2048² chest radiographs, with nodule metadata when present."""

    name = "jsrt"
    folder = "jsrt"
    group_kind = "patient"  # one film per patient
    description = "JSRT: 247 chest radiographs, raw 12-bit 2048x2048 .IMG (or PNG)"
    expected = "the JSRT .IMG files (JPCLN001.IMG ... JPCNN093.IMG) or their PNG conversions"
    body_part = "CHEST"

    def prepare(self, root: Path, files: list[Path]) -> None:
        self._clinical: dict[str, dict[str, Any]] = {}
        self._native: set[str] = set()
        for path in files:
            if self.is_side_file(path):
                rows = parse_clinical(path.read_text(encoding="latin-1"))
                if not rows:
                    self.skip(path, "clinical information file without JPCLN/JPCNN rows")
                self._clinical.update(rows)
            elif path.suffix.lower() == ".img" and NAME.match(path.stem):
                self._native.add(path.stem.upper())

    def is_side_file(self, path: Path) -> bool:
        return bool(_CLINICAL.match(path.name))

    def kind_of(self, path: Path) -> str | None:
        if path.suffix.lower() == ".img":
            return "jsrt-img"
        return kind_by_name(path)

    def describe(self, path: Path, kind: str, root: Path) -> Record | str:
        if not NAME.match(path.stem):
            return "not a JSRT file name (JPCLNnnn or JPCNNnnn)"
        image_id = path.stem.upper()
        if kind == "jsrt-img":
            problem = img_size_problem(path, path.stat().st_size)
            if problem:
                return problem
        elif image_id in self._native:
            return f"a conversion of {image_id}, whose native .IMG is used instead"
        meta = dict(self._clinical.get(image_id, {"nodule": image_id.startswith("JPCLN")}))
        if image_id.startswith("JPCLN"):
            meta.update(nodule_region(meta))
        return self.make_record(path, image_id, image_id, kind, **meta)

    def read_file(self, path: Path, kind: str):
        if kind == "jsrt-img":
            return read_jsrt_img(path)
        return super().read_file(path, kind)

    def probe_file(self, path: Path, kind: str) -> Probe:
        if kind == "jsrt-img":
            problem = img_size_problem(path, path.stat().st_size)
            if problem:
                raise ImageReadError(f"{path}: {problem}")
            return Probe(SIDE, SIDE, BIT_DEPTH)
        return super().probe_file(path, kind)
