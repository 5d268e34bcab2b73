"""``medbench run`` and learned models it lacks: a note on how to train, or --train-missing."""

from __future__ import annotations

import pytest

from medbench.benchmark.runner import RunConfig, run
from medbench.codecs import CodecContext
from medbench.errors import MedbenchError
from medbench.training import missing
from medbench.training.config import TrainConfig
from medbench.training.loop import train

pytestmark = pytest.mark.usefixtures("one_torch_thread", "no_pretrained")


def test_train_missing_trains_then_runs(tmp_path, monkeypatch):
    monkeypatch.setitem(missing.LADDERS, "cnn", [
        {"objective": "rd", "lmbda": 1e-3, "latent": 2, "width": 4, "epochs": 1,
         "crop": 32, "limit": 2},
    ])
    models = tmp_path / "models"
    config = RunConfig(codecs=["cnn"], datasets=["sample"], size="32", limit=1, repeats=0,
                       models_dir=str(models), device="cpu", train_missing=True)
    result = run(config, tmp_path / "out", prepare_learned=missing.prepare_learned)
    assert (models / "cnn" / "sample-l2-lam0.001" / "config.json").is_file()
    assert list(result.rows["setting"]) == ["sample-l2-lam0.001"]
    assert any("--train-missing" in note for note in result.notes)


def test_train_missing_without_the_trainer_is_refused(tmp_path):
    config = RunConfig(codecs=["cnn"], datasets=["sample"], train_missing=True)
    with pytest.raises(MedbenchError, match="prepare_learned"):
        run(config, tmp_path / "out")


def test_models_trained_elsewhere_get_a_note(tmp_path):
    train(TrainConfig(arch="cnn", dataset="sample", size="32", crop=32, limit=2, epochs=1,
                      latent=2, width=4, models_dir=str(tmp_path), device="cpu"),
          progress=False)
    notes = missing.prepare_learned(
        ["cnn"], ["sample", "synthetic"], context=CodecContext(models_dir=tmp_path),
        data_root=None, protocol="paper", size=None, bit_depth=None, train_missing=False,
    )
    assert len(notes) == 1 and "no cnn model was trained on synthetic" in notes[0]
    assert "medbench train --model cnn --dataset synthetic" in notes[0]
