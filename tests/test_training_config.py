"""Training options: refused when they do not fit, model names, the reproducing command."""

from __future__ import annotations

import pytest

from medbench.errors import MedbenchError
from medbench.training.config import TrainConfig, train_command


def tiny(tmp_path, **changes) -> TrainConfig:
    values = dict(arch="cnn", dataset="sample", size="32", crop=32, limit=4, width=8,
                  latent=2, epochs=3, batch_size=2, lr=3e-3, models_dir=str(tmp_path),
                  device="cpu")
    values.update(changes)
    return TrainConfig(**values)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"objective": "rd"}, "needs a positive --lmbda"),
        ({"lmbda": 0.1}, "only applies to --objective rd"),
        ({"arch": "vae"}, "unknown model 'vae'"),
        ({"objective": "l1"}, "--objective must be mse or rd"),
    ],
)
def test_bad_training_options_are_refused(tmp_path, changes, message):
    with pytest.raises(MedbenchError, match=message):
        tiny(tmp_path, **changes)


def test_model_names_are_short_and_stable(tmp_path):
    assert tiny(tmp_path).model_name == "sample-l2"
    assert tiny(tmp_path, objective="rd", lmbda=1e-4).model_name == "sample-l2-lam0.0001"
    assert tiny(tmp_path, dataset="folder:/data/My Scans").model_name == "My-Scans-l2"
    assert tiny(tmp_path, name="mine").model_name == "mine"


def test_train_command_reproduces_the_config(tmp_path):
    cfg = tiny(tmp_path, objective="rd", lmbda=0.001)
    command = train_command(cfg)
    assert "--objective rd --lmbda 0.001" in command and "--latent 2" in command
    assert "--batch-size 2" in command and "--epochs 3" in command
