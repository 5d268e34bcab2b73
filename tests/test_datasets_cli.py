"""``medbench datasets``, ``datasets show``, ``datasets export`` and a run over three datasets."""

from __future__ import annotations

import csv

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from medbench.cli import main
from medbench.codecs import registry
from medbench.codecs.jpeg import JpegCodec
from medbench.datasets.formats import read_image
from tests.fixture_formats import jsrt_picture, make_data_root


class OneSettingJpeg(JpegCodec):
    """JPEG at one quality only: the end-to-end test is about datasets, not codecs."""

    name = "jpeg-one"

    def settings(self) -> list[str]:
        return ["q=75"]


@pytest.fixture
def one_setting_codec(monkeypatch):
    monkeypatch.setitem(registry.load(), OneSettingJpeg.name, OneSettingJpeg)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return make_data_root(tmp_path_factory.mktemp("data"))


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_list_says_what_is_found(data_root):
    result = invoke("datasets", "--data-root", data_root)
    assert result.exit_code == 0
    lines = {line.split()[0]: line for line in result.output.splitlines()}
    assert "found, 5 images (2 skipped)" in lines["jsrt"]
    assert "found, 7 images (1 skipped)" in lines["openi"]
    assert "found, 4 images" in lines["nih"]
    assert "use as folder:PATH" in lines["folder"]


def test_show_counts_splits_depths_sizes_parts_and_skipped(data_root):
    result = invoke("datasets", "show", "openi", "--data-root", data_root)
    assert result.exit_code == 0, result.output
    out = result.output
    assert "images:     7 in 5 split groups" in out
    assert "bit depths: 8-bit 5, 10-bit 1, 12-bit 1" in out
    assert "sizes:      96x80 7" in out
    assert "skipped:    1 file(s)" in out and "notes.txt: not an image file" in out
    splits = out.split("splits:")[1].splitlines()[0]
    assert sum(int(part.split()[1]) for part in splits.split(",")) == 7

    mxid = invoke("datasets", "--data-root", data_root, "show", "mxid").output
    assert "body parts: Lung 3, Hand 2, Pelvic basin 2" in mxid
    assert "Hand/broken.png: truncated PNG" in mxid  # found by reading headers
    jsrt = invoke("datasets", "show", "jsrt", "--data-root", data_root).output
    assert "bit depths: 12-bit 5" in jsrt and "sizes:      2048x2048 5" in jsrt
    assert "JPCLN004.IMG: zero-byte file" in jsrt and "JPCLN005.IMG: 1,000 bytes" in jsrt


def test_show_without_data_root_is_one_sentence(tmp_path):
    result = CliRunner().invoke(main, ["datasets", "show", "jsrt"])
    assert result.exit_code == 1
    assert result.output.startswith("Error: dataset jsrt needs --data-root")
    assert len(result.output.strip().splitlines()) == 1
    result = CliRunner().invoke(main, ["datasets", "show", "nih", "--data-root", str(tmp_path)])
    assert result.exit_code == 1 and "expects the ChestX-ray14 PNGs" in result.output


def test_export_writes_what_codecs_receive(data_root, tmp_path):
    out = tmp_path / "export"
    result = invoke("datasets", "export", "jsrt", "--data-root", data_root, "--out", out,
                    "--split", "all", "--protocol", "native", "--limit", "2")
    assert result.exit_code == 0, result.output
    index = list(csv.DictReader(open(out / "index.csv")))
    files = [row["file"] for row in index]  # --limit: a seeded sample, sorted by id
    assert len(files) == 2 and files == sorted(files)
    first = next(f for f in files if f.startswith("JPCLN"))
    pixels, bits, _ = read_image(out / first)
    assert bits == 12 and pixels.shape == (2048, 2048)  # 16-bit PNG, sBIT 12
    np.testing.assert_array_equal(pixels, jsrt_picture(int(first[5:8]) - 1))
    paper = invoke("datasets", "export", "openi", "--data-root", data_root, "--out",
                   tmp_path / "paper", "--split", "all")
    assert "wrote 7 images (paper, split all)" in paper.output
    pixels, bits, _ = read_image(tmp_path / "paper" / "4_1_IM-0004-1001.png")
    assert bits == 8 and pixels.shape == (256, 256)


