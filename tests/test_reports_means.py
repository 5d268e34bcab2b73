"""setting_means: exact images, pooled PSNR, intervals; every report consumer agrees on it."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from medbench.reports.bodyparts import body_part_settings
from medbench.reports.compare import compare, format_comparison
from medbench.reports.curves import curves
from medbench.reports.means import ci_halfwidth, setting_means
from medbench.reports.summary import format_table, summarize
from medbench.reports.table1 import table1_comparison


def _row(psnr, *, image, setting="dcae-jsrt-32", codec="dcae", train="jsrt", bits=12, bpp=0.3,
         rank=0):
    peak = 2.0**bits - 1
    mse = 0.0 if math.isinf(psnr) else peak**2 / 10 ** (psnr / 10)
    return {"dataset": "jsrt", "codec": codec, "train_dataset": train, "setting": setting,
            "setting_rank": rank, "image_id": image, "status": "ok", "bit_depth": bits,
            "codec_kind": "learned" if train else "classical", "bpp": bpp, "mse": mse,
            "psnr": psnr, "ssim": 0.9, "ms_ssim": 0.95, "max_abs_error": 3, "encode_ms": 1.0,
            "decode_ms": 2.0, "protocol": "paper", "model_info": None, "body_part": "CHEST"}


def _run(finite=(30.0, 34.0)):
    """A learned codec at one lossy setting where image i2 decoded exactly, and an anchor."""
    rows = [_row(p, image=f"i{k}") for k, p in enumerate(finite)]
    rows.append(_row(math.inf, image="i2"))
    for k, (bpp, psnr) in enumerate([(0.2, 28.0), (0.4, 33.0), (0.8, 38.0)]):
        rows += [_row(psnr, image=f"i{i}", setting=f"ratio={k}", codec="jpeg2000", train=None,
                      bpp=bpp, rank=k) for i in range(3)]
    return pd.DataFrame(rows)


def _line(table, setting="dcae-jsrt-32"):
    return table[table["setting"] == setting].iloc[0]


def test_exact_images_are_counted_and_left_out_of_the_mean():
    line = _line(setting_means(_run()))
    assert (line["images"], line["exact_images"]) == (3, 1)
    assert line["psnr"] == pytest.approx(32.0)
    assert line["psnr_ci"] == pytest.approx(ci_halfwidth([30.0, 34.0]))
    # Pooled: the exact image counts with MSE 0 (normalised MSEs 1e-3, 10**-3.4, 0).
    nmse = (1e-3 + 10**-3.4) / 3
    assert line["nmse"] == pytest.approx(nmse)
    assert line["psnr_pooled"] == pytest.approx(-10 * math.log10(nmse))
    assert line["bpp"] == pytest.approx(0.3) and line["train_dataset"] == "jsrt"
    classical = setting_means(_run())
    assert classical.loc[classical["codec"] == "jpeg2000", "train_dataset"].isna().all()
    assert list(classical["setting"]) == ["dcae-jsrt-32", "ratio=0", "ratio=1", "ratio=2"]


def test_summary_curve_table1_body_parts_and_compare_agree_on_the_mean_psnr():
    rows = _run()
    all_curves = curves(rows)
    summary = _line(summarize(rows))
    point = _line(next(c for c in all_curves if c.codec == "dcae").points)
    table1 = table1_comparison(rows, all_curves)
    ours = _line(table1[(table1["method"] == "DCAE") & (table1["dataset"] == "JSRT")])
    parts = _line(body_part_settings(rows))
    compared = _line(compare(rows, rows.copy()).table)
    means = [summary["psnr"], point["psnr"], ours["psnr"], parts["psnr"],
             compared["psnr_base"], compared["psnr_new"]]
    assert means == pytest.approx([32.0] * 6)
    pooled = [summary["psnr_pooled"], point["psnr_pooled"], ours["psnr_pooled"],
              parts["psnr_pooled"], compared["psnr_pooled_base"]]
    assert pooled == pytest.approx([pooled[0]] * 5) and math.isfinite(pooled[0])
    assert summary["exact_images"] == point["exact_images"] == ours["exact_images"] == 1
    assert ours["mse_01"] == pytest.approx(_line(setting_means(rows))["nmse"])
    assert "1 of 3 images decoded exactly" in next(c for c in all_curves if c.codec == "dcae"
                                                   ).notes[0]


def test_compare_fails_a_3_db_drop_on_every_image_but_an_exact_one():
    base = _run()
    worse = _run(finite=(27.0, 31.0))  # -3 dB on both lossy images, i2 still exact
    outcome = compare(base, worse)
    assert not outcome.passed
    problems = [r for r in outcome.regressions if r.startswith("jsrt dcae dcae-jsrt-32")]
    assert problems[0] == "jsrt dcae dcae-jsrt-32: PSNR -3.000 dB (tolerance -0.05)"
    assert problems[1].startswith("jsrt dcae dcae-jsrt-32: PSNR of pooled MSE -3.000 dB")
    assert "FAIL: PSNR -3.000 dB" in format_comparison(outcome)


def test_compare_catches_an_exact_image_lost_by_the_pooled_psnr():
    # i2 goes from exact to 36 dB: the finite mean rises (30, 34 -> 30, 34, 36), yet
    # every image got worse or stayed; only the pooled PSNR sees it.
    worse = _run()
    worse.loc[worse["image_id"].eq("i2") & worse["codec"].eq("dcae"), ["psnr", "mse"]] = [
        36.0, 4095.0**2 * 10**-3.6]
    outcome = compare(_run(), worse)
    assert outcome.regressions and all("pooled" in r for r in outcome.regressions)


def test_a_setting_whose_every_image_is_exact():
    rows = pd.DataFrame([_row(math.inf, image=f"i{k}", setting="lossless", codec="jpegls",
                              train=None, bpp=4.0) for k in range(3)])
    line = setting_means(rows).iloc[0]
    assert (line["psnr"], line["psnr_pooled"], line["exact_images"]) == (math.inf, math.inf, 3)
    assert math.isnan(line["psnr_ci"])
    (curve,) = curves(rows)
    assert curve.points.empty and curve.lossless_bpp == 4.0
    same = compare(rows, rows.copy())
    assert same.passed and same.table["d_psnr"].iloc[0] == 0
    assert same.table["d_psnr_pooled"].iloc[0] == 0
    assert "inf" in format_table(summarize(rows))


def test_mixed_bit_depths_pool_the_mse_on_the_unit_scale():
    # 30 dB on an 8-bit image and 40 dB on a 12-bit one: normalised MSEs 1e-3 and 1e-4.
    rows = pd.DataFrame([_row(30.0, image="a", bits=8), _row(40.0, image="b", bits=12)])
    line = setting_means(rows).iloc[0]
    assert line["nmse"] == pytest.approx(5.5e-4)
    assert line["psnr_pooled"] == pytest.approx(-10 * math.log10(5.5e-4))  # 32.60 dB
    assert line["psnr"] == pytest.approx(35.0)
    rows.loc[0, "mse"] = np.nan  # an image without an MSE: no honest pool
    assert math.isnan(setting_means(rows).iloc[0]["psnr_pooled"])


def test_settings_with_no_ok_row_keep_a_line_with_counts():
    rows = _run()
    rows.loc[rows["setting"] == "ratio=2", "status"] = "error"
    line = _line(setting_means(rows), "ratio=2")
    assert (line["images"], line["errors"], line["exact_images"]) == (0, 3, 0)
    assert math.isnan(line["psnr"]) and math.isnan(line["psnr_pooled"])
    assert "–" in format_table(summarize(rows))  # one missing-value mark everywhere
    assert setting_means(rows.iloc[:0]).empty


def test_ci_halfwidth_matches_the_t_interval():
    # mean 3, s = sqrt(2.5), n = 5: half-width = t(0.975, 4) * s / sqrt(5) = 1.9632
    assert ci_halfwidth(np.array([1.0, 2, 3, 4, 5])) == pytest.approx(1.963243, abs=1e-6)
    low, high = stats.t.interval(0.95, 4, loc=3, scale=stats.sem([1, 2, 3, 4, 5]))
    assert ci_halfwidth([1.0, 2, 3, 4, 5]) == pytest.approx((high - low) / 2)


def test_ci_is_undefined_for_one_image_or_an_infinite_mean():
    assert math.isnan(ci_halfwidth([4.0]))
    assert math.isnan(ci_halfwidth([40.0, math.inf]))
    assert ci_halfwidth([2.0, 2.0, 2.0]) == 0.0


def test_ci_narrows_with_more_images():
    rng = np.random.default_rng(1)
    few, many = rng.normal(40, 2, 5), rng.normal(40, 2, 500)
    assert ci_halfwidth(many) < ci_halfwidth(few) / 5


def _grouped_rows(seed: int = 0, groups: int = 12, per_group: int = 5) -> pd.DataFrame:
    """PSNRs where the patient matters: a large per-group effect, little within."""
    rng = np.random.default_rng(seed)
    rows = []
    for g in range(groups):
        effect = rng.normal(0, 3.0)
        for i in range(per_group):
            rows.append({"dataset": "nih", "codec": "jpeg", "setting": "q=50", "status": "ok",
                         "image_id": f"p{g}_{i}", "group_id": f"p{g}",
                         "psnr": 40 + effect + rng.normal(0, 0.2), "bpp": 0.5,
                         "mse": 1.0, "bit_depth": 8})
    return pd.DataFrame(rows)


def test_shared_groups_get_a_cluster_bootstrap_wider_than_the_iid_interval():
    rows = _grouped_rows()
    line = setting_means(rows).iloc[0]
    iid = ci_halfwidth(rows["psnr"])
    assert line["ci_method"] == "cluster bootstrap (2000 resamples of 12 groups)"
    rows["group_kind"] = "patient"  # the label names what was resampled
    assert setting_means(rows).iloc[0]["ci_method"] == \
        "cluster bootstrap (2000 resamples of 12 patients)"
    assert line["groups"] == 12
    assert line["psnr_ci"] > 1.5 * iid  # 5 near-copies per patient are not 5 samples
    assert setting_means(rows).iloc[0]["psnr_ci"] == line["psnr_ci"]  # seeded


def test_one_image_per_group_keeps_the_student_t_interval():
    rows = _grouped_rows(per_group=1)
    line = setting_means(rows).iloc[0]
    assert line["ci_method"] == ("student-t, assuming independent images (no patient "
                                 "grouping known)")
    assert line["psnr_ci"] == pytest.approx(ci_halfwidth(rows["psnr"]))
    rows["group_kind"] = "patient"  # one image per known patient: nothing assumed
    assert setting_means(rows).iloc[0]["ci_method"] == "student-t (one image per patient)"


def test_too_few_groups_give_no_interval_and_say_why():
    """sample: 11 tiles of 2 radiographs are not 11 independent images."""
    rows = _grouped_rows(groups=2, per_group=6).assign(group_kind="radiograph")
    line = setting_means(rows).iloc[0]
    assert math.isnan(line["psnr_ci"]) and math.isnan(line["bpp_ci"])
    assert line["ci_method"] == ("none: 12 images from only 2 radiographs (a cluster "
                                 "bootstrap needs at least 10)")
    assert line["groups"] == 2 and line["group_kind"] == "radiograph"


def test_the_method_is_decided_on_the_values_each_metric_used():
    """PSNR leaves out exact images: with them gone, its groups can fall below the
    minimum while the other metrics keep theirs, and the label says so."""
    rows = _grouped_rows(groups=12, per_group=2)
    exact = rows["group_id"].isin([f"p{g}" for g in range(4)])
    rows.loc[exact, "psnr"] = math.inf  # 8 groups keep a finite PSNR, 12 a bpp
    line = setting_means(rows).iloc[0]
    assert math.isnan(line["psnr_ci"]) and not math.isnan(line["bpp_ci"])
    assert line["ci_method"] == ("bpp: cluster bootstrap (2000 resamples of 12 groups); "
                                 "psnr: none: 16 images from only 8 groups (a cluster "
                                 "bootstrap needs at least 10)")


def test_batch_size_says_which_latencies_are_amortized():
    rows = _run()
    table = setting_means(rows)
    assert (table["batch_size"] == 1).all()  # rows without the column: one image a call
    rows["batch_size"] = np.where(rows["codec"] == "dcae", 4, 1)
    table = setting_means(rows).set_index("codec")
    assert table.loc["dcae", "batch_size"] == 4
    assert (table.loc["jpeg2000", "batch_size"] == 1).all()


def test_error_rows_of_unreadable_images_count_on_their_learned_setting():
    rows = _run()
    unreadable = {**_row(math.nan, image="bad"), "status": "error", "train_dataset": None}
    table = setting_means(pd.concat([rows, pd.DataFrame([unreadable])], ignore_index=True))
    learned = table[table["codec"] == "dcae"]
    assert len(learned) == 1  # not a second line with no train dataset
    assert learned.iloc[0]["errors"] == 1 and learned.iloc[0]["train_dataset"] == "jsrt"


def test_a_cluster_bootstrap_takes_the_confidence_asked_for():
    from medbench.reports.means import interval

    rng = np.random.default_rng(0)
    values = rng.normal(size=40)
    groups = np.repeat(np.arange(20), 2).astype(str)
    wide, narrow = (interval(values, groups, "patient", level) for level in (0.95, 0.8))
    assert wide.method.startswith("cluster bootstrap") and narrow.method == wide.method
    assert narrow.halfwidth < 0.8 * wide.halfwidth  # a narrower level, a narrower interval


def test_bootstraps_drawn_together_equal_each_setting_s_own():
    """setting_means draws the bootstraps of all settings at once (one matrix of resample
    counts per number of groups); each setting's interval is still its own bootstrap's
    (the same seed, its own groups), to summation noise, with its own group sizes."""
    from medbench.reports.means import _cluster_bootstraps

    settings = []
    for i, (groups, per_group) in enumerate([(12, 5), (12, 3), (15, 4), (12, 5)]):
        part = _grouped_rows(groups=groups, per_group=per_group, seed=i)
        settings.append(part.assign(setting=f"s{i}", psnr=part["psnr"] + i))
    rows = pd.concat(settings, ignore_index=True)
    lines = setting_means(rows).set_index("setting")
    for i, part in enumerate(settings):
        _, index = np.unique(part["group_id"].astype(str), return_inverse=True)
        alone = _cluster_bootstraps(part[["psnr", "bpp"]].to_numpy(float).T, index, 0.95)
        assert lines.at[f"s{i}", "psnr_ci"] == pytest.approx(alone[0], rel=1e-12)
        assert lines.at[f"s{i}", "bpp_ci"] == pytest.approx(alone[1], abs=1e-12)
    assert lines.at["s0", "psnr_ci"] != lines.at["s1", "psnr_ci"]
    # and each is the textbook cluster bootstrap, drawn resample by resample
    part = settings[2]
    _, index = np.unique(part["group_id"].astype(str), return_inverse=True)
    sums = np.bincount(index, weights=part["psnr"].to_numpy(float))
    counts = np.bincount(index).astype(float)
    draws = np.random.default_rng(20031).integers(0, len(sums), size=(2000, len(sums)))
    means = sums[draws].sum(axis=1) / counts[draws].sum(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    assert lines.at["s2", "psnr_ci"] == pytest.approx((high - low) / 2, rel=1e-12)
