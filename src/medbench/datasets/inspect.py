"""What a dataset holds: counts per split, bit depths, sizes, body parts, skipped files.

Behind ``medbench datasets show``. Sizes and bit depths come from each file's header (a
PNG's IHDR and sBIT, a DICOM header, a JSRT file's length), so a large collection is
summarised without decoding it; a file whose header cannot be read counts as skipped.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from medbench.datasets.base import Dataset, Skipped
from medbench.datasets.limits import budget_note
from medbench.datasets.manifest import SplitManifest, assign_splits
from medbench.datasets.splits import SPLITS
from medbench.errors import MedbenchError


@dataclass
class DatasetSummary:
    name: str
    location: str | None
    images: int = 0
    groups: int = 0
    splits: Counter = field(default_factory=Counter)
    bit_depths: Counter = field(default_factory=Counter)
    sizes: Counter = field(default_factory=Counter)
    formats: Counter = field(default_factory=Counter)
    body_parts: Counter = field(default_factory=Counter)
    skipped: list[Skipped] = field(default_factory=list)


def summarize_dataset(
    dataset: Dataset, spec: str, manifest: SplitManifest | None = None
) -> DatasetSummary:
    """Counts over the usable images of ``dataset`` (raises DatasetError when it has none)."""
    records = dataset.records()
    root = dataset.root()
    summary = DatasetSummary(spec, str(root) if root is not None else None)
    splits = assign_splits(dataset, records, manifest)
    unreadable: list[Skipped] = []
    groups = set()
    for record in records:
        try:
            probe = dataset.probe(record)
        except Exception as exc:  # one odd file is listed as skipped, as a run does
            unreadable.append(Skipped(record.source, _reason(record.source, failure(exc))))
            continue
        summary.images += 1
        groups.add(record.group)
        summary.splits[splits[record.image_id]] += 1
        summary.bit_depths[probe.bit_depth] += 1
        summary.sizes[f"{probe.height}x{probe.width}"] += 1
        summary.formats[record.meta.get("format") or "-"] += 1
        summary.body_parts[record.meta.get("body_part") or "(not given)"] += 1
    summary.groups = len(groups)
    summary.skipped = [Skipped(s.source, _reason(s.source, s.reason)) for s in dataset.skipped]
    summary.skipped += unreadable
    return summary


def failure(exc: BaseException) -> str:
    """The reason an image could not be read, as one line.

    A :class:`~medbench.errors.MedbenchError` already names the file and the fix; anything
    else (a library's own error) is named by its type, so the line is never empty.
    """
    if isinstance(exc, MedbenchError):
        return str(exc)
    if isinstance(exc, MemoryError):
        return f"ran out of memory reading it ({budget_note()})"
    return f"{type(exc).__name__}: {exc}"


def _reason(source: str, reason: str) -> str:
    """A reason without the file name it starts with (it is printed beside it)."""
    prefix = f"{source}: "
    return reason[len(prefix):] if reason.startswith(prefix) else reason


def _counts(counter: Counter, fmt: str = "{}", limit: int = 24) -> str:
    items = sorted(counter.items(), key=lambda kv: (-kv[1], str(kv[0])))
    text = ", ".join(f"{fmt.format(k)} {n}" for k, n in items[:limit])
    if len(items) > limit:
        text += f", ... ({len(items) - limit} more)"
    return text or "-"


def format_summary(summary: DatasetSummary, max_skipped: int = 50) -> str:
    """The text of ``medbench datasets show``."""
    where = f" ({summary.location})" if summary.location else ""
    splits = ", ".join(f"{s} {summary.splits.get(s, 0)}" for s in SPLITS)
    lines = [
        f"{summary.name}{where}",
        f"  images:     {summary.images} in {summary.groups} split groups",
        f"  splits:     {splits}",
        f"  bit depths: {_counts(summary.bit_depths, '{}-bit')}",
        f"  sizes:      {_counts(summary.sizes)}",
        f"  formats:    {_counts(summary.formats)}",
        f"  body parts: {_counts(summary.body_parts)}",
        f"  skipped:    {len(summary.skipped)} file(s)",
    ]
    base = Path(summary.location) if summary.location else None
    for item in summary.skipped[:max_skipped]:
        name = item.source
        if base is not None and Path(name).is_relative_to(base):
            name = str(Path(name).relative_to(base))
        lines.append(f"    {name}: {item.reason}")
    if len(summary.skipped) > max_skipped:
        lines.append(f"    ... and {len(summary.skipped) - max_skipped} more")
    return "\n".join(lines)
