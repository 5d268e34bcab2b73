"""Groups that intervals and splits know: folder: --groups/--group-by, sample's radiographs."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from click.testing import CliRunner

from medbench.benchmark.runner import RunConfig, plan_run
from medbench.cli import main
from medbench.datasets import get_dataset
from medbench.datasets.grouping import group_by, read_groups
from medbench.datasets.manifest import choose_records
from medbench.errors import DatasetError, MedbenchError
from tests.conftest import radiograph_like
from tests.fixture_formats import write_png


def _folder(root, patients=12, per_patient=2):
    for p in range(patients):
        for f in range(per_patient):
            write_png(root / "chest" / f"{p:08d}_{f:03d}.png", radiograph_like(32, 8, p * 7 + f))
    write_png(root / "stray.png", radiograph_like(32, 8, 999))
    return root


def test_group_by_takes_the_first_group_and_names_its_kind(tmp_path):
    grouping = group_by(r"/(?P<patient>\d{8})_")
    assert grouping.kind == "patient"
    assert grouping.group_of("chest/00000003_001.png", "chest_00000003_001") == "00000003"
    assert grouping.group_of("stray.png", "stray") is None
    assert group_by(r"^\w+").group_of("chest/x.png", "chest_x") == "chest"  # no group: match
    assert group_by(r"/(\d+)_").kind == "group"
    with pytest.raises(DatasetError, match="is not a regular expression"):
        group_by("(")


def test_a_groups_table_keys_on_id_or_path_and_refuses_contradictions(tmp_path):
    table = tmp_path / "groups.csv"
    table.write_text("image,patient\nchest_a,P1\nchest/b.png,P1\nc,P2\n")
    grouping = read_groups(table)
    assert grouping.kind == "patient"
    assert grouping.group_of("chest/a.png", "chest_a") == "P1"
    assert grouping.group_of("chest/b.png", "chest_b") == "P1"
    assert grouping.group_of("d.png", "d") is None and "not listed in --groups" in \
        grouping.reason()
    table.write_text("image,patient\na,P1\na,P2\n")
    with pytest.raises(DatasetError, match="line 3: a is listed in two groups"):
        read_groups(table)
    table.write_text("name;patient\na;P1\n")
    with pytest.raises(DatasetError, match="needs a header row 'image,<kind>'"):
        read_groups(table)
    table.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(DatasetError, match="cannot be read as a CSV"):
        read_groups(table)


def test_group_by_groups_the_split_and_skips_what_it_cannot_place(tmp_path):
    root = _folder(tmp_path / "data")
    config = RunConfig(codecs=["jpeg"], datasets=[f"folder:{root}"], split="all",
                       group_by=r"/(?P<patient>\d{8})_")
    plan = plan_run(config, tmp_path / "out")
    records = [u.record for u in plan.units]
    assert len(records) == 24  # the stray file has no patient: skipped, with the reason
    dataset = plan.datasets[f"folder:{root}"]
    assert [s.source for s in dataset.skipped] == [str(root / "stray.png")]
    assert "does not match --group-by" in dataset.skipped[0].reason
    by_patient: dict[str, set[str]] = {}
    for record in records:
        assert record.meta["group_kind"] == "patient"
        by_patient.setdefault(record.group, set()).add(record.meta["split"])
    assert len(by_patient) == 12 and all(len(s) == 1 for s in by_patient.values())


def test_a_run_with_groups_clusters_its_intervals_by_them(tmp_path):
    root = _folder(tmp_path / "data")
    out = tmp_path / "out"
    result = CliRunner().invoke(main, [
        "run", "--datasets", f"folder:{root}", "--codecs", "jpeg", "--split", "all",
        "--group-by", r"/(?P<patient>\d{8})_", "--out", str(out), "--no-progress",
        "--repeats", "0", "--workers", "1"])
    assert result.exit_code == 0, result.output
    rows = pd.read_csv(out / "results.csv", dtype={"group_id": str})
    assert set(rows["group_kind"]) == {"patient"} and rows["group_id"].nunique() == 12
    summary = pd.read_csv(out / "report" / "summary.csv")
    assert (summary["ci_method"] == "cluster bootstrap (2000 resamples of 12 patients)").all()
    assert "24 test/train/val images from 12 patients" in (out / "report" / "report.md").read_text()


def test_groups_are_refused_where_no_folder_dataset_takes_them(tmp_path):
    result = CliRunner().invoke(main, ["run", "--datasets", "sample", "--codecs", "jpeg",
                                       "--group-by", "x", "--out", str(tmp_path / "o")])
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1] == (
        "Error: --group-by 'x' groups the images of folder: datasets, and this run has "
        "none; the other datasets know their groups")
    with pytest.raises(MedbenchError, match="either --groups or --group-by"):
        plan_run(RunConfig(codecs=["jpeg"], datasets=["sample"], groups="a.csv",
                           group_by="x"), tmp_path / "o")


def test_sample_tiles_are_grouped_by_their_radiograph_for_intervals(tmp_path):
    dataset = get_dataset("sample")
    records = choose_records(dataset, "test")
    assert {r.meta["interval_group"] for r in records} == {"RG1_UNCR.dcm", "RG3_UNCR.dcm"}
    assert {r.meta["group_kind"] for r in records} == {"radiograph"}
    assert len({r.group for r in records}) == len(records)  # splits still go tile by tile
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["run", "--codecs", "jpeg", "--out", str(out),
                                       "--no-progress", "--repeats", "0", "--workers", "1"])
    assert result.exit_code == 0, result.output
    summary = pd.read_csv(out / "report" / "summary.csv")
    assert summary["psnr_ci"].map(math.isnan).all()
    assert set(summary["ci_method"]) == {
        "none: 11 images from only 2 radiographs (a cluster bootstrap needs at least 10)"}
    assert "11 test images from 2 radiographs" in (out / "report" / "report.md").read_text()