def test_run_over_jsrt_openi_mxid_end_to_end(data_root, tmp_path, one_setting_codec):
    out = tmp_path / "results"
    args = ["run", "--datasets", "jsrt,openi,mxid", "--data-root", data_root, "--codecs",
            "jpeg-one", "--split", "all", "--repeats", "0", "--workers", "1",
            "--out", out, "--no-progress", "--no-report", "--cache-dir", tmp_path / "cache"]
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    assert "skipped files: jsrt 2, openi 1, mxid 1" in result.output
    rows = pd.read_csv(out / "results.csv")
    assert set(rows["dataset"]) == {"jsrt", "openi", "mxid"}
    assert rows.groupby("dataset")["image_id"].nunique().to_dict() == {
        "jsrt": 5, "openi": 7, "mxid": 8}
    assert set(rows["split"]) <= {"train", "test", "val"} and rows["split"].notna().all()
    ok = rows[rows["status"] == "ok"]
    assert (ok["height"] == 256).all() and (ok["bit_depth"] == 8).all()
    assert set(rows.loc[rows["dataset"] == "mxid", "body_part"]) <= {"Lung", "Hand",
                                                                     "Pelvic basin"}
    assert set(rows.loc[rows["dataset"] == "jsrt", "body_part"]) == {"CHEST"}
    broken = rows[rows["image_id"] == "Hand_broken"]
    assert (broken["status"] == "error").all()  # one bad image, the run went on
    manifest = pd.read_csv(out / "manifests" / "jsrt.csv", dtype=str)
    assert len(manifest) == 5 and manifest["file_hash"].notna().all()
    splits = rows.drop_duplicates(["dataset", "image_id"]).set_index("image_id")["split"]
    assert all(splits[i] == s for i, s in zip(manifest["image_id"], manifest["split"])
               if i in splits)
    assert any((tmp_path / "cache").rglob("*.npy"))


def _nih(root, patients, start=0):
    from tests.fixture_formats import picture, write_png

    for p in range(start, start + patients):
        write_png(root / "nih" / "images" / f"{p:08d}_000.png", picture((16, 16), 8, p))
    return root


def _ids(path):
    return sorted(row["image_id"] for row in csv.DictReader(open(path / "index.csv")))


def test_export_gives_exactly_the_images_a_run_scored(tmp_path):
    from medbench.datasets import get_dataset
    from medbench.datasets.manifest import SplitManifest, choose_records

    root, out = _nih(tmp_path / "data", 40), tmp_path / "results"
    result = invoke("run", "--datasets", "nih", "--data-root", root, "--codecs", "png",
                    "--limit", "4", "--seed", "5", "--repeats", "0", "--out", out,
                    "--no-progress", "--no-report")
    assert result.exit_code == 0, result.output
    scored = sorted(set(pd.read_csv(out / "results.csv")["image_id"]))
    assert len(scored) == 4
    dataset = get_dataset("nih", root)
    manifest = SplitManifest.in_folder(out, "nih", dataset.name)
    unseeded = [r.image_id for r in choose_records(dataset, "test", 4, manifest)]
    assert unseeded != scored  # so a lost --seed shows
    # the same draw, by hand: the run's manifest and seed
    drawn = invoke("datasets", "export", "nih", "--data-root", root, "--out", tmp_path / "a",
                   "--manifest-dir", out, "--limit", "4", "--seed", "5")
    assert drawn.exit_code == 0, drawn.output
    assert _ids(tmp_path / "a") == scored
    # a store from before runs recorded their images: drawn again from its arguments
    import shutil
    import sqlite3

    old = shutil.copytree(out, tmp_path / "old")
    with sqlite3.connect(old / "results.sqlite") as db:
        db.execute("DELETE FROM run_images")
    redrawn = invoke("datasets", "export", "nih", "--data-root", root, "--out",
                     tmp_path / "c", "--results", old)
    assert redrawn.exit_code == 0, redrawn.output
    assert _ids(tmp_path / "c") == scored
    # from the run itself, even after files were added to the dataset
    _nih(root, 40, start=40)
    again = invoke("datasets", "export", "nih", "--out", tmp_path / "b", "--results", out)
    assert again.exit_code == 0, again.output
    assert _ids(tmp_path / "b") == scored
    assert "wrote 4 images (paper, run " in again.output
    index = list(csv.DictReader(open(tmp_path / "b" / "index.csv")))
    assert {row["split"] for row in index} == {"test"} and index[0]["height"] == "256"


@pytest.mark.parametrize("args, message", [
    (["--results", "{out}", "--limit", "3"], "drop --limit"),
    (["--results", "{out}", "--manifest-dir", "{out}"], "drop --manifest-dir"),
    (["--results", "{out}", "--run", "nope"], "run 'nope' is not in"),
    (["--run", "x"], "add --results"),
    (["--manifest-dir", "{empty}"], "holds no split manifest of nih"),
    (["--results", "{empty}"], "no results store"),
])
def test_export_option_mistakes_are_one_line(tmp_path, args, message):
    root = _nih(tmp_path / "data", 5)
    (tmp_path / "empty").mkdir()
    if "{out}" in args:  # a run to export from
        invoke("run", "--datasets", "nih", "--data-root", root, "--codecs", "png", "--split",
               "all", "--repeats", "0", "--out", tmp_path / "r", "--no-progress", "--no-report")
    args = [a.format(out=tmp_path / "r", empty=tmp_path / "empty") for a in args]
    result = CliRunner().invoke(main, ["datasets", "export", "nih", "--data-root", str(root),
                                       "--out", str(tmp_path / "x"), *args])
    assert result.exit_code != 0
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:") and message in lines[0], lines
