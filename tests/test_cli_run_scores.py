"""End to end: ``medbench run --metrics`` and ``--display``, read back from results.csv."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from medbench.benchmark.metrics import perceptual, psnr
from medbench.benchmark.metrics.display import display_window
from medbench.cli import main
from medbench.codecs import codec_names, get_codec
from medbench.datasets.formats import read_image
from medbench.image import Image
from tests.conftest import radiograph_like
from tests.fixture_formats import write_dicom, write_png

MASKS = Path(__file__).parent / "reference" / "masks"
PERCEPTUAL = list(perceptual.NAMES)
IDENTICAL = [perceptual.IDENTICAL[n] for n in PERCEPTUAL]


def _run(tmp_path, *args):
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["run", "--out", str(out), "--no-progress", "--no-report",
                                       "--repeats", "0", "--workers", "1", *args],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return pd.read_csv(out / "results.csv")


def _lossless_codecs(bit_depth):
    names = []
    for name in codec_names():
        codec = get_codec(name)
        if codec.unavailable_reason() is None and "lossless" in codec.settings() \
                and bit_depth in codec.bit_depths:
            names.append(name)
    return names


@pytest.mark.parametrize("protocol,bit_depth", [
    (["--protocol", "paper", "--display", "lung"], 8),  # auto: the paper protocol's size
    (["--protocol", "native", "--size", "64", "--bit-depth", "12", "--metrics", "all",
      "--display", "dicom"], 12),
])
def test_every_codecs_lossless_setting_scores_the_identical_values(tmp_path, protocol,
                                                                    bit_depth):
    codecs = _lossless_codecs(bit_depth)
    assert {"jpeg2000", "png"} <= set(codecs)
    df = _run(tmp_path, "--codecs", ",".join(codecs), "--datasets", "sample", "--limit", "1",
              "--masks", str(MASKS), *protocol)
    lossless = df[df["setting"] == "lossless"]
    assert sorted(lossless["codec"]) == sorted(codecs)
    assert (lossless["status"] == "ok").all(), lossless["error"].tolist()
    assert lossless["roi"].str.startswith("mask:").all()
    exact = df[df["max_abs_error"] == 0]  # the lossless rows, and any lossy one that was
    for prefix in ("", "roi_", "display_"):
        values = exact[[prefix + n for n in PERCEPTUAL]].to_numpy()
        assert (values == IDENTICAL).all(), (prefix, values)
    assert (exact["display_psnr"] == math.inf).all() and (exact["display_ssim"] == 1).all()
    lossy = df[(df["max_abs_error"] > 0) & (df["status"] == "ok")]
    assert (lossy["vif"] < 1).all() and (lossy["gmsd"] > 0).all()
    assert (lossy["fsim"] < 1).all() and (lossy["haarpsi"] < 1).all()


def _dicom_folder(root: Path) -> Path:
    """A 12-bit MONOCHROME2 DICOM with Window Center/Width, one with a VOI LUT Sequence,
    a MONOCHROME1 one with a window, and a PNG (no window)."""
    scene = radiograph_like((96, 96), 12, 11)
    write_dicom(root / "window.dcm", scene, "MONOCHROME2", 12, window=([1800.0], [1200.0]))
    entries = [int(4095 * (i / 4095) ** 0.6) for i in range(4096)]
    write_dicom(root / "lut.dcm", radiograph_like((96, 96), 12, 12), "MONOCHROME2", 12,
                voi_lut=(0, 12, entries, True))
    write_dicom(root / "mono1.dcm", 4095 - radiograph_like((96, 96), 12, 13).astype(np.int32),
                "MONOCHROME1", 12, window=([2200.0], [1500.0]))
    write_png(root / "plain.png", radiograph_like((96, 96), 8, 14))
    return root


def test_display_dicom_scores_12_bit_dicoms_through_their_own_window(tmp_path):
    data = _dicom_folder(tmp_path / "data")
    df = _run(tmp_path, "--codecs", "jpeg2000,png", "--datasets", f"folder:{data}",
              "--split", "all", "--protocol", "native", "--display", "dicom")
    assert (df["status"] == "ok").all(), df["error"].tolist()
    by_image = df.groupby("image_id").first()
    assert by_image.loc["window", "display"] == "dicom window center 1800, width 1200 (LINEAR)"
    assert by_image.loc["lut", "display"].startswith("dicom VOI LUT 'TEST LUT' (4096 entries")
    assert by_image.loc["mono1", "display"] == (
        "dicom window center 2200, width 1500 (LINEAR, displayed inverted (MONOCHROME1 "
        "source))")
    # The PNG has no window: a stated skip, never a fallback window.
    plain = df[df["image_id"] == "plain"]
    assert plain["display"].isna().all()
    assert plain["display_note"].str.contains("no dicom window").all()
    display_columns = [c for c in df.columns if c.startswith("display_") and c != "display_note"]
    assert plain[display_columns].isna().all().all()
    dicoms = df[df["image_id"] != "plain"]
    assert dicoms["display_note"].isna().all()
    assert dicoms[display_columns].notna().all().all()  # 96² images: auto computes them all
    # A lossy row's display PSNR is the PSNR of the two images through the file's window.
    row = df[(df["image_id"] == "mono1") & (df["setting"] == "ratio=10")].iloc[0]
    pixels, bits, meta = read_image(data / "mono1.dcm")
    codec = get_codec("jpeg2000")
    decoded = codec.decode(codec.encode(Image(pixels, bits, "mono1", meta), "ratio=10"))
    window = display_window("dicom", pixels, meta)
    assert row["display_psnr"] == pytest.approx(
        psnr(window.apply(pixels), window.apply(decoded), data_range=255), abs=1e-9)
    assert row["display_psnr"] != pytest.approx(row["psnr"], abs=0.5)


def test_metrics_choices_say_which_columns_are_filled(tmp_path):
    # Native sample tiles are 320x320, above auto's 256x256: no perceptual metrics...
    df = _run(tmp_path, "--codecs", "jpeg", "--datasets", "sample", "--limit", "1",
              "--protocol", "native", "--bit-depth", "8")
    assert df[PERCEPTUAL].isna().all().all() and df["display"].isna().all()
    assert df[[c for c in df.columns if c.startswith("display_")]].isna().all().all()
    # ...unless asked for; a list computes those only, never a 0 for the others.
    df = _run(tmp_path / "b", "--codecs", "jpeg", "--datasets", "sample", "--limit", "1",
              "--protocol", "native", "--bit-depth", "8", "--metrics", "gmsd,VIF")
    assert df[["vif", "gmsd"]].notna().all().all()
    assert df[["haarpsi", "fsim"]].isna().all().all()
    # basic: none even on small images; PSNR/SSIM/MS-SSIM always.
    df = _run(tmp_path / "c", "--codecs", "jpeg", "--datasets", "sample", "--limit", "1",
              "--metrics", "basic")
    assert df[PERCEPTUAL].isna().all().all() and df[["psnr", "ms_ssim"]].notna().all().all()


@pytest.mark.parametrize("args,message", [
    (["--metrics", "vif,lpips"], "--metrics 'vif,lpips': unknown lpips"),
    (["--display", "brain"], "Invalid value for '--display'"),
])
def test_bad_choices_are_one_line_errors(tmp_path, args, message):
    result = CliRunner().invoke(main, ["run", "--out", str(tmp_path / "o"), "--codecs", "png",
                                       "--no-progress", *args])
    assert result.exit_code != 0 and message in result.output
    assert "Traceback" not in result.output


def test_resume_keeps_the_runs_metrics_and_display(tmp_path):
    """--metrics and --display define a run: --resume restores them, takes them again
    when they mean the same (the list is stored in its canonical order), and refuses
    another choice, naming it."""
    out = tmp_path / "out"
    base = ["run", "--out", str(out), "--no-progress", "--no-report", "--repeats", "0",
            "--workers", "1", "--codecs", "png", "--datasets", "sample", "--limit", "1"]
    first = CliRunner().invoke(main, [*base, "--metrics", "vif,gmsd", "--display", "lung"])
    assert first.exit_code == 0, first.output
    same = CliRunner().invoke(main, [*base, "--resume", "--metrics", "GMSD, vif"])
    assert same.exit_code == 0, same.output
    other = CliRunner().invoke(main, [*base, "--resume", "--display", "bone"])
    assert other.exit_code != 0
    assert "--display lung, not --display bone" in other.output
    df = pd.read_csv(out / "results.csv")
    assert df["display"].str.startswith("lung").all()
    assert df[["vif", "gmsd"]].notna().all().all() and df["fsim"].isna().all()
