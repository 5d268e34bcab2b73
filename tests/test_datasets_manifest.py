"""Splits: grouped (no patient in two splits), deterministic, and stable as files are added."""

from __future__ import annotations

import csv
from collections import defaultdict

from medbench.datasets import get_dataset
from medbench.datasets.manifest import (
    SplitManifest,
    attach_hashes,
    choose_records,
    manifest_name,
)
from medbench.datasets.splits import split_of
from tests.fixture_formats import picture, write_png


def _nih_tree(root, patients, per_patient=3, start=0):
    for p in range(start, start + patients):
        for f in range(per_patient):
            write_png(root / "nih" / "images" / f"{p:08d}_{f:03d}.png", picture((8, 8), 8, p + f))


def _splits_by_group(records):
    by_group = defaultdict(set)
    for record in records:
        by_group[record.group].add(record.meta["split"])
    return by_group


def test_no_group_is_in_two_splits_and_all_splits_are_used(tmp_path):
    _nih_tree(tmp_path, patients=40)
    records = choose_records(get_dataset("nih", tmp_path), "all")
    assert len(records) == 120
    by_group = _splits_by_group(records)
    assert all(len(splits) == 1 for splits in by_group.values())
    counts = {s: sum(1 for r in records if r.meta["split"] == s) for s in ("train", "test", "val")}
    assert all(counts[s] > 0 for s in counts) and counts["train"] > counts["test"]
    # The split is the group hash, not file order or count.
    assert all(r.meta["split"] == split_of("nih", r.group) for r in records)


def test_same_split_after_files_are_added(tmp_path):
    _nih_tree(tmp_path, patients=20, per_patient=2)
    manifest = SplitManifest.in_folder(tmp_path / "out", "nih", "nih")
    before = {r.image_id: r.meta["split"]
              for r in choose_records(get_dataset("nih", tmp_path), "all", manifest=manifest)}
    manifest.save()
    # More follow-ups of the same patients, and new patients.
    _nih_tree(tmp_path, patients=20, per_patient=4)
    _nih_tree(tmp_path, patients=15, per_patient=2, start=100)
    manifest = SplitManifest.in_folder(tmp_path / "out", "nih", "nih")
    after_records = choose_records(get_dataset("nih", tmp_path), "all", manifest=manifest)
    after = {r.image_id: r.meta["split"] for r in after_records}
    assert len(after) == 40 + 40 + 30
    assert all(after[i] == s for i, s in before.items())
    assert all(len(s) == 1 for s in _splits_by_group(after_records).values())


def test_manifest_assignments_win_over_the_hash(tmp_path):
    """A later change of the split rule (or of the hash) must not move listed images."""
    _nih_tree(tmp_path, patients=3, per_patient=1)
    manifest = SplitManifest.in_folder(tmp_path / "out", "nih", "nih")
    choose_records(get_dataset("nih", tmp_path), "all", manifest=manifest)
    path = manifest.save()
    rows = list(csv.DictReader(open(path)))
    forced = {"train": "val", "val": "test", "test": "train"}[rows[0]["split"]]
    rows[0]["split"] = forced
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    _nih_tree(tmp_path, patients=3, per_patient=2)  # a new image of that patient, too
    records = choose_records(get_dataset("nih", tmp_path), "all",
                             manifest=SplitManifest(path, "nih"))
    splits = {r.image_id: r.meta["split"] for r in records}
    patient = rows[0]["group"]
    assert splits[rows[0]["image_id"]] == forced
    assert splits[f"{patient}_001"] == forced  # joins its group's listed split


def test_a_group_split_across_the_manifest_is_made_whole(tmp_path):
    _nih_tree(tmp_path, patients=1, per_patient=3)
    path = tmp_path / "m.csv"
    path.write_text(
        "image_id,group,split,file_hash,source,size,mtime_ns\n"
        "00000000_000,a,train,,,,\n00000000_001,b,test,,,,\n00000000_002,c,train,,,,\n"
    )  # as if the images had been grouped differently before
    records = choose_records(get_dataset("nih", tmp_path), "all",
                             manifest=SplitManifest(path, "nih"))
    assert {r.meta["split"] for r in records} == {"train"}


def test_hashes_are_recorded_and_trusted_on_the_next_run(tmp_path, monkeypatch):
    _nih_tree(tmp_path, patients=2, per_patient=1)
    dataset = get_dataset("nih", tmp_path)
    manifest = SplitManifest.in_folder(tmp_path / "out", "nih", "nih")
    records = attach_hashes(dataset, choose_records(dataset, "all", manifest=manifest))
    manifest.collect_hashes(dataset)
    path = manifest.save()
    rows = {r["image_id"]: r for r in csv.DictReader(open(path))}
    digest = records[0].meta["file_hash"]
    assert rows[records[0].image_id]["file_hash"] == digest and len(digest) == 64

    def no_reading(path, chunk=0):
        raise AssertionError(f"{path} was hashed again")

    monkeypatch.setattr("medbench.datasets.files.file_sha256", no_reading)
    fresh = get_dataset("nih", tmp_path)  # next run: the hash comes from the manifest
    SplitManifest(path, "nih").assign(fresh, fresh.records())
    assert fresh.fingerprint(fresh.records()[0]) == digest


def test_manifest_names():
    assert manifest_name("jsrt") == "jsrt.csv"
    a, b = manifest_name("folder:/a"), manifest_name("folder:/b")
    assert a.startswith("folder-") and a != b


def test_a_file_that_vanished_is_not_hashed_and_does_not_stop_the_listing(tmp_path):
    _nih_tree(tmp_path, patients=2, per_patient=1)
    dataset = get_dataset("nih", tmp_path)
    records = choose_records(dataset, "all")
    (tmp_path / "nih" / "images" / "00000000_000.png").unlink()
    hashed = attach_hashes(dataset, records)
    assert "file_hash" not in hashed[0].meta and len(hashed[1].meta["file_hash"]) == 64


def test_limit_samples_whole_groups_stable_for_a_seed_and_different_across_seeds():
    from medbench.datasets.base import Record
    from medbench.datasets.manifest import sample_records

    records = [Record(f"p{g:02d}_{i}", f"p{g:02d}", f"f{g}_{i}") for g in range(30)
               for i in range(3)]
    first = sample_records(records, 9, seed=1)
    assert len(first) == 9 and first == sorted(first, key=lambda r: r.image_id)
    assert first == sample_records(records, 9, seed=1)
    assert {r.group for r in first} != {r.group for r in sample_records(records, 9, seed=2)}
    assert len({r.group for r in first}) == 3  # three whole patients, not nine strangers
    assert first != records[:9]  # not the lowest ids
    assert sample_records(records, 500, seed=1) == records
