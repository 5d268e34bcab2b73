"""Patient groups for a bare folder: ``run --groups CSV`` or ``run --group-by REGEX``.

A ``folder:`` tree says nothing about patients, so each image is its own group: splits may
put two films of one patient on both sides, and intervals must assume the images are
independent. A user who knows better says so:

- ``--groups FILE``: a CSV with a header and two columns, the image (its medbench id, e.g.
  ``chest_a``, or its path inside the folder, ``chest/a.png``) and its group. The second
  column's header names what a group is (``patient``, ``study``, ``report``...; any other
  header, e.g. ``group``, reads as ``group``), and reports use that word.
- ``--group-by REGEX``: a regular expression searched in each image's path inside the
  folder (``/``-separated); the group is its first capturing group (the whole match when
  it has none), and a named group names the kind: ``--group-by '^(?P<patient>\\d{8})_'``
  groups NIH-style names by patient.

An image the table does not list, or whose path the expression does not match, is
skipped with that reason (never silently made a group of its own).
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path

from medbench.errors import DatasetError

#: First-column headers of a ``--groups`` table.
IMAGE_HEADERS = ("image", "image_id", "path", "file")
#: Most rows a ``--groups`` table may hold (far above any real collection).
MAX_ROWS = 10_000_000
_KIND = re.compile(r"^[a-z][a-z _-]{0,30}$")


@dataclass(frozen=True)
class Grouping:
    """How a ``folder:`` dataset groups its images, and what a group is (``kind``)."""

    kind: str
    source: str  # what the user gave, for messages: ``--groups FILE``, ``--group-by RE``
    table: dict[str, str] = field(default_factory=dict)
    pattern: re.Pattern[str] | None = None

    def group_of(self, relative: str, image_id: str) -> str | None:
        """The group of the image at ``relative`` (``/``-separated) with ``image_id``;
        None when this grouping does not place it."""
        if self.pattern is not None:
            found = self.pattern.search(relative)
            if found is None:
                return None
            value = found.group(1) if self.pattern.groups else found.group(0)
            return value or None
        return self.table.get(image_id) or self.table.get(relative)

    def reason(self) -> str:
        """Why an image without a group is skipped."""
        if self.pattern is not None:
            return f"no group: its path does not match {self.source}"
        return f"no group: not listed in {self.source}"


def group_by(expression: str) -> Grouping:
    """The grouping of ``--group-by REGEX`` (raises :class:`DatasetError` for a bad one)."""
    try:
        pattern = re.compile(expression)
    except re.error as exc:
        raise DatasetError(f"--group-by {expression!r} is not a regular expression ({exc}); "
                           "e.g. --group-by '^(\\d{8})_' groups by an 8-digit prefix") from None
    names = [name for name, index in pattern.groupindex.items() if index == 1]
    kind = names[0].replace("_", " ") if names and _KIND.match(names[0]) else "group"
    return Grouping(kind, f"--group-by {expression!r}", pattern=pattern)


def read_groups(path: Path) -> Grouping:
    """The grouping of a ``--groups`` CSV (raises :class:`DatasetError` naming the file)."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            return _read_table(path, csv.reader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"--groups {path} cannot be read as a CSV table ({exc}); give a "
                           "CSV with the columns image,patient") from None


def _read_table(path: Path, rows) -> Grouping:
    header = next(rows, None)
    if not header or len(header) < 2 or header[0].strip().lower() not in IMAGE_HEADERS:
        raise DatasetError(f"--groups {path} needs a header row 'image,<kind>' (e.g. "
                           f"image,patient), the image's id or path first, then its group")
    kind = header[1].strip().lower()
    kind = kind if _KIND.match(kind) else "group"
    table: dict[str, str] = {}
    for number, row in enumerate(rows, start=2):
        if number > MAX_ROWS + 1:
            raise DatasetError(f"--groups {path} has more than {MAX_ROWS} rows")
        if not row or not any(cell.strip() for cell in row):
            continue
        if len(row) < 2 or not row[0].strip() or not row[1].strip():
            raise DatasetError(f"--groups {path} line {number}: needs an image and a group, "
                               f"got {row!r}")
        image, group = row[0].strip(), row[1].strip()
        if table.get(image, group) != group:
            raise DatasetError(f"--groups {path} line {number}: {image} is listed in two "
                               f"groups ({table[image]} and {group}); keep one")
        table[image] = group
    if not table:
        raise DatasetError(f"--groups {path} lists no image; give one row per image")
    return Grouping(kind, f"--groups {path}", table=table)
