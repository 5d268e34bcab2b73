"""The iMRMC file: its layout, and the claim that each reader × modality's AUC over its
cases is exactly that reader's 2AFC proportion correct."""

from __future__ import annotations

import pytest

from medbench.study import StudyError
from medbench.study.analysis import analyze
from medbench.study.imrmc import write_imrmc
from tests.test_study_analysis import reader, synthetic_key


def auc(positive, negative):
    pairs = [(p > n) + 0.5 * (p == n) for p in positive for n in negative]
    return sum(pairs) / len(pairs)


def test_the_auc_of_each_reader_and_modality_is_its_proportion_correct(tmp_path):
    key = synthetic_key(n_images=8, ratios=(10.0, 20.0))
    truth = {("a", 10.0): 0.6, ("a", 20.0): 0.9, ("b", 10.0): 0.5, ("b", 20.0): 0.7}
    result = analyze(key, [reader(key, f"r{i}", truth, i) for i in range(2)])
    text = write_imrmc(key, result.trials, tmp_path / "s.imrmc").read_text()
    head, data = text.split("BEGIN DATA:\n")
    assert "NR: 2" in head and "N0: 8" in head and "N1: 8" in head and "NM: 4" in head
    lines = [line.split(",") for line in data.strip().splitlines()]
    truth_of = {int(c): int(s) for r, c, m, s in lines if r == "-1"}
    assert sorted(truth_of.values()) == [0] * 8 + [1] * 8
    cells = result.cells.set_index(["scope", "codec", "ratio"])
    for r, name in ((1, "r0"), (2, "r1")):
        for codec, ratio in truth:
            mine = [(int(c), int(s)) for rr, c, m, s in lines
                    if rr == str(r) and m == f"{codec}@{ratio:g}"]
            positive = [s for c, s in mine if truth_of[c] == 1]
            negative = [s for c, s in mine if truth_of[c] == 0]
            assert len(positive) == len(negative) == 8
            assert auc(positive, negative) == pytest.approx(
                cells.loc[(name, codec, ratio), "proportion"])


def test_a_rating_study_has_no_imrmc_file(tmp_path):
    key = dict(synthetic_key(n_images=2, ratios=(10.0,)), protocol="rating")
    with pytest.raises(StudyError, match="needs a paired study"):
        write_imrmc(key, None, tmp_path / "s.imrmc")
