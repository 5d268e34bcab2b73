"""``medbench train`` where a finished model already is: the same command returns it; a
command asking for another model (more steps, another learning rate, another parent) is
refused, naming what differs, instead of answering with the old model."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.hostile.cli_helpers import error_line, invoke

TINY = ["train", "--model", "ae", "--dataset", "sample", "--size", "64", "--crop", "64",
        "--limit", "2", "--latent", "2", "--width", "8", "--device", "cpu", "--no-progress",
        "--steps", "2"]


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("finished")
    result = invoke(*TINY, "--models", root)
    assert result.exit_code == 0, result.output
    return root


def test_the_same_command_returns_the_finished_model(models, one_torch_thread):
    result = invoke(*TINY, "--models", models)
    assert result.exit_code == 0, result.output
    assert "is already trained" in result.output


@pytest.mark.parametrize("change, said", [
    (["--steps", "4"], "--steps 2, not 4"),
    (["--lr", "0.01"], "--lr 0.001, not 0.01"),
    (["--seed", "3"], "--seed 0, not 3"),
    (["--batch-size", "2"], "--batch-size 4, not 2"),
])
def test_another_model_under_the_same_name_is_refused(models, change, said):
    args = list(TINY)
    if change[0] == "--steps":
        del args[-2:]
    line = error_line(invoke(*args, *change, "--models", models))
    assert line == (f"Error: {models / 'ae' / 'sample-l2'} holds a finished model trained "
                    f"with other settings ({said}); delete that folder to train it again, or "
                    "choose another --name for the new one")


def test_a_finished_model_as_its_own_parent_is_refused(models):
    folder = models / "ae" / "sample-l2"
    line = error_line(invoke(*TINY, "--models", models, "--init", folder, "--name", "sample-l2"))
    assert f"--init (none), not {folder.resolve()}" in line


def test_patience_with_a_budget_is_refused(tmp_path):
    """--patience stops epoch-based training; a budgeted run would ignore it silently."""
    result = invoke(*TINY, "--patience", "2", "--models", tmp_path)
    assert result.exit_code == 2
    assert "--patience stops epoch-based training early" in error_line(result)
    assert list(tmp_path.iterdir()) == []
