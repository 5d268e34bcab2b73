"""The statistics of ``study analyze``, pinned to outside references, and its verdicts."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from medbench.study.analysis import (
    analyze,
    clopper_pearson,
    detectable_from,
    fleiss_kappa,
    kendall_w,
    write,
)
from medbench.study.answers import Answers


def test_clopper_pearson_matches_r_binom_test():
    # R 4.x: binom.test(5, 10)$conf.int, binom.test(0, 10)$conf.int, binom.test(10, 10)
    assert clopper_pearson(5, 10) == pytest.approx((0.1870860, 0.8129140), abs=1e-7)
    assert clopper_pearson(0, 10) == pytest.approx((0.0, 0.3084971), abs=1e-7)
    assert clopper_pearson(10, 10) == pytest.approx((0.6915029, 1.0), abs=1e-7)


def test_detectable_from_is_the_least_proportion_above_chance():
    assert detectable_from(10) == 0.9  # 9/10: p = 11/1024; 8/10: p = 56/1024 > 0.05
    assert math.isnan(detectable_from(4))  # even 4/4 has p = 1/16
    assert detectable_from(5) == 1.0


def test_fleiss_kappa_matches_the_worked_example():
    # Fleiss (1971) as worked on Wikipedia's "Fleiss' kappa": 10 subjects, 14 raters
    table = [[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0],
             [2, 2, 8, 1, 1], [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2],
             [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]]
    assert fleiss_kappa(np.array(table)) == pytest.approx(0.20993, abs=5e-6)


def test_kendall_w_is_the_mean_spearman_identity():
    # without ties W = ((m - 1) * mean pairwise Spearman rho + 1) / m
    rng = np.random.default_rng(0)
    base = rng.normal(size=12)
    table = np.column_stack([base + rng.normal(0, 0.7, 12) for _ in range(4)])
    rhos = [stats.spearmanr(table[:, a], table[:, b])[0]
            for a, b in itertools.combinations(range(4), 2)]
    assert kendall_w(table) == pytest.approx((3 * np.mean(rhos) + 1) / 4, rel=1e-12)
    assert kendall_w(np.column_stack([base, base, base])) == pytest.approx(1.0)


def synthetic_key(n_images=30, ratios=(10.0, 20.0, 40.0)):
    trials, index = [], 0
    for codec in ("a", "b"):
        for ratio in ratios:
            for k in range(n_images):
                index += 1
                trials.append({"id": f"t{index:03d}", "kind": "test", "dataset": "d",
                               "image_id": f"i{k}", "codec": codec, "ratio": ratio,
                               "correct": "left" if k % 2 else "right"})
    for k in range(6):
        index += 1
        trials.append({"id": f"t{index:03d}", "kind": "catch", "dataset": "d",
                       "image_id": f"i{k}", "codec": None, "ratio": None, "correct": None})
    return {"kit_id": "k", "run_id": "r", "protocol": "2afc", "codecs": ["a", "b"],
            "ratios": list(ratios), "images": [f"d/i{k}" for k in range(n_images)],
            "trials": trials}


def reader(key, name, p_correct, seed):
    """A simulated reader right with probability p_correct[(codec, ratio)]."""
    rng = np.random.default_rng(seed)
    answers = {}
    for t in key["trials"]:
        if t["kind"] == "catch":
            answers[t["id"]] = "left"
            continue
        right = rng.random() < p_correct[t["codec"], t["ratio"]]
        wrong = "right" if t["correct"] == "left" else "left"
        answers[t["id"]] = t["correct"] if right else wrong
    return Answers(__import__("pathlib").Path(f"{name}.json"), name, answers,
                   dict.fromkeys(answers, 1000), 0)


def test_a_codec_seen_at_high_ratios_gets_its_threshold(tmp_path):
    key = synthetic_key()
    truth = {("a", 10.0): 0.5, ("a", 20.0): 0.55, ("a", 40.0): 0.97,
             ("b", 10.0): 0.5, ("b", 20.0): 0.5, ("b", 40.0): 0.5}
    result = analyze(key, [reader(key, f"r{i}", truth, i) for i in range(3)])
    th = result.thresholds.set_index("codec")
    assert th.loc["a", "first_detected"] == 40.0
    assert th.loc["a", "highest_visually_lossless"] == 20.0
    assert th.loc["a", "threshold_75"].endswith(":1")
    low, high = 20.0, 40.0
    assert low < float(th.loc["a", "threshold_75"].split(":")[0]) < high
    assert th.loc["b", "highest_visually_lossless"] == 40.0
    assert th.loc["b", "threshold_75"] == "not reached up to 40:1"
    assert (result.catch["share_left"] == 1.0).all()  # these readers always say left
    assert result.agreement.startswith("Fleiss' kappa")
    paths = write(result, tmp_path)
    assert [p.name for p in paths] == ["study.csv", "study.md", "study.json", "study.png"]
    cells = pd.read_csv(tmp_path / "study.csv")
    assert set(cells["scope"]) == {"pooled", "r0", "r1", "r2"}
    assert "| a | 20.0 | 40.0 |" in (tmp_path / "study.md").read_text()


def test_ratings_get_means_with_intervals():
    key = synthetic_key(n_images=4, ratios=(10.0,))
    key["protocol"] = "rating"
    for t in key["trials"]:
        t["correct"] = None
        if t["kind"] == "catch":
            t["kind"] = "reference"
    people = [Answers(__import__("pathlib").Path(f"{n}.json"), n,
                      {t["id"]: (5 if t["codec"] is None else 3 + (t["codec"] == "a"))
                       for t in key["trials"]}, {t["id"]: 1 for t in key["trials"]}, 0)
              for n in ("x", "y")]
    result = analyze(key, people)
    pooled = result.cells[result.cells["scope"] == "pooled"].set_index("codec")
    assert pooled.loc["a", "mean_rating"] == 4 and pooled.loc["b", "mean_rating"] == 3
    assert pooled.loc["original", "mean_rating"] == 5
    assert result.agreement.startswith("Kendall's W 1.00")
