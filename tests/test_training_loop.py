"""The training loop: loss goes down, λ trades rate, runs resume, JSON budget, the CLI."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from click.testing import CliRunner

from medbench.cli import main
from medbench.codecs.learned.checkpoint import read_checkpoint
from medbench.errors import MedbenchError
from medbench.training import loop
from medbench.training.config import TrainConfig, train_command
from medbench.training.loop import train

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny(tmp_path, **changes) -> TrainConfig:
    values = dict(arch="cnn", dataset="sample", size="32", crop=32, limit=4, width=8,
                  latent=2, epochs=3, batch_size=2, lr=3e-3, models_dir=str(tmp_path),
                  device="cpu")
    values.update(changes)
    return TrainConfig(**values)


def test_a_tiny_training_run_lowers_the_loss(tmp_path):
    result = train(tiny(tmp_path, epochs=4), progress=False)
    history = result.checkpoint.config["history"]
    assert len(history) == 4
    assert min(h["loss"] for h in history[1:]) < history[0]["loss"]
    assert history[-1]["train_loss"] < history[0]["train_loss"]


def test_a_larger_lambda_gives_a_lower_rate(tmp_path):
    low = train(tiny(tmp_path, objective="rd", lmbda=1e-5, size="64", crop=64),
                progress=False).checkpoint.config["validation"]
    high = train(tiny(tmp_path, objective="rd", lmbda=1.0, size="64", crop=64),
                 progress=False).checkpoint.config["validation"]
    assert high["est_bpp"] < low["est_bpp"]
    assert high["bpp"] < low["bpp"]  # measured from real bitstreams


def test_config_json_records_the_training_budget(tmp_path):
    cfg = tiny(tmp_path, epochs=2)
    ckpt = train(cfg, progress=False, command=train_command(cfg)).checkpoint
    saved = json.loads((ckpt.folder / "config.json").read_text())
    assert saved["arch"] == "cnn" and saved["latent"] == 2 and saved["width"] == 8
    assert saved["train"]["dataset"] == "sample"
    assert saved["train"]["protocol"] == "size=32,bits=8"
    assert saved["train"]["images"] == {"train": 4, "val": 4}
    budget = saved["budget"]
    assert budget["device"] == "cpu" and budget["steps"] == 2 * 2  # 4 images, batch 2
    assert budget["images_seen"] == 2 * 4 and budget["wall_s"] > 0
    assert set(saved["validation"]) >= {"bpp", "psnr", "est_bpp", "loss"}
    assert saved["command"].startswith("medbench train --model cnn --dataset sample")
    assert "--size 32" in saved["command"]
    assert saved["model_id"] == ckpt.model_id
    # Only the finished model stays: weights and config.
    assert sorted(p.name for p in ckpt.folder.iterdir()) == ["config.json", "model.safetensors"]


def test_training_resumes_from_the_last_epoch(tmp_path, monkeypatch):
    reference = train(tiny(tmp_path / "a"), progress=False).checkpoint

    calls = {"n": 0}
    original = loop.evaluate

    def interrupt_in_epoch_2(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(loop, "evaluate", interrupt_in_epoch_2)
    cfg = tiny(tmp_path / "b")
    with pytest.raises(KeyboardInterrupt):
        train(cfg, progress=False)
    assert not (cfg.folder / "config.json").exists()
    assert json.loads((cfg.folder / "train_state.json").read_text())["epoch"] == 1
    monkeypatch.setattr(loop, "evaluate", original)

    result = train(cfg, progress=False)
    assert result.resumed_from_epoch == 1
    resumed = result.checkpoint
    assert [h["epoch"] for h in resumed.config["history"]] == [1, 2, 3]
    assert resumed.config["budget"]["steps"] == reference.config["budget"]["steps"]
    # Same batches, noise and optimizer state: the same weights as without the break.
    assert resumed.model_id == reference.model_id


def test_resuming_with_other_settings_is_refused(tmp_path, monkeypatch):
    cfg = tiny(tmp_path)
    monkeypatch.setattr(loop, "evaluate", lambda *a, **k: (_ for _ in ()).throw(
        KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        train(cfg, progress=False)
    monkeypatch.undo()
    # epoch 1 never finished: nothing to resume, so this starts afresh
    other = tiny(tmp_path, lr=1e-4)
    (other.folder / "train_state.json").write_text(json.dumps(
        {"key": {**cfg.resume_key()}, "epoch": 1}))
    (other.folder / "last.safetensors").write_bytes(b"")
    with pytest.raises(MedbenchError, match="other settings"):
        train(other, progress=False)


def test_a_finished_model_is_not_trained_again(tmp_path):
    first = train(tiny(tmp_path, epochs=1), progress=False)
    messages = []
    again = train(tiny(tmp_path, epochs=1), progress=False, echo=messages.append)
    assert again.already_trained and again.checkpoint.model_id == first.checkpoint.model_id
    assert "already trained" in messages[0] and "--name" in messages[0]


def test_cli_train_writes_a_model_and_resumable_message(tmp_path):
    result = CliRunner().invoke(main, [
        "train", "--model", "ae", "--dataset", "sample", "--size", "32", "--crop", "32",
        "--limit", "3", "--epochs", "1", "--latent", "4", "--width", "8",
        "--models", str(tmp_path), "--device", "cpu", "--no-progress",
    ])
    assert result.exit_code == 0, result.output
    ckpt = read_checkpoint(tmp_path / "ae" / "sample-l4")
    assert ckpt.config["command"].startswith("medbench train --model ae")
    assert "setting sample-l4 of codec ae" in result.output


def test_cli_train_errors_are_one_line(tmp_path):
    result = CliRunner().invoke(main, [
        "train", "--model", "dcae", "--dataset", "sample", "--objective", "rd",
        "--models", str(tmp_path),
    ])
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1].startswith("Error: --objective rd needs")


@pytest.mark.parametrize("arch", ["cnn", "jpeg2000+pf"])
def test_seed_draws_the_limit_sample_as_run_does(tmp_path, monkeypatch, arch):
    """`train --limit 3 --seed 7` trains on the sample `run --limit 3 --seed 7` codes."""
    from medbench.datasets import get_dataset
    from medbench.datasets.manifest import SplitManifest, choose_records
    from medbench.training import postfilter
    from tests.fixture_formats import picture, write_png

    for patient in range(30):
        write_png(tmp_path / "data" / "nih" / "images" / f"{patient:08d}_000.png",
                  picture((32, 32), 8, patient))
    used = {}

    def spy(*args, **kwargs):
        splits = real(*args, **kwargs)
        used.update({name: [im.image_id for im in split.images]
                     for name, split in splits.items()})
        return splits

    module = loop if arch == "cnn" else postfilter
    real = module.load_splits
    monkeypatch.setattr(module, "load_splits", spy)
    models = tmp_path / "models"
    cfg = tiny(models, dataset="nih", data_root=str(tmp_path / "data"), limit=3, seed=7,
               steps=1)
    if arch == "cnn":
        train(cfg, progress=False)
    else:
        postfilter.train_postfilter(replace(cfg, arch=arch, ratio=20, latent=None, width=4),
                                    progress=False)
    dataset = get_dataset("nih", tmp_path / "data")
    manifest = SplitManifest.in_folder(models, "nih", dataset.name)
    for split in ("train", "val"):
        seeded = [r.image_id for r in choose_records(dataset, split, 3, manifest, seed=7)]
        assert sorted(used[split]) == seeded
        assert seeded != [r.image_id for r in choose_records(dataset, split, 3, manifest)]


def test_train_steps_schedules_counts_and_clips_for_every_trainer():
    """The one step loop (learned models and the post-filter): the budget's learning rate
    is set before each step, the counters grow, and clipping applies only when asked."""
    import torch

    from medbench.training.budget import Budget, lr_factor

    class Counts:
        steps, images_seen, wall_s = 0, 0, 0.0

    weight = torch.nn.Parameter(torch.zeros(3))
    optimizer = torch.optim.SGD([weight], lr=1.0)
    budget = Budget(steps=4)
    seen_lrs = []

    def loss_of(batch):
        seen_lrs.append(optimizer.param_groups[0]["lr"])
        loss = (1000.0 * (weight - batch) ** 2).sum()
        return loss, loss, 2

    counts = Counts()
    batches = [torch.ones(3)] * 10
    for _ in loop.train_steps(batches, loss_of, optimizer, counts, budget=budget,
                              base_lrs=[0.5], clip=lambda: [weight]):
        if budget.done(counts.wall_s, counts.steps):
            break
    assert (counts.steps, counts.images_seen) == (4, 8) and counts.wall_s > 0
    assert seen_lrs == pytest.approx([0.5 * lr_factor(k / 4) for k in range(4)])
    assert float(weight.detach().abs().max()) <= 4 * 0.5 * loop.GRAD_CLIP + 1e-6  # clipped steps
    free = torch.nn.Parameter(torch.zeros(3))
    optimizer = torch.optim.SGD([free], lr=1e-3)
    step = loop.train_steps([torch.ones(3)], lambda b: ((1000.0 * (free - b) ** 2).sum(),) * 2
                            + (1,), optimizer, Counts(), budget=None, base_lrs=[1e-3])
    next(step)
    assert float(free.detach()[0]) == pytest.approx(2.0)  # unclipped: 1e-3 * 2000


@pytest.mark.parametrize("arch", ["hyperprior", "ckbd"])
def test_half_stores_float16_weights_validated_as_stored(tmp_path, make_image, arch):
    """--half: weights stored as float16 (half the bytes), tables frozen from the rounded
    density; a finished float32 model is stored again, validated again, without training;
    what the codec decodes is exactly what the stored (rounded) model computes."""
    import numpy as np
    import torch
    from safetensors.torch import load_file

    from medbench.codecs.learned.checkpoint import WEIGHTS

    cfg = tiny(tmp_path, arch=arch, objective="rd", lmbda=0.01, size="64", crop=64,
               latent=8, width=8, epochs=1)
    full = train(cfg, progress=False).checkpoint
    weight_bytes32 = sum(t.numel() * t.element_size() for k, t in
                         load_file(str(full.folder / WEIGHTS)).items()
                         if not k.startswith(full.load().table_prefixes))
    messages = []
    halved = train(replace(cfg, half=True), progress=False, echo=messages.append)
    ckpt = halved.checkpoint
    assert halved.already_trained and "float16" in messages[0]
    tensors = load_file(str(ckpt.folder / WEIGHTS))
    model = ckpt.load()
    floats = [t.dtype for k, t in tensors.items()
              if t.is_floating_point() and not k.startswith(model.table_prefixes)]
    assert floats and set(floats) == {torch.float16}  # (coding tables keep their types)
    def weight_bytes(path):
        return sum(t.numel() * t.element_size() for k, t in load_file(str(path)).items()
                   if not k.startswith(model.table_prefixes))

    assert weight_bytes(ckpt.folder / WEIGHTS) * 2 == weight_bytes32
    assert ckpt.model_id != full.model_id and ckpt.config["weights"] == "float16"
    assert ckpt.config["validation"]["float32"]["psnr"] == full.config["validation"]["psnr"]
    # stored as computed: the coding tables are the ones the rounded weights freeze into
    stored = {k: v for k, v in tensors.items() if k.startswith(model.table_prefixes)}
    model.freeze_tables()
    again = {k: v for k, v in model.weights().items() if k.startswith(model.table_prefixes)}
    assert stored.keys() == again.keys()
    assert all(torch.equal(stored[k], again[k]) for k in stored)
    # and every weight of the loaded model is a float16 value
    for value in model.state_dict().values():
        if value.is_floating_point():
            assert torch.equal(value, value.half().float())
    # and again: nothing more to do
    assert train(replace(cfg, half=True), progress=False).checkpoint.model_id == ckpt.model_id
    image = make_image((64, 64), bit_depth=8)
    streams = model.compress(ckpt.model_id, [image], torch.device("cpu"))
    decoded = model.decompress(streams, torch.device("cpu"))[0]
    assert decoded.shape == image.pixels.shape and np.isfinite(decoded).all()
