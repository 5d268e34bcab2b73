"""The split manifest: which image went to which split, kept beside the results and reused.

A split is decided once per group by :func:`~medbench.datasets.splits.split_of` (a hash of
the group id) and written to ``<out>/manifests/<dataset>.csv`` with one row per image::

    image_id, group, split, file_hash, source, size, mtime_ns

A later run into the same ``--out`` reads it back: images already listed keep their split,
new images of a listed group join that group's split, and only new groups are hashed.
So adding files (or a future change of the split rule) never reshuffles old images. If a
group's listed images disagree (the grouping of a collection changed, e.g. its reports
were added), the group goes whole to the split most of them had and the move is logged:
no group is ever in two splits.

``file_hash`` is the SHA-256 of the image file. It is filled in when an image is first read
(hashing a whole collection just to list it would read every byte of it); ``size`` and
``mtime_ns`` let the next run trust the hash without reading the file again.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from medbench.datasets.base import Dataset, Record
from medbench.datasets.splits import SPLITS, split_of
from medbench.errors import MedbenchError

log = logging.getLogger(__name__)

COLUMNS = ["image_id", "group", "split", "file_hash", "source", "size", "mtime_ns"]


@dataclass
class Entry:
    image_id: str
    group: str
    split: str
    file_hash: str = ""
    source: str = ""
    size: str = ""
    mtime_ns: str = ""


def manifest_name(spec: str) -> str:
    """File name of a dataset's manifest: ``jsrt.csv``, ``folder-<hash of PATH>.csv``."""
    name, _, argument = spec.partition(":")
    if not argument:
        return f"{name}.csv"
    return f"{name}-{hashlib.sha256(argument.encode()).hexdigest()[:12]}.csv"


def uses_manifest(dataset: Dataset) -> bool:
    """Datasets read from user files keep a manifest; generated ones need none."""
    return dataset.splits_manifest


