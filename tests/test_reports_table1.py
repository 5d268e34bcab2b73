"""The seed paper's Table 1 (package data) merged with our rows for the same model."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from medbench.reports.curves import curves
from medbench.reports.table1 import _epochs, model_summary, seed_table, table1_comparison


def test_seed_table_holds_the_papers_nine_rows():
    table = seed_table()
    assert list(table.columns) == ["method", "dataset", "epochs", "mse", "psnr", "ms_ssim"]
    assert len(table) == 9
    rows = {(r.method, r.dataset): r for r in table.itertuples()}
    assert set(rows) == {(m, d) for m in ("DCAE", "AE", "CNN") for d in ("MXID", "OPENI", "JSRT")}
    dcae_mxid = rows[("DCAE", "MXID")]
    assert (dcae_mxid.epochs, dcae_mxid.mse, dcae_mxid.psnr, dcae_mxid.ms_ssim) == (
        51, 0.0002, 46.78, 0.99)
    assert (rows[("CNN", "JSRT")].psnr, rows[("AE", "OPENI")].ms_ssim) == (36.96, 0.70)
    assert rows[("DCAE", "OPENI")].epochs == 30 and rows[("CNN", "OPENI")].mse == 0.004


def _row(dataset, codec, setting, bpp, psnr, mse, train=None, kind="classical", info=None):
    return {"dataset": dataset, "codec": codec, "setting": setting, "setting_rank": 0,
            "image_id": "i0", "status": "ok", "bit_depth": 12, "codec_kind": kind,
            "train_dataset": train, "bpp": bpp, "psnr": psnr, "mse": mse, "ms_ssim": 0.98,
            "protocol": "paper", "model_info": info}


def _rows():
    info = json.dumps({"arch": "dcae", "budget": {"epochs": 7, "device": "cpu"}})
    out = [
        _row("jsrt", "dcae", "dcae-jsrt-32", 0.3, 38.0, 4095.0**2 * 1e-4, "jsrt", "learned",
             info),
        _row("jsrt", "dcae", "dcae-jsrt-64", 0.6, 40.0, 4095.0**2 * 5e-5, "jsrt", "learned",
             info),
        _row("openi", "dcae", "dcae-jsrt-32", 0.3, 37.0, 1.0, "jsrt", "learned", info),
    ]
    for k, (bpp, psnr) in enumerate([(0.2, 36.0), (0.4, 40.0), (0.8, 44.0)]):
        out.append(_row("jsrt", "jpeg2000", f"ratio={k}", bpp, psnr, 1.0))
    return pd.DataFrame(out)


def test_merge_puts_our_rows_beside_the_papers_with_rate_and_jpeg2000():
    rows = _rows()
    table = table1_comparison(rows, curves(rows))
    dcae_jsrt = table[(table["method"] == "DCAE") & (table["dataset"] == "JSRT")]
    assert list(dcae_jsrt["setting"]) == ["dcae-jsrt-32", "dcae-jsrt-64"]  # by bpp
    first = dcae_jsrt.iloc[0]
    assert (first["paper_psnr"], first["paper_mse"], first["paper_epochs"]) == (45.37, 0.001, 21)
    assert first["paper_psnr_from_mse"] == pytest.approx(30.0)
    assert (first["bpp"], first["psnr"]) == (0.3, 38.0)
    assert first["mse_01"] == pytest.approx(1e-4)  # MSE on the paper's [0, 1] scale
    assert first["epochs"] == 7 and "device=cpu" in first["training"]
    # JPEG 2000 at 0.3 bpp lies between its 0.2 and 0.4 bpp points (PCHIP in log-rate)
    assert 36.0 < first["jpeg2000_psnr_at_bpp"] < 40.0
    assert dcae_jsrt.iloc[1]["jpeg2000_psnr_at_bpp"] == pytest.approx(
        36.0 + 4.0 * math.log2(0.6 / 0.2), abs=0.3)


def test_rows_that_cannot_be_matched_say_why():
    rows = _rows()
    table = table1_comparison(rows, curves(rows)).set_index(["method", "dataset"])
    assert table.loc[("DCAE", "MXID"), "note"] == "dataset mxid was not run"
    assert table.loc[("AE", "JSRT"), "note"] == "ae was not run on jsrt"
    note = table.loc[("DCAE", "OPENI"), "note"]
    assert note.startswith("no dcae model trained on openi") and "jsrt" in note
    assert math.isnan(table.loc[("DCAE", "OPENI"), "bpp"])
    # nine paper rows, one of them (DCAE on JSRT) expanded to our two settings
    assert len(table) == 10


def test_model_summary_is_short_and_tolerant():
    assert model_summary(None) == "" and model_summary(float("nan")) == ""
    assert model_summary('{"epochs": 3, "wall_s": 12.3456}') == "epochs=3, wall_s=12.35"
    assert model_summary("not json") == "not json"


def test_model_summary_counts_the_training_of_the_model_started_from():
    info = {"budget": {"device": "cpu", "steps": 10000, "wall_s": 600.0, "images_seen": 40000},
            "epochs": 528, "lmbda": 0.002,
            "parent": {"name": "l48", "budget": {"steps": 30848, "wall_s": 2700.0,
                                                 "images_seen": 120000}}}
    text = model_summary(json.dumps(info, sort_keys=True))
    assert "steps=40848" in text and "wall_s=3300" in text and "images_seen=160000" in text
    assert "epochs" not in text and "incl. 30848 steps of the model started from" in text
    alone = model_summary(json.dumps({**info, "parent": None}, sort_keys=True))
    assert "steps=10000" in alone and "epochs=528" in alone and "incl." not in alone
    assert math.isnan(_epochs(json.dumps(info))) and _epochs(json.dumps(
        {**info, "parent": None})) == 528
