"""Hostile ``--learned-batch`` values: absurd sizes neither fail nor hold every image."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from medbench.benchmark.runner import RunConfig, run
from medbench.cli import main
from medbench.errors import MedbenchError


def test_an_absurd_batch_codes_what_there_is(tmp_path):
    rows = run(RunConfig(codecs=["dcae"], limit=3, repeats=0, workers=1,
                         learned_batch="1000000000"), tmp_path).rows
    assert (rows["status"] == "ok").all()
    assert set(rows["batch_size"]) == {3}


@pytest.mark.parametrize("value", ["0", "-1", "1e3", "32.5", "", "auto auto", "٣"])
def test_the_cli_refuses_what_is_not_a_batch(tmp_path, value):
    result = CliRunner().invoke(main, ["run", "--codecs", "jpeg", "--learned-batch", value,
                                       "--out", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert "--learned-batch" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("value", ["0", "many", None, 2.5])
def test_the_api_refuses_what_is_not_a_batch(tmp_path, value):
    with pytest.raises(MedbenchError, match="--learned-batch"):
        run(RunConfig(codecs=["jpeg"], limit=1, learned_batch=value), tmp_path)
    assert not (tmp_path / "results.sqlite").exists()
