"""Models record the images they trained on; rows of those images are caught by content.

The demonstration of issue 20: a ``folder:`` copy of a model's training data under other
file names (one file re-saved, so only its pixels match) is scored with the model; the
rows flag exactly the images it trained or validated on, the console says so before
coding, and the report leaves those images out and says how many.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from PIL import Image as PILImage

from medbench.cli import main
from medbench.codecs import provenance
from medbench.codecs.learned.checkpoint import CheckpointError, read_checkpoint
from medbench.codecs.learned.codec import PRETRAINED_DIR
from medbench.datasets import get_dataset
from medbench.datasets.manifest import choose_records
from medbench.image import pixel_sha256
from tests.conftest import radiograph_like
from tests.fixture_formats import write_png

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# -- the hashes --------------------------------------------------------------------------
def test_pixel_hash_follows_values_not_container_or_file():
    eight = radiograph_like(32, 8, seed=1)
    assert pixel_sha256(eight) == pixel_sha256(eight.astype(np.uint16))
    assert pixel_sha256(eight) != pixel_sha256(eight.T.copy())  # other pixels
    changed = eight.copy()
    changed[3, 4] ^= 1
    assert pixel_sha256(changed) != pixel_sha256(eight)
    flat = np.zeros((4, 8), np.uint8)  # same bytes, other shape
    assert pixel_sha256(flat) != pixel_sha256(flat.reshape(8, 4))
    with pytest.raises(ValueError, match="2-D uint8/uint16"):
        pixel_sha256(eight.astype(np.float32))


def test_block_round_trip_and_matching():
    a, b, c = "a" * 64, "b" * 64, "c" * 64
    block = provenance.block("nih", {"train": [(a, None), (None, b)], "val": [(c, c)]})
    images = provenance.from_config({"trained_on": json.loads(json.dumps(block))}, "cfg")
    assert images.count == 3 and images.dataset == "nih"
    assert images.seen(a, None) is True          # by pixels
    assert images.seen("f" * 64, b) is True      # by file
    assert images.seen(c, None) is True          # validation images count too
    assert images.seen("f" * 64, "e" * 64) is False
    assert images.seen(None, None) is None       # nothing to compare: unknown
    assert provenance.from_config({}, "cfg") is None  # an older model records none


@pytest.mark.parametrize("bad", [
    [], {"hash": "md5"}, {"hash": "sha256/16", "train": [], "val": {}},
    {"hash": "sha256/16", "train": {"images": ["xyz"]}, "val": {}},
    {"hash": "sha256/16", "train": {"images": "0123456789abcdef"}, "val": {}},
    {"hash": "sha256/16", "train": {"images": [], "files": [7]}, "val": {}},
])
def test_malformed_blocks_are_refused(bad):
    with pytest.raises(provenance.ProvenanceError, match="cfg"):
        provenance.from_config({"trained_on": bad}, "cfg")


def test_shipped_models_record_their_nih_train_and_val_images():
    configs = sorted(PRETRAINED_DIR.glob("*/*/config.json"))
    assert len(configs) >= 20
    for path in configs:
        config = json.loads(path.read_text())
        block = config["trained_on"]
        counts = config["train"]["images"]
        assert block["dataset"] == "nih"
        own = dict(counts)
        if "parent" in config:  # fine-tuned (train --init): its parent's images count too
            parent = counts["val"]  # the ladder's parents saw the same 74 + 8 images
            own["train"] += parent
        for split in ("train", "val"):
            assert len(block[split]["images"]) == own[split], path
            assert len(block[split]["files"]) == own[split], path
        count = provenance.from_config(config, str(path)).count
        # 74 train + 8 val, plus each ancestor's (a count of uses, not distinct images)
        assert count == 82 if "parent" not in config else count % 82 == 0 and count > 82


# -- training records, a run catches ------------------------------------------------------
def _write_dataset(folder: Path, count: int = 10) -> list[Path]:
    folder.mkdir(parents=True)
    return [write_png(folder / f"img{i:02d}.png", radiograph_like(64, 8, seed=i))
            for i in range(count)]


def _train(tmp_path: Path, data: Path, models: Path) -> Path:
    result = CliRunner().invoke(main, [
        "train", "--model", "cnn", "--dataset", f"folder:{data}", "--size", "32",
        "--crop", "32", "--width", "8", "--latent", "2", "--epochs", "1",
        "--batch-size", "2", "--device", "cpu", "--models", str(models), "--name", "tiny",
        "--no-progress"])
    assert result.exit_code == 0, result.output
    return models / "cnn" / "tiny"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny cnn trained on a folder of 10 images, and which of them it saw."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("provenance")
    data = tmp / "data"
    files = _write_dataset(data)
    try:
        folder = _train(tmp, data, tmp / "models")
    finally:
        torch.set_num_threads(before)
    dataset = get_dataset(f"folder:{data}")
    splits = {r.image_id: r.meta["split"] for r in choose_records(dataset, "all")}
    seen = {f.name for f in files if splits[f.stem] in ("train", "val")}
    return tmp, data, folder, seen


def test_training_records_the_hashes_of_its_train_and_val_images(trained):
    _, data, folder, seen = trained
    config = json.loads((folder / "config.json").read_text())
    block = config["trained_on"]
    expected = {pixel_sha256(np.asarray(PILImage.open(data / name)))[:16] for name in seen}
    assert set(block["train"]["images"]) | set(block["val"]["images"]) == expected
    assert len(block["train"]["files"]) == config["train"]["images"]["train"]
    assert 0 < len(seen) < 10  # the folder has test images too


def test_a_renamed_copy_is_caught_image_by_image(trained, tmp_path):
    tmp, data, folder, seen = trained
    copy = tmp_path / "copy"
    copy.mkdir()
    resaved = sorted(seen)[0]
    for i, path in enumerate(sorted(data.iterdir())):
        target = copy / f"renamed_{i:02d}.png"
        if path.name == resaved:  # other file bytes, same pixels: caught by content
            PILImage.open(path).save(target, compress_level=0)
            assert target.read_bytes() != path.read_bytes()
        else:
            shutil.copyfile(path, target)
    names = {f"renamed_{i:02d}": p.name for i, p in enumerate(sorted(data.iterdir()))}
    out = tmp_path / "run"
    result = CliRunner().invoke(main, [
        "run", "--datasets", f"folder:{copy}", "--codecs", "cnn,jpeg", "--split", "all",
        "--models", str(folder.parent.parent), "--out", str(out), "--no-progress",
        "--repeats", "0", "--workers", "1"])
    assert result.exit_code == 0, result.output
    rows = pd.read_csv(out / "results.csv")
    learned = rows[rows["codec"] == "cnn"].set_index("image_id")["seen_in_training"]
    flagged = {names[i] for i, v in learned.items() if v is True or v == 1}
    assert flagged == seen
    assert rows.loc[rows["codec"] == "jpeg", "seen_in_training"].isna().all()
    # Said before coding (the re-saved file is only known by its pixels, later).
    before, _, _ = result.output.partition("coding ")
    assert f"{len(seen) - 1} of 10 images are training or validation images" in before
    # The report leaves the seen images out, for every codec, and says so.
    summary = pd.read_csv(out / "report" / "summary.csv")
    assert set(summary["images"]) == {10 - len(seen)}
    left = pd.read_csv(out / "report" / "seen_in_training.csv")
    assert left["image_id"].nunique() == len(seen) and set(left["codec"]) == {"cnn", "jpeg"}
    headline = (out / "report" / "report.md").read_text()
    assert f"{len(seen)} of 10 images left out of every table" in headline


def test_a_malformed_list_makes_the_model_unloadable(trained, tmp_path):
    _, _, folder, _ = trained
    broken = tmp_path / "cnn" / "broken"
    shutil.copytree(folder, broken)
    config = json.loads((broken / "config.json").read_text())
    config["trained_on"]["train"]["images"] = ["not a hash"]
    (broken / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="trained_on.train.images"):
        read_checkpoint(broken)


def test_provenance_recovers_the_list_of_an_older_model(trained, tmp_path):
    _, data, folder, _ = trained
    old = tmp_path / "models" / "cnn" / "old"
    shutil.copytree(folder, old)
    shutil.copytree(folder.parent.parent / "manifests", tmp_path / "models" / "manifests")
    config = json.loads((old / "config.json").read_text())
    recorded = config.pop("trained_on")
    (old / "config.json").write_text(json.dumps(config))
    result = CliRunner().invoke(main, ["provenance", str(old), "--models",
                                       str(tmp_path / "models")])
    assert result.exit_code == 0, result.output
    assert json.loads((old / "config.json").read_text())["trained_on"] == recorded
    assert read_checkpoint(old).model_id == read_checkpoint(folder).model_id
    # A dataset that changed since (a file gone) is refused, the model left alone.
    config["train"]["images"]["train"] += 1
    (old / "config.json").write_text(json.dumps(config))
    result = CliRunner().invoke(main, ["provenance", str(old), "--models",
                                       str(tmp_path / "models")])
    assert result.exit_code == 1 and "the dataset changed since" in result.output
    assert "trained_on" not in json.loads((old / "config.json").read_text())
