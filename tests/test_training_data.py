"""Training data: the train and val records a run would choose, through the same manifest."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from medbench.datasets import get_dataset
from medbench.datasets.manifest import SplitManifest, choose_records
from medbench.datasets.protocols import NATIVE
from medbench.errors import DatasetError
from medbench.image import Image
from medbench.training.data import CropBatches, SplitImages, choose_splits, load_splits
from tests.fixture_formats import picture, write_png


def _nih_tree(root, patients, per_patient=2):
    for p in range(patients):
        for f in range(per_patient):
            write_png(root / "nih" / "images" / f"{p:08d}_{f:03d}.png",
                      picture((16, 16), 8, p + f))


def _ids(records):
    return [r.image_id for r in records]


@pytest.mark.parametrize("limit", [None, 3])
def test_training_records_are_those_a_run_chooses(tmp_path, limit):
    _nih_tree(tmp_path, patients=30)
    chosen = choose_splits(get_dataset("nih", tmp_path), "nih", ("train", "val"), limit,
                           manifest_dir=tmp_path / "models")
    run_dataset = get_dataset("nih", tmp_path)  # a run into its own --out
    run_manifest = SplitManifest.in_folder(tmp_path / "out", "nih", run_dataset.name)
    for split in ("train", "val"):
        expected = choose_records(run_dataset, split, limit, run_manifest)
        assert expected and _ids(chosen[split]) == _ids(expected)
    assert (tmp_path / "models" / "manifests" / "nih.csv").is_file()


def test_training_follows_its_manifest_over_the_group_hash(tmp_path):
    _nih_tree(tmp_path, patients=12, per_patient=1)
    models = tmp_path / "models"
    before = choose_splits(get_dataset("nih", tmp_path), "nih", ("train", "val"),
                           manifest_dir=models)
    moved = before["train"][0].image_id
    path = models / "manifests" / "nih.csv"
    rows = list(csv.DictReader(open(path)))
    for row in rows:
        if row["image_id"] == moved:
            row["split"] = "val"  # as if an earlier run had put that patient there
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    after = choose_splits(get_dataset("nih", tmp_path), "nih", ("train", "val"),
                          manifest_dir=models)
    assert moved in _ids(after["val"]) and moved not in _ids(after["train"])
    saved = {r["image_id"]: r for r in csv.DictReader(open(path))}
    assert len(saved[moved]["file_hash"]) == 64  # hashes recorded, as a run records them


def test_generated_datasets_need_no_manifest(tmp_path):
    chosen = choose_splits(get_dataset("sample"), "sample", ("train", "val"), 2,
                           manifest_dir=tmp_path)
    assert len(chosen["train"]) == 2 and len(chosen["val"]) == 2
    assert not (tmp_path / "manifests").exists()


def test_load_splits_prepares_the_images(tmp_path):
    _nih_tree(tmp_path, patients=20)
    splits = load_splits("nih", tmp_path, NATIVE, limit=2, manifest_dir=tmp_path / "m")
    assert [len(splits[s]) for s in ("train", "val")] == [2, 2]
    assert all(im.pixels.shape == (16, 16) for im in splits["train"].images)


def test_an_empty_split_is_refused(tmp_path):
    _nih_tree(tmp_path, patients=1, per_patient=1)
    with pytest.raises(DatasetError, match="split"):
        load_splits("nih", tmp_path, NATIVE)


def test_crop_batches_are_in_unit_range_and_the_crop_size():
    images = [Image(np.full((40, 48), 4095, np.uint16), 12, "a"),
              Image(np.zeros((40, 40), np.uint8), 8, "b")]
    data = CropBatches(SplitImages(images, "x", "train"), crop=32, stride=16,
                       device=torch.device("cpu"))
    batches = list(data.batches(2, np.random.default_rng(0)))
    assert len(batches) == 1 and batches[0].shape == (2, 1, 32, 32)
    assert {float(b.max()) for b in batches[0]} == {0.0, 1.0}
