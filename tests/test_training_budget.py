"""Budget-first training: --budget/--steps stop the run and leave milestone checkpoints;
--init fine-tunes a trained model and records its parent."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from medbench.cli import main
from medbench.codecs import CodecContext, get_codec
from medbench.codecs.learned.archs import new_model
from medbench.codecs.learned.checkpoint import read_checkpoint
from medbench.errors import MedbenchError
from medbench.training.budget import (
    Budget,
    crop_at,
    label_budget,
    lr_factor,
    parse_budget,
    step_ladder,
    time_label,
    time_ladder,
)
from medbench.training.config import TrainConfig, train_command
from medbench.training.loop import train
from medbench.training.transfer import load_parent_weights

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny(tmp_path, **changes) -> TrainConfig:
    values = dict(arch="cnn", dataset="sample", size="32", crop=32, limit=4, width=8,
                  latent=2, batch_size=2, lr=3e-3, models_dir=str(tmp_path), device="cpu")
    values.update(changes)
    return TrainConfig(**values)


@pytest.mark.parametrize("text, seconds", [("90s", 90), ("20m", 1200), ("1.5h", 5400),
                                           (" 3S ", 3)])
def test_budgets_parse_with_their_unit(text, seconds):
    assert parse_budget(text) == seconds


@pytest.mark.parametrize("text", ["20", "0m", "-1m", "1d", "m"])
def test_bad_budgets_are_refused(text):
    with pytest.raises(MedbenchError, match="--budget"):
        parse_budget(text)


def test_ladders_double_and_end_with_the_budget():
    assert time_ladder(20 * 60) == [30, 60, 120, 240, 480, 960, 1200]
    assert [time_label(t) for t in time_ladder(20 * 60)] == [
        "30s", "1m", "2m", "4m", "8m", "16m", "20m"]
    assert time_ladder(3) == [1, 2, 3]
    assert step_ladder(5000) == [128, 256, 512, 1024, 2048, 4096, 5000]
    assert step_ladder(1) == [1]
    assert label_budget("4m") == (240, "s") and label_budget("64steps") == (64, "steps")
    assert label_budget("final") is None


def test_schedule_decays_to_a_tenth_and_grows_the_crop():
    assert lr_factor(0) == pytest.approx(1) and lr_factor(1) == pytest.approx(0.1)
    assert lr_factor(0.25) > lr_factor(0.75)
    assert crop_at(0.1, 256, 16) == 128 and crop_at(0.6, 256, 16) == 256
    assert crop_at(0.1, 64, 16) == 64  # a 32-px half crop is too small to help
    with pytest.raises(MedbenchError, match="not both"):
        Budget(seconds=1, steps=1)


def test_steps_budget_stops_at_its_steps_and_keeps_milestones(tmp_path):
    cfg = tiny(tmp_path, steps=8)
    ckpt = train(cfg, progress=False, command=train_command(cfg)).checkpoint
    saved = ckpt.config
    assert saved["budget"]["steps"] == 8 and saved["budget"]["images_seen"] == 16
    assert saved["train"]["max_steps"] == 8 and "--steps 8" in saved["command"]
    labels = [f"{n}steps" for n in step_ladder(8)]
    assert saved["milestones"] == labels
    for label in labels:
        milestone = read_checkpoint(ckpt.folder / "milestones" / label)
        assert milestone.config["milestone"] == {"label": label, "of": ckpt.name}
        assert milestone.config["budget"]["steps"] == int(label[:-5])
        assert set(milestone.config["budget"]) >= {"device", "wall_s", "images_seen"}
    # The last milestone is the finished model's weights (same schedule end).
    assert read_checkpoint(ckpt.folder / "milestones" / "8steps").config["budget"][
        "steps"] == saved["budget"]["steps"]


def test_time_budget_stops_and_leaves_a_milestone(tmp_path):
    cfg = tiny(tmp_path, budget="3s")
    ckpt = train(cfg, progress=False).checkpoint
    budget = ckpt.config["budget"]
    assert budget["steps"] >= 1
    assert 3 <= budget["wall_s"] < 60  # stopped once the budget was spent (generous)
    milestones = sorted(p.name for p in (ckpt.folder / "milestones").iterdir())
    assert "3s" in milestones and len(milestones) >= 1
    # Every kept milestone lies within the budget.
    for label in milestones:
        spent = read_checkpoint(ckpt.folder / "milestones" / label).config["budget"]
        assert spent["steps"] <= budget["steps"]


def test_an_epoch_limit_still_caps_a_budget(tmp_path):
    ckpt = train(tiny(tmp_path, steps=1000, epochs=2), progress=False).checkpoint
    assert ckpt.config["budget"]["steps"] == 2 * 2  # 4 images, batch 2, 2 epochs


def test_milestones_become_readable_settings_of_the_codec(tmp_path):
    ckpt = train(tiny(tmp_path, steps=4), progress=False).checkpoint
    plain = get_codec("cnn", CodecContext(models_dir=tmp_path))
    assert [s for s in plain.settings() if "@" in s] == []
    codec = get_codec("cnn", CodecContext(models_dir=tmp_path, milestones=True))
    names = [s for s in codec.settings() if s.startswith(ckpt.name + "@")]
    assert names == [f"{ckpt.name}@{n}steps" for n in step_ladder(4)]
    info = json.loads(codec.setting_info(names[0])["model_info"])
    assert info["milestone"]["label"] == "1steps" and info["budget"]["steps"] == 1


def test_init_fine_tunes_and_records_its_parent(tmp_path):
    parent = train(tiny(tmp_path, steps=2), progress=False).checkpoint
    cfg = tiny(tmp_path, steps=2, init=str(parent.folder), latent=None, width=None,
               dataset="synthetic:8")
    assert (cfg.latent, cfg.width) == (2, 8)  # taken from the parent
    child = train(cfg, progress=False).checkpoint
    assert child.name == "synthetic-8-l2-from-sample"
    record = child.config["parent"]
    assert record["model_id"] == parent.model_id and record["dataset"] == "sample"
    info = get_codec("cnn", CodecContext(models_dir=tmp_path)).setting_info(child.name)
    assert info["train_dataset"] == "synthetic:8 (from sample)"
    # another λ started from its neighbour on the same data: the same curve, not a transfer
    sibling = train(tiny(tmp_path, steps=2, init=str(parent.folder), latent=None,
                         width=None, objective="rd", lmbda=0.01), progress=False).checkpoint
    assert sibling.config["parent"]["dataset"] == "sample"
    info = get_codec("cnn", CodecContext(models_dir=tmp_path)).setting_info(sibling.name)
    assert info["train_dataset"] == "sample"


def test_init_refuses_another_architecture_or_shape(tmp_path):
    parent = train(tiny(tmp_path, steps=1), progress=False).checkpoint
    with pytest.raises(MedbenchError, match="does not fit"):
        tiny(tmp_path, arch="dcae", init=str(parent.folder), latent=None, width=None)
    with pytest.raises(MedbenchError, match="latent"):
        tiny(tmp_path, init=str(parent.folder), latent=3)
    with pytest.raises(MedbenchError, match="not a finished model"):
        tiny(tmp_path, init=str(tmp_path / "nothing"))


def test_a_context_model_starts_from_the_hyperprior_it_extends(tmp_path):
    parent = train(tiny(tmp_path, arch="hyperprior", size="64", crop=64, steps=1),
                   progress=False).checkpoint
    cfg = tiny(tmp_path, arch="ckbd", size="64", crop=64, init=str(parent.folder), latent=None,
               width=None)
    assert (cfg.latent, cfg.width) == (2, 8)
    model = new_model("ckbd", cfg.latent, cfg.width)
    fresh = {k: v.clone() for k, v in model.state_dict().items()}
    load_parent_weights(model, cfg)
    weights, theirs = model.state_dict(), parent.load("cpu").state_dict()
    assert theirs and all(torch.equal(weights[k], v) for k, v in theirs.items())
    added = set(weights) - set(theirs)  # the context and the parameter network start fresh
    assert added and all(k.startswith(("net.context", "net.entropy_params")) for k in added)
    assert all(torch.equal(weights[k], fresh[k]) for k in added)
    # only that way round: a hyperprior does not start from a context model
    child = train(tiny(tmp_path, arch="ckbd", size="64", crop=64, steps=1,
                       init=str(parent.folder), latent=None, width=None),
                  progress=False).checkpoint
    assert child.config["parent"]["model_id"] == parent.model_id
    with pytest.raises(MedbenchError, match="does not fit"):
        tiny(tmp_path, arch="hyperprior", init=str(child.folder), latent=None, width=None)


def test_cli_train_budget_and_init(tmp_path):
    runner = CliRunner()
    base = ["train", "--model", "cnn", "--dataset", "sample", "--size", "32", "--crop", "32",
            "--limit", "3", "--latent", "2", "--width", "8", "--models", str(tmp_path),
            "--device", "cpu", "--no-progress"]
    result = runner.invoke(main, [*base, "--steps", "2"])
    assert result.exit_code == 0, result.output
    parent = tmp_path / "cnn" / "sample-l2"
    assert (parent / "milestones" / "2steps" / "config.json").is_file()
    result = runner.invoke(main, [*base[:4], "synthetic:8", *base[5:], "--steps", "1",
                                  "--init", str(parent)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "cnn" / "synthetic-8-l2-from-sample" / "config.json").is_file()
    bad = runner.invoke(main, [*base, "--budget", "soon"])
    assert bad.exit_code == 1 and bad.output.count("Error:") == 1 and "--budget" in bad.output
