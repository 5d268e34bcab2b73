"""The "Learned vs classical by training budget" section, on planted milestone rows with
known BD values (each milestone's curve is JPEG 2000's shifted down by a known dB)."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from medbench.benchmark.rows import ResultRow
from medbench.benchmark.store import STORE_NAME, ResultsStore
from medbench.reports.budget import (
    HOW_TO,
    budget_table,
    crossing,
    label_amount,
    split_milestones,
    trend_table,
)
from medbench.reports.build import build_report
from medbench.reports.generalization import generalization_table

RATES = [0.1, 0.2, 0.4, 0.8]


def _row(codec, setting, bpp, psnr, image, **extra):
    h = w = 64
    return {"dataset": "nih", "split": "test", "image_id": image, "protocol": "paper",
            "bit_depth": 8, "height": h, "width": w, "codec": codec, "setting": setting,
            "setting_rank": 0, "bytes": int(round(bpp * h * w / 8)), "bpp": bpp,
            "ratio": 8 / bpp, "mse": 255.0**2 / 10 ** (psnr / 10), "psnr": psnr,
            "ssim": 0.9, "ms_ssim": 1 - 10 ** (-psnr / 20), "max_abs_error": 3,
            "encode_ms": 1.0, "decode_ms": 1.0, "status": "ok", "codec_kind": "classical",
            **extra}


def planted_rows(shifts: dict[str, float]) -> list[dict]:
    """JPEG 2000 at RATES, and per milestone label the same curve ``shift`` dB lower,
    one λ model per rate."""
    rows = []
    for image in ("a", "b"):
        for k, r in enumerate(RATES):
            rows.append(_row("jpeg2000", f"ratio={k}", r, 30 + 10 * math.log10(r / 0.1), image))
        for label, shift in shifts.items():
            for k, r in enumerate(RATES):
                model = f"nih-lam{k}"
                seconds, _ = label_amount(label)
                info = json.dumps({"budget": {"wall_s": seconds, "steps": 10 * k,
                                              "images_seen": 80}, "milestone": {"label": label}})
                rows.append(_row("dcae", f"{model}@{label}", r,
                                 30 + 10 * math.log10(r / 0.1) - shift, image,
                                 codec_kind="learned", train_dataset="nih", model_info=info))
    return rows


def test_bd_values_follow_the_planted_shifts():
    rows = pd.DataFrame(planted_rows({"2m": 3.0, "4m": 2.0, "8m": 1.0}))
    table = budget_table(rows)
    assert list(table["milestone"]) == ["2m", "4m", "8m"]
    assert list(table["budget"]) == [120, 240, 480]
    np.testing.assert_allclose(table["bd_psnr"], [-3.0, -2.0, -1.0], atol=1e-6)
    assert (table["bd_rate_psnr"] > 0).all() and (table["models"] == 4).all()
    assert table["device_s"].tolist() == [120, 240, 480]
    trend = trend_table(table).iloc[0]
    assert trend["crosses_at"] == "16 m"  # +1 dB per doubling from -1 dB at 8 m
    assert "if the trend held" in trend["verdict"]


@pytest.mark.parametrize("budgets, values, expected", [
    ([60, 120], [-3, -2], "fewer than 3"),
    ([60, 120, 240], [-3, -3.5, -2], "does not rise"),
    ([60, 120, 240], [-9, -8.5, -8], "beyond 4×"),
])
def test_a_crossing_is_said_only_when_the_points_support_it(budgets, values, expected):
    at, why = crossing(np.array(budgets, float), np.array(values, float))
    assert at is None and "not predictable" in why and expected in why


def test_a_codec_already_above_jpeg2000_says_from_when():
    at, why = crossing(np.array([60, 120, 240.0]), np.array([-1, 0.5, 1.0]))
    assert at == 120 and "at or above" in why


def test_milestone_rows_stay_out_of_the_other_sections(tmp_path):
    rows = pd.DataFrame(planted_rows({"2m": 3.0}))
    main, milestones = split_milestones(rows)
    assert set(main["codec"]) == {"jpeg2000"} and len(milestones) == 2 * len(RATES)


def _report(tmp_path, rows):
    store = ResultsStore(tmp_path / STORE_NAME)
    run_id = store.new_run({"datasets": ["nih"]}, {"python": "3.x"})
    for row in rows:
        store.write(ResultRow(**{**row, "run_id": run_id}))
    store.set_run_status(run_id, "finished")
    store.close()
    return build_report(tmp_path, visual=False)


def test_the_report_shows_the_budget_curve(tmp_path):
    report = _report(tmp_path, planted_rows({"2m": 3.0, "4m": 2.0, "8m": 1.0}))
    text = report.markdown["budget"]
    assert "16 m" in text and "-1.00" in text
    assert (tmp_path / "report" / "figures" / "budget_nih_s.png").is_file()
    saved = pd.read_csv(tmp_path / "report" / "budget_curve.csv")
    assert list(saved["milestone"]) == ["2m", "4m", "8m"]
    assert "@" not in report.markdown["bd-rate"]  # finished models only elsewhere
    assert 'id="budget"' in report.index.read_text()


def test_without_milestones_one_line_says_how_to_get_them(tmp_path):
    report = _report(tmp_path, planted_rows({}))
    assert report.markdown["budget"].strip() == HOW_TO


def test_fine_tuned_rows_sit_beside_scratch_ones_in_the_generalization_matrix():
    from medbench.reports.bd import bd_table
    from medbench.reports.curves import curves

    rows = []
    for image in ("a", "b"):
        for k, r in enumerate(RATES):
            psnr = 30 + 10 * math.log10(r / 0.1)
            rows.append(_row("jpeg2000", f"ratio={k}", r, psnr, image))
            for train in ("nih", "nih (from jsrt)"):
                rows.append(_row("dcae", f"m{k}-{train[:3]}{len(train)}", r, psnr - 1, image,
                                 codec_kind="learned", train_dataset=train))
    all_curves = curves(pd.DataFrame(rows))
    table = generalization_table(all_curves, bd_table(all_curves))
    assert set(table["train_dataset"]) == {"nih", "nih (from jsrt)"}
    assert table["in_domain"].all()


def test_milestones_without_bd_values_give_a_table_and_no_figure(tmp_path):
    rows = [r for r in planted_rows({"2m": 3.0}) if not r["setting"].startswith("nih-lam")
            or r["setting"].startswith("nih-lam0")]  # one point per curve: no BD value
    report = _report(tmp_path, rows)
    assert "too few RD points" in report.markdown["budget"]
    assert not list((tmp_path / "report" / "figures").glob("budget_*"))


def test_a_target_row_coded_at_a_milestone_is_in_no_table():
    """Stores from before milestones were kept out of rate matching may hold a learned
    ``target:`` row whose knob is a milestone: neither a model's point nor a budget's."""
    from medbench.reports.targets import targets_table

    base = {"dataset": "d", "image_id": "i", "status": "ok", "bpp": 0.8, "ratio": 10.0,
            "psnr": 40.0, "ms_ssim": 0.99, "ssim": 0.98, "setting_rank": 9,
            "target_met": 1, "target_note": None, "error": None}
    rows = pd.DataFrame([
        {**base, "codec": "dcae", "codec_kind": "learned", "train_dataset": "nih",
         "setting": "target:ratio=10", "knob": "nih-l16@4m"},
        {**base, "codec": "dcae", "codec_kind": "learned", "train_dataset": "nih",
         "setting": "target:ratio=10", "knob": "nih-l16"},
        {**base, "codec": "jpeg2000", "codec_kind": "classical", "train_dataset": None,
         "setting": "target:ratio=10", "knob": "ratio=10.1"},
    ])
    main, milestones = split_milestones(rows)
    assert list(main["knob"]) == ["nih-l16", "ratio=10.1"] and milestones.empty
    table = targets_table(main)
    assert table.set_index("codec").loc["dcae", "images"] == 1
