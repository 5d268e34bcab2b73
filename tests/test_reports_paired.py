"""Rankings that say whether they are real: paired differences, ties, honest claims."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from medbench.reports.bd import bd_table
from medbench.reports.curves import curves
from medbench.reports.headline import headline
from medbench.reports.targets import TIE, targets_table


def _rows(codecs: dict[str, tuple[float, float, float]], images: int = 16, seed: int = 0,
          target: str = "target:ratio=10") -> pd.DataFrame:
    """Target rows: per codec (mean PSNR offset, per-image noise, achieved ratio). Every
    image has its own difficulty, shared by all codecs, as real images do."""
    rng = np.random.default_rng(seed)
    difficulty = rng.normal(0, 3.0, images)
    rows = []
    for codec, (offset, noise, ratio) in codecs.items():
        for i in range(images):
            met = abs(ratio / 10 - 1) <= 0.02 and ratio >= 10
            rows.append({"dataset": "d", "split": "test", "image_id": f"i{i}",
                         "group_id": f"i{i}", "group_kind": "patient", "codec": codec,
                         "setting": target, "setting_rank": 9, "status": "ok",
                         "codec_kind": "classical", "train_dataset": None,
                         "psnr": 40 + offset + difficulty[i] + rng.normal(0, noise),
                         "bpp": 8 / ratio, "ratio": ratio, "ms_ssim": 0.99, "mse": 1.0,
                         "bit_depth": 8, "target_met": met,
                         "target_note": None if met else "off the tolerance",
                         "protocol": "paper", "height": 64, "width": 64, "error": None})
    return pd.DataFrame(rows)


def test_neighbours_that_the_data_cannot_tell_apart_are_a_tie():
    """Two codecs 0.02 dB apart on average, each mean with a ±1.5 dB interval: the
    per-codec intervals say nothing; the paired difference says 'tie'."""
    table = targets_table(_rows({"a": (0.02, 0.1, 10.1), "b": (0.0, 0.1, 10.1),
                                 "c": (-0.5, 0.1, 10.1)}))
    first, second, third = (table[table["rank"] == k].iloc[0] for k in (1, 2, 3))
    assert {first["codec"], second["codec"]} == {"a", "b"} and third["codec"] == "c"
    assert first["next"] == second["codec"] and first["paired_images"] == 16
    assert first["psnr_ci"] > 1.0  # each mean is uncertain...
    assert first["psnr_diff_next_ci"] < 0.1  # ...their difference is not
    assert first["vs_next"].endswith(f"({TIE})")  # ~0.02 ± ~0.05: the interval holds 0
    assert not second["vs_next"].endswith(f"({TIE})")  # ~0.5 dB apart on every image
    assert second["psnr_diff_next"] == pytest.approx(0.5, abs=0.1)
    assert pd.isna(third["next"]) and pd.isna(third["psnr_diff_next"])
    assert "student-t (one image per patient)" == first["paired_method"]


def test_the_headline_says_tied_instead_of_ranking_noise():
    rows = _rows({"a": (0.02, 0.1, 10.1), "b": (0.0, 0.1, 10.1), "c": (-0.5, 0.1, 10.1)})
    (h,) = headline(rows, curves(rows.iloc[0:0]), bd_table([]), targets_table(rows))
    line = next(x for x in h.lines if x.startswith("At exactly 10:1"))
    best, runner = ("a", "b") if "best PSNR a " in line else ("b", "a")
    assert f"then {runner} " in line and f"(tied with {best}: +0.0" in line
    assert "over" not in line.split("then")[0]  # no margin claimed for a tie


def test_a_codec_with_fewer_bytes_and_more_psnr_is_never_ranked_below():
    """b misses the 2 % tolerance by spending *fewer* bytes (10.3:1) and still has the
    higher PSNR: it is the better codec, not the runner-up."""
    rows = _rows({"a": (0.0, 0.1, 10.1), "b": (1.0, 0.1, 10.3)})
    table = targets_table(rows)
    assert table.set_index("codec").loc["b", "rank"] == 1
    (h,) = headline(rows, curves(rows.iloc[0:0]), bd_table([]), table)
    line = next(x for x in h.lines if x.startswith("At exactly 10:1"))
    assert "best PSNR b " in line and "at 10.3:1" in line and "over a, paired" in line
    assert "missed the target's tolerance on some images: b" in line


def test_no_best_at_exactly_a_target_nobody_met():
    rows = _rows({"a": (0.0, 0.1, 15.0), "b": (1.0, 0.1, 12.0)})
    (h,) = headline(rows, curves(rows.iloc[0:0]), bd_table([]), targets_table(rows))
    line = next(x for x in h.lines if x.startswith("At 10:1"))
    assert "no codec met the target within its tolerance on every image" in line
    assert "At exactly" not in " ".join(h.lines)
    above = _rows({"a": (0.0, 0.1, 9.0)})  # above the rate on every image: never best
    (h,) = headline(above, curves(above.iloc[0:0]), bd_table([]), targets_table(above))
    assert any("so none is called best" in x for x in h.lines)


def test_a_psnr_target_is_ranked_by_rate():
    rows = _rows({"a": (0.0, 0.1, 10.0), "b": (0.0, 0.1, 12.0)}, target="target:psnr=40")
    table = targets_table(rows)
    assert list(table.sort_values("rank")["codec"]) == ["b", "a"]  # fewer bits first
    assert table.set_index("codec").loc["b", "vs_next"].endswith("bpp")


def test_an_unfinished_run_says_so_before_any_number(tmp_path):
    from medbench.benchmark.runner import RunConfig, run
    from medbench.benchmark.store import ResultsStore
    from medbench.reports.build import build_report

    result = run(RunConfig(codecs=["jpeg"], datasets=["sample"], limit=2, repeats=0), tmp_path)
    store = ResultsStore(tmp_path / "results.sqlite")
    store.set_run_status(result.run_id, "interrupted")
    store.close()
    report = build_report(tmp_path, visual=False)
    first = report.markdown["headline"].splitlines()[0]
    assert first.startswith("- **sample**: ⚠ This run did not finish (status interrupted)")
    assert f"medbench run --out {tmp_path} --resume" in first
    assert report.markdown["bd-rate"].startswith("⚠ This run did not finish")


def _curve_rows(offsets: dict[str, float], images: int = 16, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    difficulty = rng.normal(0, 3.0, images)
    rows = []
    for codec, offset in offsets.items():
        for i in range(images):
            for k, bpp in enumerate((0.1, 0.2, 0.4, 0.8, 1.6)):
                rows.append({"dataset": "d", "split": "test", "image_id": f"i{i}",
                             "group_id": f"i{i}", "group_kind": "patient", "codec": codec,
                             "setting": f"s{k}", "setting_rank": k, "status": "ok",
                             "codec_kind": "classical", "train_dataset": None, "bpp": bpp,
                             "psnr": 30 + 10 * np.log10(bpp / 0.1) + difficulty[i] + offset
                             + rng.normal(0, 0.05), "ms_ssim": 0.99, "mse": 1.0,
                             "bit_depth": 8, "protocol": "paper", "height": 64, "width": 64})
    return pd.DataFrame(rows)


def test_the_curve_headline_pairs_the_best_with_the_next_on_the_same_images():
    rows = _curve_rows({"jpeg2000": 0.0, "a": 0.01, "b": -1.0})
    (h,) = headline(rows, curves(rows), bd_table(curves(rows)))
    line = next(x for x in h.lines if x.startswith("At 10:1"))
    assert "(tied with" in line and "paired on 16 images" in line
    rows = _curve_rows({"jpeg2000": 0.0, "a": 1.0})
    (h,) = headline(rows, curves(rows), bd_table(curves(rows)))
    line = next(x for x in h.lines if x.startswith("At 10:1"))
    assert "best PSNR a " in line and "over jpeg2000, paired on 16 images)" in line
    assert "tied" not in line
