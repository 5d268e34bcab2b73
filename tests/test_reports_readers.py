"""The report's "Readers' thresholds" section: an analysed study of the run, found in its
results folder, set beside the metrics' verdicts on the same rate-matched cells."""

from __future__ import annotations

import json

from medbench.reports.build import build_report
from medbench.reports.html import page_order
from tests.study_kit import answers_file, invoke, kept_run


def test_an_analysed_study_shows_beside_the_metrics(tmp_path_factory, tmp_path):
    results, kit = kept_run(tmp_path_factory)
    report = build_report(results, tmp_path / "before")
    assert "No reader study has been analysed for this run" in report.markdown["readers"]
    key = json.loads((kit / "key.json").read_text())
    oracle = answers_file(tmp_path / "o.json", key, "oracle",
                          lambda t: t["correct"] or "left")
    invoke("study", "analyze", kit, oracle)  # into the kit folder, inside the results
    report = build_report(results, tmp_path / "after")
    text = report.markdown["readers"]
    assert f"Study {key['kit_id']} (2afc, 1 reader(s); kit/study.json)" in text
    for codec in ("jpeg2000", "jpegxl"):
        for ratio in ("10:1", "20:1"):
            assert f"| {codec} | {ratio} | 3/3 = 1.00" in text
    assert "too few trials" in text and "PSNR" in text and "not measured" in text
    page = report.index.read_text()
    ids = [part.split('"')[0] for part in page.split('<section id="')[1:]]
    assert ids == page_order(diagnostic_measured=False, readers_measured=True)
    assert ids.index("readers") == 1  # right after the headline: the readers' answer


def test_a_study_of_another_run_is_not_shown(tmp_path_factory, tmp_path):
    results, kit = kept_run(tmp_path_factory)
    other = results / "elsewhere"
    other.mkdir(exist_ok=True)
    (other / "study.json").write_text(json.dumps({"run_id": "another", "kit_id": "x"}))
    report = build_report(results, tmp_path / "r")
    assert "x (" not in report.markdown["readers"]


def test_a_rating_study_shows_its_mean_ratings(tmp_path_factory, tmp_path):
    from medbench.benchmark.store import ResultsStore
    from medbench.study.analysis import analyze, write
    from medbench.study.answers import Answers
    from tests.test_study_analysis import synthetic_key

    results, _kit = kept_run(tmp_path_factory)
    store = ResultsStore.open_existing(results)
    run_id = store.latest_run()
    store.close()
    key = dict(synthetic_key(n_images=3, ratios=(10.0,)), protocol="rating", run_id=run_id,
               kit_id="rating-kit")
    for t in key["trials"]:
        t["correct"] = None
        t["kind"] = "reference" if t["kind"] == "catch" else t["kind"]
    ratings = {t["id"]: 4 if t["codec"] else 5 for t in key["trials"]}
    reader = Answers(tmp_path / "x.json", "x", ratings, dict.fromkeys(ratings, 1), 0)
    write(analyze(key, [reader]), results / "rating-study")
    try:
        text = build_report(results, tmp_path / "r").markdown["readers"]
    finally:  # the results folder is shared with other tests
        __import__("shutil").rmtree(results / "rating-study")
    assert "Study rating-kit (rating, 1 reader(s); rating-study/study.json)" in text
    assert "| original |" in text and "5.00" in text and "| a | 10:1 |" in text


def test_a_rating_of_one_and_a_study_json_out_of_shape_never_end_the_report():
    import pandas as pd

    from medbench.reports.readers import readers_section

    one = {"kit_id": "k1", "protocol": "rating", "readers": ["a"], "path": "s/study.json",
           "agreement": "not computed: one reader", "thresholds": [],
           "cells": [{"scope": "pooled", "codec": "jpeg2000", "ratio": 10.0, "n": 1,
                      "mean_rating": 4.0, "ci_low": None, "ci_high": None}]}
    bad = {"kit_id": "k2", "protocol": "2afc", "readers": ["a"], "path": "t/study.json",
           "cells": "edited"}
    md, html = readers_section([one, bad], pd.DataFrame(), pd.DataFrame())
    assert "| jpeg2000 | 10:1 | 1 | 4.00 [n/a, n/a] |" in md
    assert "t/study.json could not be shown (" in md and "t/study.json could not" in html


def test_a_study_json_nested_too_deep_is_a_note(tmp_path):
    from medbench.reports.readers import find_studies

    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "study.json").write_text("[" * 100_000 + "]" * 100_000)
    found, notes = find_studies(tmp_path, "run")
    assert found == [] and notes[0].startswith(f"{tmp_path / 's' / 'study.json'} could not be")
