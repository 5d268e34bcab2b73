"""End to end: ``medbench run`` on the built-in sample, read back from results.csv."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from medbench.benchmark.store import COLUMNS
from medbench.cli import main

CONTRACT = (
    "run_id, dataset, split, image_id, protocol, bit_depth, height, width, codec, setting, "
    "train_dataset, bytes, bpp, ratio, mse, psnr, ssim, ms_ssim, max_abs_error, "
    "lossless_exact, encode_ms, decode_ms, status, error"
).split(", ")


def invoke(*args):
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result


@pytest.fixture(scope="module")
def paper_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    result = invoke("run", "--codecs", "jpeg,jpeg2000", "--limit", "3", "--repeats", "1",
                    "--out", str(out), "--no-progress")
    assert result.exit_code == 0, result.output
    return out, result.output, pd.read_csv(out / "results.csv")


def test_results_csv_has_the_contract_columns(paper_run):
    _, _, df = paper_run
    assert list(df.columns[: len(CONTRACT)]) == CONTRACT
    assert set(CONTRACT) <= set(COLUMNS)


def test_rows_cover_every_cell(paper_run):
    _, _, df = paper_run
    assert len(df) == 3 * (9 + 7)
    assert df["image_id"].nunique() == 3
    assert (df["split"] == "test").all() and (df["protocol"] == "paper").all()
    assert (df["status"] == "ok").all(), df[df["status"] != "ok"]["error"].tolist()
    assert ((df["height"] == 256) & (df["width"] == 256) & (df["bit_depth"] == 8)).all()


def test_rates_come_from_bytes(paper_run):
    _, _, df = paper_run
    np.testing.assert_allclose(df["bpp"], 8 * df["bytes"] / (df["height"] * df["width"]))
    np.testing.assert_allclose(df["ratio"], df["bit_depth"] * df["height"] * df["width"]
                               / (8 * df["bytes"]))


def test_lossless_rows_are_exact_and_lossy_ones_plausible(paper_run):
    _, _, df = paper_run
    lossless = df[df["setting"] == "lossless"]
    assert lossless["lossless_exact"].all() and (lossless["max_abs_error"] == 0).all()
    assert lossless["psnr"].map(math.isinf).all()
    lossy = df[df["setting"] != "lossless"]
    assert lossy["psnr"].between(20, 70).all()
    assert lossy["ms_ssim"].between(0.5, 1.0).all()
    assert (df["encode_ms"] > 0).all() and (df["decode_ms"] > 0).all()


def test_end_of_run_table_and_paths(paper_run):
    """The table printed at the end holds each setting's image count and means, as
    computed here from results.csv."""
    out, output, df = paper_run
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines)
                 if line.startswith("dataset") and "PSNR dB" in line)
    header = re.split(r"\s{2,}", lines[start].strip())
    table = {}
    for line in lines[start + 1:]:
        if not line.strip():
            break
        if set(line.strip()) <= {"-", " "}:  # the rule under the header
            continue
        cells = dict(zip(header, re.split(r"\s{2,}", line.strip())))
        table[(cells["codec"], cells["setting"])] = cells
    ok = df[df["status"] == "ok"]
    assert len(table) == ok.groupby(["codec", "setting"]).ngroups == 9 + 7
    for (codec, setting), group in ok.groupby(["codec", "setting"]):
        cells = table[(codec, setting)]
        assert cells["n"] == str(len(group)) == "3"
        assert cells["bpp"] == f"{group['bpp'].mean():.3f}"
        assert cells["MS-SSIM"] == f"{group['ms_ssim'].mean():.4f}"
        finite = group["psnr"][np.isfinite(group["psnr"])]
        if len(finite):  # lossless rows decode exactly: no finite PSNR to average
            assert cells["PSNR dB"] == f"{finite.mean():.2f}", (codec, setting)
    assert table[("jpeg2000", "lossless")]["exact"] == "3"
    assert f"results: {out / 'results.csv'}" in output


def test_native_protocol_keeps_bit_depth_and_jpeg_refuses(tmp_path):
    result = invoke("run", "--codecs", "jpeg,jpeg2000", "--protocol", "native", "--limit", "2",
                    "--repeats", "0", "--out", str(tmp_path), "--no-progress")
    assert result.exit_code == 0, result.output
    df = pd.read_csv(tmp_path / "results.csv")
    assert set(df["bit_depth"]) <= {10, 15} and (df["height"] == 320).all()
    jpeg = df[df["codec"] == "jpeg"]
    assert (jpeg["status"] == "unsupported").all()
    assert jpeg["error"].str.contains("8-bit").all()
    j2k = df[df["codec"] == "jpeg2000"]
    assert (j2k["status"] == "ok").all()
    assert j2k[j2k["setting"] == "lossless"]["lossless_exact"].all()


@pytest.mark.parametrize("args,word", [
    (["--codecs", "nope"], "known codecs"),
    (["--datasets", "nope"], "known datasets"),
])
def test_unknown_names_exit_2_with_one_line(tmp_path, args, word):
    result = CliRunner().invoke(main, ["run", "--out", str(tmp_path), *args])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error:") and word in lines[0]


def test_codecs_command_lists_both(tmp_path):
    result = invoke("codecs")
    assert result.exit_code == 0
    assert "jpeg2000" in result.output and "ratio=160" in result.output
    assert "classical" in result.output


def test_the_first_line_comes_before_anything_is_coded(tmp_path):
    """The run talks from its first second: its first line is printed while no store (which
    receives every cell as it finishes) exists yet."""
    import subprocess
    import sys

    out = tmp_path / "out"
    process = subprocess.Popen(
        [sys.executable, "-m", "medbench.cli", "run", "--codecs", "jpeg", "--limit", "1",
         "--repeats", "0", "--out", str(out), "--no-report", "--no-progress"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = process.stderr.readline()
    nothing_yet = not (out / "results.sqlite").exists()
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr
    assert first.startswith("medbench: loading") and nothing_yet
    assert "sample: test split: 1 of 49 images" in stderr
    assert "coding 9 cells (1 image) on local, 1 worker (in-process)" in stderr


@pytest.mark.parametrize("args", [
    ["--codecs", "nope"],
    ["--datasets", "sample,nope"],
    ["--datasets", "jsrt"],  # no --data-root
    ["--protocol", "weird"],
    ["--codecs", "jpeg,,jpeg2000"],
])
def test_an_argument_error_leaves_no_files_behind(tmp_path, args):
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["run", *args, "--out", str(out), "--no-progress"])
    assert result.exit_code in (1, 2), result.output
    assert result.output.count("Error:") == 1 and "Traceback" not in result.output
    assert not out.exists()


def test_an_interrupt_before_the_store_exists_does_not_promise_a_resume(tmp_path, monkeypatch):
    import medbench.benchmark.runner as runner

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "run", interrupted)
    out = tmp_path / "r"
    result = CliRunner().invoke(main, ["run", "--datasets", "sample", "--codecs", "jpeg2000",
                                       "--limit", "1", "--out", str(out), "--no-report"])
    assert "Interrupted before any cell was coded" in result.output
    assert "--resume`" not in result.output
