"""medbench compare: identical results pass, planted regressions fail."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from click.testing import CliRunner

from medbench.benchmark.runner import RunConfig, run
from medbench.cli import main
from medbench.errors import MedbenchError
from medbench.reports.compare import Tolerances, compare, format_comparison, load_results


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """A real small run (folder with store and results.csv) and its rows."""
    out = tmp_path_factory.mktemp("baseline")
    config = RunConfig(codecs=["jpeg", "jpeg2000"], datasets=["sample"], limit=2, repeats=0)
    return out, run(config, out).rows


def planted(rows: pd.DataFrame, column: str, change, setting="q=50") -> pd.DataFrame:
    rows = rows.copy()
    cell = (rows["codec"] == "jpeg") & (rows["setting"] == setting)
    rows.loc[cell, column] = change(rows.loc[cell, column])
    return rows


def test_identical_results_pass(results):
    _, rows = results
    outcome = compare(rows, rows.copy())
    assert outcome.passed and len(outcome.table) == 16
    assert (outcome.table["verdict"] == "ok").all()
    lossless = outcome.table[outcome.table["setting"] == "lossless"].iloc[0]
    assert math.isinf(lossless["psnr_base"]) and lossless["d_psnr"] == 0


def test_a_planted_psnr_drop_of_0_1_db_fails(results):
    _, rows = results
    outcome = compare(rows, planted(rows, "psnr", lambda v: v - 0.1))
    assert not outcome.passed
    assert len(outcome.regressions) == 1
    assert outcome.regressions[0].startswith("sample jpeg q=50: PSNR -0.100 dB")
    # A looser tolerance lets it pass; a PSNR gain never fails.
    assert compare(rows, planted(rows, "psnr", lambda v: v - 0.1), Tolerances(psnr=0.2)).passed
    assert compare(rows, planted(rows, "psnr", lambda v: v + 1.0)).passed


def test_ms_ssim_drop_and_bpp_rise_fail(results):
    _, rows = results
    assert not compare(rows, planted(rows, "ms_ssim", lambda v: v - 0.002)).passed
    assert compare(rows, planted(rows, "ms_ssim", lambda v: v - 0.0005)).passed
    worse = compare(rows, planted(rows, "bpp", lambda v: v * 1.02))
    assert [r.split(": ")[1] for r in worse.regressions] == ["bpp +2.00 % (tolerance +1 %)"]
    assert compare(rows, planted(rows, "bpp", lambda v: v * 1.005)).passed


def test_cells_in_only_one_result_are_flagged(results):
    _, rows = results
    fewer = rows[~((rows["codec"] == "jpeg2000") & (rows["setting"] == "ratio=80"))]
    outcome = compare(rows, fewer)
    assert outcome.regressions == ["sample jpeg2000 ratio=80: missing in NEW"]
    assert compare(fewer, rows).regressions == ["sample jpeg2000 ratio=80: missing in BASELINE"]
    allowed = compare(rows, fewer, Tolerances(allow_missing=True))
    assert allowed.passed
    assert "FAIL: missing in NEW" in format_comparison(outcome)
    text = format_comparison(allowed)
    assert "allowed: missing in NEW" in text and "FAIL" not in text


def test_new_errors_fail(results):
    _, rows = results
    broken = rows.copy()
    first = broken.index[(broken["codec"] == "jpeg") & (broken["setting"] == "q=5")][0]
    broken.loc[first, ["status", "error"]] = ["error", "simulated"]
    outcome = compare(rows, broken)
    assert any("errors 0 -> 1" in r for r in outcome.regressions)


def test_folder_csv_and_store_load_the_same_rows(results, tmp_path):
    folder, rows = results
    from_folder, label = load_results(folder)
    assert "run " in label
    from_csv, _ = load_results(folder / "results.csv")
    assert len(from_folder) == len(from_csv) == len(rows)
    assert compare(from_folder, from_csv).passed
    with pytest.raises(MedbenchError, match="neither"):
        load_results(tmp_path)
    (tmp_path / "x.csv").write_text("a,b\n1,2\n")
    with pytest.raises(MedbenchError, match="lacks the result columns"):
        load_results(tmp_path / "x.csv")


def test_cli_exit_codes(results, tmp_path):
    folder, rows = results
    bad = tmp_path / "bad.csv"
    planted(rows, "psnr", lambda v: v - 0.1).to_csv(bad, index=False)
    runner = CliRunner()
    same = runner.invoke(main, ["compare", str(folder), str(folder / "results.csv")])
    assert same.exit_code == 0, same.output
    assert "no regression (16 cells" in same.output
    worse = runner.invoke(main, ["compare", str(folder), str(bad)])
    assert worse.exit_code == 1
    assert "FAIL: PSNR -0.100 dB" in worse.output
    loose = runner.invoke(main, ["compare", str(folder), str(bad), "--psnr-tol", "0.2"])
    assert loose.exit_code == 0
