"""The report's "Diagnostic quality" section: limits, verdicts, disagreements, raw values."""

from __future__ import annotations

import pandas as pd

from medbench.reports.diagnostic import (
    diagnostic_section,
    disagreements,
    limits_table,
    verdict_table,
)


def _observer(cells: dict[tuple[str, str], tuple[float, float, float]]) -> pd.DataFrame:
    """An observer table: per (codec, setting) its ratio, bpp and d' ratio (with a ±0.02
    interval), the same at every size, contrast and observer; plus the originals."""
    rows = []
    for observer in ("cho", "npwe"):
        for size in (4.0, 10.0):
            for contrast in (0.025, 0.05):
                rows.append({"dataset": "d", "codec": "original", "train_dataset": None,
                             "setting": "", "observer": observer, "diameter_mm": size,
                             "contrast": contrast, "dprime": 2.0, "dprime_ratio": 1.0,
                             "dprime_ratio_low": None, "dprime_ratio_high": None,
                             "bpp": None, "ratio": None, "n_skipped": 0, "note": None})
                for (codec, setting), (ratio, bpp, kept) in cells.items():
                    rows.append({"dataset": "d", "codec": codec, "train_dataset": None,
                                 "setting": setting, "observer": observer,
                                 "diameter_mm": size, "contrast": contrast,
                                 "dprime": 2.0 * kept, "dprime_ratio": kept,
                                 "dprime_ratio_low": kept - 0.02,
                                 "dprime_ratio_high": kept + 0.02, "bpp": bpp,
                                 "ratio": ratio, "n_skipped": 0, "note": None})
    return pd.DataFrame(rows)


CELLS = {("a", "q=90"): (5.0, 1.6, 1.0), ("a", "q=50"): (12.0, 0.67, 0.98),
         ("a", "q=10"): (40.0, 0.2, 0.5), ("b", "ratio=5"): (5.0, 1.6, 0.9),
         ("a", "target:ratio=10"): (10.0, 0.8, 0.98),
         ("b", "target:ratio=10"): (10.0, 0.8, 0.6)}


def _targets() -> pd.DataFrame:
    return pd.DataFrame([
        {"dataset": "d", "target": "10:1", "codec": "a", "train_dataset": None, "psnr": 44.0},
        {"dataset": "d", "target": "10:1", "codec": "b", "train_dataset": None, "psnr": 47.0},
    ])


def _matched() -> pd.DataFrame:
    return pd.DataFrame([
        {"dataset": "d", "codec": codec, "train_dataset": None, "setting": "target:ratio=10",
         "status": "ok", "psnr": psnr, "ssim": ssim, "ms_ssim": 0.995, "vif": vif}
        for codec, psnr, ssim, vif in (("a", 44.0, 0.97, 0.95), ("a", 44.0, 0.97, 0.95),
                                       ("b", 47.0, 0.99, 0.80), ("b", float("inf"), 1.0, 0.85))])


def test_limits_say_the_highest_task_lossless_ratio_and_the_guidelines():
    table = _observer(CELLS)
    limits = limits_table(table[table["codec"] != "original"]).set_index("codec")
    assert limits.loc["a", "CHO 4 mm"] == "12.0:1 (q=50)"  # 0.96 >= 0.95; q=10 is not
    assert limits.loc["a", "keeps it at 10:1"] == "yes"
    assert limits.loc["a", "keeps it at 30:1"] == "no"
    assert limits.loc["b", "NPWE 10 mm"] == "–" and limits.loc["b", "keeps it at 10:1"] == "no"


def test_verdicts_set_the_metrics_beside_the_task():
    """b at 10:1: PSNR 47 dB calls it lossless while detectability is lost; a keeps
    detectability at 44 dB, which PSNR does not call lossless. Metrics are the means of
    the rate-matched rows (an exact image's inf PSNR does not count)."""
    verdicts = verdict_table(_observer(CELLS), _targets(), _matched()).set_index("codec")
    assert verdicts.loc["b", "detectability"] == "lost"
    assert verdicts.loc["b", "min d' ratio"] == "0.60"
    assert "PSNR" in verdicts.loc["b", "metrics calling it lossless"]
    assert "VIF" in verdicts.loc["b", "metrics that do not"]  # mean 0.825 < 0.9
    assert verdicts.loc["a", "detectability"] == "kept"
    assert "PSNR" in verdicts.loc["a", "metrics that do not"]
    assert "VIF" in verdicts.loc["a", "metrics calling it lossless"]


def test_a_ranking_that_psnr_and_detectability_disagree_on_is_said():
    (sentence,) = disagreements(_observer(CELLS), _targets())
    assert sentence.startswith("d, at exactly 10:1: PSNR and detectability rank codecs "
                               "differently — b 47.00 dB over a 44.00 dB, yet d' ratio 0.60 "
                               "against 0.98")
    agree = _targets().assign(psnr=[47.0, 44.0])  # a higher on both
    assert disagreements(_observer(CELLS), agree) == []


def test_the_section_draws_its_figure_and_says_what_raw_values_are(tmp_path):
    rows = pd.DataFrame([{"dataset": "d", "bit_depth": 12, "display": None}])
    md, html = diagnostic_section(_observer(CELLS), rows, _targets(), _matched(), tmp_path)
    assert (tmp_path / "detectability_d.png").is_file()
    assert "Task-lossless limit" in md and "not what a viewer shows" in md
    assert "<b>d</b>:" in html
    windowed = rows.assign(display="lung (center 0.3, width 0.6)")
    md, _ = diagnostic_section(pd.DataFrame(), windowed, _targets(), _matched(), tmp_path)
    assert "not what a viewer shows" not in md
    assert md.startswith("No detection experiment in this run")


def test_a_size_with_no_task_lossless_setting_fails_the_guideline():
    """c keeps detectability of 10 mm nodules to 12:1 but of 4 mm ones at no setting:
    it does not keep 'it' at 10:1 (the worst size decides)."""
    table = _observer({("c", "q=50"): (12.0, 0.67, 0.99)})
    table.loc[(table["codec"] == "c") & (table["diameter_mm"] == 4.0),
              ["dprime_ratio", "dprime_ratio_low", "dprime_ratio_high"]] = [0.8, 0.7, 0.9]
    limits = limits_table(table[table["codec"] != "original"]).set_index("codec")
    assert limits.loc["c", "CHO 10 mm"] == "12.0:1 (q=50)"
    assert limits.loc["c", "CHO 4 mm"] == "–"
    assert limits.loc["c", "keeps it at 10:1"] == "no"


def test_an_interval_across_the_margin_is_neither_kept_nor_lost():
    table = _observer({("a", "target:ratio=10"): (10.0, 0.8, 0.96),
                       ("b", "target:ratio=10"): (10.0, 0.8, 0.6)})
    table.loc[table["codec"] == "a", "dprime_ratio_low"] = 0.9  # 0.90 .. 0.98
    verdicts = verdict_table(table, _targets(), _matched()).set_index("codec")
    assert verdicts.loc["a", "detectability"] == "not shown either way"
    assert verdicts.loc["b", "detectability"] == "lost"


def test_differences_in_detectability_within_the_noise_are_no_disagreement():
    close = _observer({("a", "target:ratio=10"): (10.0, 0.8, 0.99),
                       ("b", "target:ratio=10"): (10.0, 0.8, 0.97)})
    assert disagreements(close, _targets()) == []  # b's PSNR is higher, 0.02 apart only
