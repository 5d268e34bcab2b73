"""From observed sites to the observer table: same sites, exact lossless ratio, intervals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from medbench.benchmark.observers.summary import COLUMNS, summarize

CONTRASTS = (0.05, 0.1)


def site_rows(groups=12, per_image=6, seed=0, skips=True):
    """Sites of an original: per image (its own patient) ``per_image`` sites per contrast;
    channel vectors of white noise with a mean shift proportional to the contrast."""
    rng = np.random.default_rng(seed)
    shift = np.array([3.0, 1.0, -0.5])
    rows = []
    for g in range(groups):
        for c_index, contrast in enumerate(CONTRASTS):
            for k in range(per_image):
                absent = rng.normal(0, 1, 3)
                present = rng.normal(0, 1, 3) + shift * contrast * 10
                rows.append({
                    "dataset": "d", "image_id": f"img{g}", "group_id": f"p{g}", "codec": "",
                    "setting": "", "site": c_index * per_image + k, "diameter_mm": 6.0,
                    "contrast": contrast, "status": "ok", "note": None,
                    "cho_present": present, "cho_absent": absent,
                    "npwe_present": float(present @ shift), "npwe_absent": float(absent @ shift),
                    "spacing_source": "ASSUMED 430 mm"})
        if skips and g == 0:
            rows.append({**rows[-1], "site": 99, "status": "skipped", "contrast": 0.1,
                         "note": "the nodule would saturate the pixel range",
                         "cho_present": None, "cho_absent": None})
            rows.append({**rows[-1], "site": -1, "status": "skipped", "contrast": 0.05,
                         "note": "only 4 of 6 sites fit in the lung fields (rule)"})
    return pd.DataFrame(rows)


def coded(original: pd.DataFrame, codec: str, setting: str, noise: float = 0.0, seed=1):
    rng = np.random.default_rng(seed)
    cell = original[original["status"] == "ok"].copy()
    cell["codec"], cell["setting"] = codec, setting
    for name in ("cho_present", "cho_absent"):
        cell[name] = [v.copy() + (rng.normal(0, noise, 3) if noise else 0.0) for v in cell[name]]
    shift = np.array([3.0, 1.0, -0.5])
    cell["npwe_present"] = [float(v @ shift) for v in cell["cho_present"]]
    cell["npwe_absent"] = [float(v @ shift) for v in cell["cho_absent"]]
    return cell


def results(cells, images, seen=()):
    rows = []
    for codec, setting, ratio in cells:
        for image in images:
            rows.append({"dataset": "d", "image_id": image, "codec": codec, "setting": setting,
                         "status": "ok", "bpp": 8 / ratio, "ratio": ratio,
                         "train_dataset": None, "setting_rank": 0,
                         "seen_in_training": image in seen})
    return pd.DataFrame(rows)


def table_for(sites, rows):
    return summarize(sites, rows, seed=0, run_id="r", replicates=300)


@pytest.fixture(scope="module")
def table():
    original = site_rows()
    sites = pd.concat([original, coded(original, "jpeg2000", "lossless"),
                       coded(original, "jpeg", "q=5", noise=3.0)], ignore_index=True)
    images = [f"img{g}" for g in range(12)]
    return table_for(sites, results([("jpeg2000", "lossless", 2.5), ("jpeg", "q=5", 40.0)],
                                    images))


def test_the_table_has_its_columns_and_a_row_per_cell_observer_and_condition(table):
    assert list(table.columns) == list(COLUMNS)
    assert len(table) == 3 * 2 * 2  # original and two cells x two observers x two contrasts
    assert set(table["codec"]) == {"original", "jpeg2000", "jpeg"}
    assert (table["codec"].iloc[:4] == "original").all()


def test_a_lossless_cell_has_a_ratio_of_exactly_one(table):
    lossless = table[table["setting"] == "lossless"]
    original = table[table["codec"] == "original"]
    assert (lossless["dprime_ratio"] == 1.0).all()
    assert (lossless["dprime_ratio_low"] == 1.0).all()
    assert (lossless["dprime_ratio_high"] == 1.0).all()
    assert list(lossless["dprime"]) == list(original["dprime"])
    assert lossless["bpp"].iloc[0] == pytest.approx(8 / 2.5)


def test_added_noise_lowers_detectability_and_the_interval_shows_it(table):
    noisy = table[table["codec"] == "jpeg"]
    assert (noisy["dprime_ratio"] < 0.8).all()
    assert (noisy["dprime_ratio_high"] < 1).all()
    assert (noisy["dprime_low"] <= noisy["dprime"]).all()
    assert (noisy["dprime"] <= noisy["dprime_high"]).all()


def test_dprime_grows_with_contrast_on_the_original(table):
    original = table[table["codec"] == "original"]
    for _observer, rows in original.groupby("observer"):
        assert rows.sort_values("contrast")["dprime"].is_monotonic_increasing


def test_counts_intervals_skips_and_notes(table):
    row = table[(table["codec"] == "original") & (table["contrast"] == 0.1)].iloc[0]
    assert row["n_present"] == row["n_absent"] == 72 and row["n_groups"] == 12
    assert row["n_images"] == 12
    assert row["ci_method"].startswith("cluster bootstrap over 12 patient groups")
    assert row["n_skipped"] == 1 and "saturate" in row["note"] and "ASSUMED" in row["note"]
    shortfall = table[(table["codec"] == "original") & (table["contrast"] == 0.05)].iloc[0]
    assert shortfall["n_skipped"] == 2 and "only 4 of 6" in shortfall["note"]
    cho = table[table["observer"] == "cho"]["ci_method"]
    assert cho.str.contains("2-fold by patient").all()


def test_a_cell_compares_with_the_original_on_its_own_sites_only():
    original = site_rows(skips=False)
    cell = coded(original, "jpeg2000", "lossless")
    cell = cell[cell["image_id"] != "img3"]  # this cell failed on one image
    images = [f"img{g}" for g in range(12)]
    table = table_for(pd.concat([original, cell], ignore_index=True),
                      results([("jpeg2000", "lossless", 2.5)], images))
    lossless = table[table["codec"] == "jpeg2000"]
    full = table[table["codec"] == "original"]
    assert (lossless["n_images"] == 11).all() and (lossless["dprime_ratio"] == 1.0).all()
    assert (lossless["dprime_original"].to_numpy() != full["dprime"].to_numpy()).any()


def test_few_patients_give_no_interval_and_say_why():
    original = site_rows(groups=6, skips=False)
    table = table_for(original, results([], []))
    assert table["dprime_low"].isna().all()
    assert table["ci_method"].str.startswith("none: 6 patient groups").all()


def test_images_a_learned_model_trained_on_are_left_out_of_every_row():
    original = site_rows(skips=False)
    cell = coded(original, "dcae", "m1")
    images = [f"img{g}" for g in range(12)]
    table = table_for(pd.concat([original, cell], ignore_index=True),
                      results([("dcae", "m1", 30.0)], images, seen={"img0", "img1"}))
    assert (table["n_images"] == 10).all()
    assert table["note"].str.contains("2 image\\(s\\) a learned model trained on left out").all()


def test_identical_decodes_are_a_dprime_of_zero_not_a_failure():
    original = site_rows(skips=False)
    blank = coded(original, "jpeg", "q=1")
    blank["cho_present"] = blank["cho_absent"]
    blank["npwe_present"] = blank["npwe_absent"]
    images = [f"img{g}" for g in range(12)]
    table = table_for(pd.concat([original, blank], ignore_index=True),
                      results([("jpeg", "q=1", 90.0)], images))
    rows = table[table["codec"] == "jpeg"]
    assert (rows["dprime"] == 0.0).all() and (rows["auc"] == 0.5).all()
    assert (rows["dprime_ratio"] == 0.0).all()
    assert rows["note"].str.contains("identical at every site").all()