class SplitManifest:
    """The manifest of one dataset in one results folder."""

    def __init__(self, path: Path, dataset_name: str):
        self.path = Path(path)
        self.dataset_name = dataset_name
        self.entries: dict[str, Entry] = {}
        self.moved: list[str] = []
        if self.path.is_file():
            self._load()

    @classmethod
    def in_folder(cls, out: Path, spec: str, dataset_name: str) -> SplitManifest:
        return cls(Path(out) / "manifests" / manifest_name(spec), dataset_name)

    def _load(self) -> None:
        """Read the manifest; a file that is no manifest is refused in one line."""
        try:
            with open(self.path, newline="", encoding="utf-8") as f:
                reader = csv.DictReader(f)
                missing = [c for c in ("image_id", "split") if c not in (reader.fieldnames or [])]
                if missing:
                    raise ValueError(f"no column {', '.join(missing)}")
                for row in reader:
                    if row.get("image_id") and row.get("split") in SPLITS:
                        entry = Entry(**{k: row.get(k) or "" for k in COLUMNS})
                        self.entries[entry.image_id] = entry
        except (UnicodeDecodeError, csv.Error, ValueError) as exc:
            raise MedbenchError(
                f"the split manifest {self.path} is damaged ({exc}); move it away to have "
                "the splits decided again by the same rule, or restore it") from None

    def assign(self, dataset: Dataset, records: list[Record]) -> dict[str, str]:
        """The split of every record (image id → split), reusing what the manifest holds."""
        groups: dict[str, list[Record]] = {}
        for record in sorted(records, key=lambda r: r.image_id):
            groups.setdefault(record.group, []).append(record)
        splits: dict[str, str] = {}
        for group, members in groups.items():
            listed = [self.entries[r.image_id].split for r in members if r.image_id in self.entries]
            if listed:
                counts = Counter(listed)
                split = max(dict.fromkeys(listed), key=lambda s: counts[s])  # ties: first seen
                moved = [r.image_id for r in members
                         if r.image_id in self.entries and self.entries[r.image_id].split != split]
                if moved:
                    log.warning(
                        "%s: group %s spanned splits in %s; moved %s to %s to keep it whole",
                        self.dataset_name, group, self.path, ", ".join(moved), split,
                    )
                    self.moved.extend(moved)
            else:
                split = split_of(self.dataset_name, group)
            for record in members:
                splits[record.image_id] = split
                old = self.entries.get(record.image_id)
                entry = Entry(record.image_id, group, split, source=record.source)
                if old is not None and old.source == record.source:
                    entry.file_hash, entry.size = old.file_hash, old.size
                    entry.mtime_ns = old.mtime_ns
                self.entries[record.image_id] = entry
        self._seed_hashes(dataset)
        return splits

    def _seed_hashes(self, dataset: Dataset) -> None:
        hasher = dataset.hasher
        if hasher is None:
            return
        for entry in self.entries.values():
            if entry.file_hash and entry.size.isdigit() and entry.mtime_ns.isdigit():
                hasher.remember(entry.source, int(entry.size), int(entry.mtime_ns), entry.file_hash)

    def collect_hashes(self, dataset: Dataset) -> None:
        """Copy the hashes the dataset computed while reading into the manifest."""
        hasher = dataset.hasher
        if hasher is None:
            return
        for entry in self.entries.values():
            known = hasher.known(entry.source)
            if known is not None:
                entry.size, entry.mtime_ns, entry.file_hash = str(known[0]), str(known[1]), known[2]

    def save(self) -> Path:
        """Write the manifest (atomically: a crash leaves the old one or the new one)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=COLUMNS)
            writer.writeheader()
            for image_id in sorted(self.entries):
                writer.writerow(asdict(self.entries[image_id]))
        os.replace(tmp, self.path)
        return self.path


def assign_splits(
    dataset: Dataset, records: list[Record], manifest: SplitManifest | None = None
) -> dict[str, str]:
    """Image id → split: from the manifest when one is given, else from the group hash."""
    if manifest is not None:
        return manifest.assign(dataset, records)
    return {r.image_id: split_of(dataset.name, r.group) for r in records}


def choose_records(
    dataset: Dataset,
    split: str,
    limit: int | None = None,
    manifest: SplitManifest | None = None,
    seed: int = 0,
) -> list[Record]:
    """The dataset's records in ``split`` (or ``all``), sorted by id.

    Parameters
    ----------
    dataset
        The dataset to choose from.
    split
        ``train``, ``val``, ``test`` or ``all``.
    limit
        At most this many records: a seeded random sample (:func:`sample_records`), not
        the lowest ids. None: every record of the split.
    manifest
        The split manifest that keeps earlier split decisions (None: decide afresh).
    seed
        Seed of the ``limit`` sample; one seed always gives the same sample.

    Returns
    -------
    list of Record
        Sorted by image id, each carrying its split in ``meta["split"]``, and the group its
        values are resampled with in intervals and what that group is in
        ``meta["interval_group"]`` and ``meta["group_kind"]``
        (:meth:`~medbench.datasets.base.Dataset.interval_group`).
    """
    if split != "all" and split not in SPLITS:
        raise MedbenchError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}, all")
    records = dataset.records()
    splits = assign_splits(dataset, records, manifest)
    chosen = sorted(
        (r for r in records if split in ("all", splits[r.image_id])), key=lambda r: r.image_id
    )
    if limit is not None:
        chosen = sample_records(chosen, limit, seed)
    kind = dataset.interval_group_kind()
    return [Record(r.image_id, r.group, r.source,
                   {**r.meta, "split": splits[r.image_id],
                    "interval_group": dataset.interval_group(r), "group_kind": kind})
            for r in chosen]


def sample_records(records: list[Record], limit: int, seed: int = 0) -> list[Record]:
    """At most ``limit`` records: whole groups (patients) in a seeded random order, then,
    to hit ``limit`` exactly, the first images (by id) of one more group; sorted by id.

    Sampling groups rather than images keeps a patient's images together, as the
    clustered confidence intervals of the reports assume.
    """
    if limit >= len(records):
        return list(records)
    by_group: dict[str, list[Record]] = {}
    for record in sorted(records, key=lambda r: r.image_id):
        by_group.setdefault(record.group, []).append(record)
    names = sorted(by_group)
    order = np.random.default_rng(seed).permutation(len(names))
    chosen: list[Record] = []
    for index in order:
        chosen += by_group[names[index]][: limit - len(chosen)]
        if len(chosen) >= limit:
            break
    return sorted(chosen, key=lambda r: r.image_id)


def choose_with_manifest(dataset: Dataset, spec: str, splits: tuple[str, ...],
                         limit: int | None, folder: Path | None, seed: int = 0,
                         keep: Callable[[Record], bool] | None = None
                         ) -> dict[str, list[Record]]:
    """Records of each of ``splits`` as ``medbench run`` and ``medbench train`` choose them.

    The dataset's split manifest in ``folder/manifests/`` (when the dataset keeps one and
    ``folder`` is given) decides the splits; the chosen files are hashed and the manifest
    saved, so a later run or training reuses the same split and notices changed files.

    Parameters
    ----------
    dataset
        The opened dataset.
    spec
        Its spec as typed (names the manifest file).
    splits
        The splits wanted (``train``, ``val``, ``test`` or ``all``).
    limit, seed
        At most ``limit`` records per split, a sample drawn with ``seed``
        (:func:`choose_records`).
    folder
        Where ``manifests/`` lives: a run's ``--out``, a training's ``--models``.
    keep
        Only records it accepts (a resumed run's own images), before any file is hashed.

    Returns
    -------
    dict of str to list of Record
        Per split, the records, with their file hash in ``meta`` where the dataset hashes.
    """
    manifest = None
    if folder is not None and uses_manifest(dataset):
        manifest = SplitManifest.in_folder(folder, spec, dataset.name)
    chosen = {split: choose_records(dataset, split, limit, manifest, seed) for split in splits}
    if keep is not None:
        chosen = {split: [r for r in records if keep(r)] for split, records in chosen.items()}
    if manifest is not None:
        chosen = {split: attach_hashes(dataset, records) for split, records in chosen.items()}
        manifest.collect_hashes(dataset)
        manifest.save()
    return chosen


def attach_hashes(dataset: Dataset, records: list[Record]) -> list[Record]:
    """Records with their file's hash in ``meta`` (``file_hash``, ``file_size``,
    ``file_mtime_ns``), so worker processes need not hash the file again."""
    hasher = dataset.hasher
    if hasher is None:
        return records
    out = []
    for record in records:
        try:
            digest = dataset.fingerprint(record)
        except OSError as exc:  # unreadable now: its load fails later, as an error row
            log.info("%s: cannot hash %s (%s)", dataset.name, record.source, exc)
            out.append(record)
            continue
        known = hasher.known(record.source)
        extra = {"file_hash": digest}
        if known is not None and known[2] == digest:
            extra.update(file_size=known[0], file_mtime_ns=known[1])
        out.append(Record(record.image_id, record.group, record.source, {**record.meta, **extra}))
    return out
