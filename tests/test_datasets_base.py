"""The abilities every dataset declares: defaults on the base, overrides on file trees."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medbench.datasets import get_dataset
from medbench.datasets.base import Probe
from medbench.datasets.files import FileHasher
from medbench.datasets.raster import write_png


def test_base_defaults_need_no_files() -> None:
    dataset = get_dataset("synthetic:2@32")
    record = dataset.records()[0]
    assert dataset.root() is None
    assert dataset.probe(record) == Probe(32, 32, 12)  # by loading the image
    assert dataset.fingerprint(record) == record.source
    assert dataset.content_fingerprint is False
    assert dataset.splits_manifest is False
    assert dataset.hasher is None


def test_file_trees_override_them(tmp_path: Path) -> None:
    write_png(tmp_path / "a.png", np.arange(64, dtype=np.uint16).reshape(8, 8), 12)
    dataset = get_dataset(f"folder:{tmp_path}")
    record = dataset.records()[0]
    assert dataset.root() == tmp_path
    assert dataset.probe(record) == Probe(8, 8, 12)  # from the header
    assert len(dataset.fingerprint(record)) == 64  # SHA-256 of the file
    assert dataset.content_fingerprint is True
    assert dataset.splits_manifest is True
    assert isinstance(dataset.hasher, FileHasher)
