"""medbench compare: identical results pass; planted regressions, miscounted bytes, other
images and changed streams fail."""

from __future__ import annotations

import math
import re

import pandas as pd
import pytest
from click.testing import CliRunner

from medbench.benchmark.runner import RunConfig, run
from medbench.cli import main
from medbench.errors import MedbenchError
from medbench.reports.compare import Tolerances, compare, format_comparison, load_results


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """A real small run (folder with store and results.csv) and its rows."""
    out = tmp_path_factory.mktemp("baseline")
    config = RunConfig(codecs=["jpeg", "jpeg2000"], datasets=["sample"], limit=2, repeats=0)
    return out, run(config, out).rows


def planted(rows: pd.DataFrame, column: str, change, setting="q=50") -> pd.DataFrame:
    rows = rows.copy()
    cell = (rows["codec"] == "jpeg") & (rows["setting"] == setting)
    rows.loc[cell, column] = change(rows.loc[cell, column])
    return rows


def recoded(rows: pd.DataFrame, factor: float, library: str | None = "another libjpeg",
            setting="q=50") -> pd.DataFrame:
    """``rows`` as if jpeg ``setting`` had been coded again into ``factor`` times the bytes
    (new streams, bpp consistent with them), by ``library`` (None: the same library)."""
    rows = rows.copy()
    cell = (rows["codec"] == "jpeg") & (rows["setting"] == setting)
    rows.loc[cell, "bytes"] = (rows.loc[cell, "bytes"] * factor).round().astype(int)
    rows.loc[cell, "bpp"] = 8.0 * rows.loc[cell, "bytes"] / (rows.loc[cell, "height"]
                                                              * rows.loc[cell, "width"])
    rows.loc[cell, "stream_sha256"] = [f"{i:064x}" for i in range(int(cell.sum()))]
    if library is not None:
        rows.loc[cell, "codec_library"] = library
    return rows


def test_identical_results_pass(results):
    _, rows = results
    outcome = compare(rows, rows.copy())
    assert outcome.passed and len(outcome.table) == 16
    assert (outcome.table["verdict"] == "ok").all()
    lossless = outcome.table[outcome.table["setting"] == "lossless"].iloc[0]
    assert math.isinf(lossless["psnr_base"]) and lossless["d_psnr"] == 0


def test_a_planted_psnr_drop_of_0_1_db_fails(results):
    _, rows = results
    outcome = compare(rows, planted(rows, "psnr", lambda v: v - 0.1))
    assert not outcome.passed
    assert len(outcome.regressions) == 1
    assert outcome.regressions[0].startswith("sample jpeg q=50: PSNR -0.100 dB")
    # A looser tolerance lets it pass; a PSNR gain never fails.
    assert compare(rows, planted(rows, "psnr", lambda v: v - 0.1), Tolerances(psnr=0.2)).passed
    assert compare(rows, planted(rows, "psnr", lambda v: v + 1.0)).passed


def test_ms_ssim_drop_and_bpp_rise_fail(results):
    _, rows = results
    assert not compare(rows, planted(rows, "ms_ssim", lambda v: v - 0.002)).passed
    assert compare(rows, planted(rows, "ms_ssim", lambda v: v - 0.0005)).passed
    # Another library's bytes are held to the tolerances only.
    worse = compare(rows, recoded(rows, 1.02))  # (bytes rounded: +2.0x %)
    [problem] = [r.split(": ")[1] for r in worse.regressions]
    assert re.fullmatch(r"bpp \+2\.0\d % \(tolerance \+1 %\)", problem)
    assert compare(rows, recoded(rows, 1.005)).passed


def test_cells_in_only_one_result_are_flagged(results):
    _, rows = results
    fewer = rows[~((rows["codec"] == "jpeg2000") & (rows["setting"] == "ratio=80"))]
    outcome = compare(rows, fewer)
    assert outcome.regressions == ["sample jpeg2000 ratio=80: missing in NEW"]
    assert compare(fewer, rows).regressions == ["sample jpeg2000 ratio=80: missing in BASELINE"]
    allowed = compare(rows, fewer, Tolerances(allow_missing=True))
    assert allowed.passed
    assert "FAIL: missing in NEW" in format_comparison(outcome)
    text = format_comparison(allowed)
    assert "allowed: missing in NEW" in text and "FAIL" not in text


def test_new_errors_fail(results):
    _, rows = results
    broken = rows.copy()
    first = broken.index[(broken["codec"] == "jpeg") & (broken["setting"] == "q=5")][0]
    broken.loc[first, ["status", "error"]] = ["error", "simulated"]
    outcome = compare(rows, broken)
    assert any("errors 0 -> 1" in r for r in outcome.regressions)


def test_folder_csv_and_store_load_the_same_rows(results, tmp_path):
    folder, rows = results
    from_folder, label = load_results(folder)
    assert "run " in label
    from_csv, _ = load_results(folder / "results.csv")
    assert len(from_folder) == len(from_csv) == len(rows)
    assert compare(from_folder, from_csv).passed
    with pytest.raises(MedbenchError, match="neither"):
        load_results(tmp_path)
    (tmp_path / "x.csv").write_text("a,b\n1,2\n")
    with pytest.raises(MedbenchError, match="lacks the result columns"):
        load_results(tmp_path / "x.csv")


def test_cli_exit_codes(results, tmp_path):
    folder, rows = results
    bad = tmp_path / "bad.csv"
    planted(rows, "psnr", lambda v: v - 0.1).to_csv(bad, index=False)
    runner = CliRunner()
    same = runner.invoke(main, ["compare", str(folder), str(folder / "results.csv")])
    assert same.exit_code == 0, same.output
    assert "no regression (16 cells" in same.output
    worse = runner.invoke(main, ["compare", str(folder), str(bad)])
    assert worse.exit_code == 1
    assert "FAIL: PSNR -0.100 dB" in worse.output
    loose = runner.invoke(main, ["compare", str(folder), str(bad), "--psnr-tol", "0.2"])
    assert loose.exit_code == 0


# -- image by image: the same images, the same streams from the same library -------------
def test_every_row_names_its_library(results):
    _, rows = results
    libraries = rows.groupby("codec")["codec_library"].unique()
    assert [len(v) for v in libraries] == [1, 1]
    assert libraries["jpeg"][0].startswith("libjpeg")
    assert libraries["jpeg2000"][0].startswith("OpenJPEG ")
    outcome = compare(rows, rows.copy())
    assert set(outcome.table["streams"]) == {"identical"} and not outcome.notes


def test_new_bytes_from_the_same_library_fail_however_small(results):
    _, rows = results
    # 0.5 % more bytes is within --bpp-tol, but the library promised identical streams.
    outcome = compare(rows, recoded(rows, 1.005, library=None))
    assert not outcome.passed
    [line] = outcome.regressions
    assert line.startswith("sample jpeg q=50: streams differ on 2 of 2 images coded by the "
                           "same library, libjpeg")
    assert "rg1_" in line and " bytes" in line
    row = outcome.table.set_index("setting").loc["q=50"]
    assert row["streams"] == "DIFFER" and row["verdict"].startswith("FAIL: streams differ")


def test_another_library_falls_back_to_tolerances_and_says_which(results):
    _, rows = results
    outcome = compare(rows, recoded(rows, 1.005))
    assert outcome.passed
    assert outcome.table.set_index("setting").loc["q=50", "streams"] == "other library"
    [note] = outcome.notes
    assert note.startswith("jpeg: coded by another library (BASELINE: libjpeg")
    assert "NEW: another libjpeg" in note and "tolerances" in note


def test_same_stream_with_other_bytes_is_inconsistent_under_any_library(results):
    _, rows = results
    edited = planted(rows, "bytes", lambda v: v + 1)
    edited.loc[edited["codec"] == "jpeg", "codec_library"] = "another libjpeg"
    outcome = compare(rows, edited)
    assert not outcome.passed
    assert any("inconsistent: the same stream_sha256 with other bytes on 2 images" in line
               for line in outcome.regressions)


def test_bpp_that_is_not_its_bytes_is_inconsistent(results):
    _, rows = results
    outcome = compare(rows, planted(rows, "bpp", lambda v: v * 0.5))
    assert any("inconsistent: NEW bpp is not 8·bytes/(height·width) on 2 images" in line
               for line in outcome.regressions)


def test_rate_improvements_are_reported_and_fail_when_strict(results):
    _, rows = results
    cheaper = recoded(rows, 0.9)
    outcome = compare(rows, cheaper)
    assert outcome.passed
    [line] = outcome.improvements
    assert re.fullmatch(r"sample jpeg q=50: bpp -(9\.9\d|10\.0\d) %, a rate improvement "
                        r"beyond the tolerance -1 % \(fails under --strict\)", line)
    assert "improved: bpp -" in format_comparison(outcome)
    strict = compare(rows, cheaper, Tolerances(strict=True))
    assert not strict.passed and strict.regressions == outcome.improvements
    assert compare(rows, recoded(rows, 0.995), Tolerances(strict=True)).passed


def test_a_missing_or_extra_image_fails_unless_allowed(results):
    _, rows = results
    gone = rows["image_id"] == rows["image_id"].iloc[0]
    fewer = rows[~gone]
    outcome = compare(rows, fewer)
    image = rows["image_id"].iloc[0]
    assert f"sample jpeg q=5: 1 image missing in NEW ({image})" in outcome.regressions
    assert f"sample jpeg q=5: 1 image missing in BASELINE ({image})" in \
        compare(fewer, rows).regressions
    allowed = compare(rows, fewer, Tolerances(allow_missing=True))
    assert allowed.passed
    verdict = allowed.table.set_index(["codec", "setting"]).loc[("jpeg", "q=5"), "verdict"]
    # the means compare the images both sides hold: no PSNR change from the missing one
    assert verdict == f"allowed: 1 image missing in NEW ({image})"


def test_results_without_streams_or_libraries_fall_back_to_tolerances(results):
    _, rows = results
    older = rows.drop(columns=["stream_sha256", "codec_library"])
    outcome = compare(older, rows)
    assert outcome.passed
    assert set(outcome.table["streams"]) == {"not recorded"}
    assert outcome.notes[0].startswith("BASELINE has no stream_sha256 or codec_library column")
    assert not compare(older, planted(rows, "psnr", lambda v: v - 0.1)).passed


def test_two_rows_for_one_image_are_refused(results):
    _, rows = results
    with pytest.raises(MedbenchError, match="NEW holds 2 rows that share a cell and image"):
        compare(rows, pd.concat([rows, rows.iloc[:1]]))


@pytest.mark.parametrize("edit, expected", [
    ("halved", "the same stream_sha256 with other bytes"),
    ("renamed", "missing in NEW"),
    ("one_stream", "streams differ on 1 of 2 images coded by the same library"),
])
def test_cli_fails_on_edited_results(results, tmp_path, edit, expected):
    """`medbench compare RUN/results.csv EDITED.csv` exits non-zero for each edit."""
    folder, _ = results
    rows = pd.read_csv(folder / "results.csv")
    if edit == "halved":  # every byte count halved, nothing else
        rows["bytes"] = rows["bytes"] // 2
    elif edit == "renamed":  # every image renamed
        rows["image_id"] = "other-" + rows["image_id"]
    else:  # one stream changed
        rows.loc[rows.index[3], "stream_sha256"] = "0" * 64
    edited = tmp_path / "edited.csv"
    rows.to_csv(edited, index=False)
    outcome = CliRunner().invoke(main, ["compare", str(folder / "results.csv"), str(edited)])
    assert outcome.exit_code == 1, outcome.output
    assert expected in outcome.output


def test_cli_strict_and_notes(results, tmp_path):
    folder, rows = results
    cheaper = tmp_path / "cheaper.csv"
    recoded(rows, 0.9).to_csv(cheaper, index=False)
    runner = CliRunner()
    lenient = runner.invoke(main, ["compare", str(folder), str(cheaper)])
    assert lenient.exit_code == 0, lenient.output
    assert "note: jpeg: coded by another library" in lenient.output
    assert "1 rate improvement(s) beyond --bpp-tol" in lenient.output
    strict = runner.invoke(main, ["compare", str(folder), str(cheaper), "--strict"])
    assert strict.exit_code == 1
    assert "sample jpeg q=50: bpp -" in strict.output


def _edits(rows: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Each kind of finding, planted once (the store path must see each the same way)."""
    first = rows["image_id"] == rows["image_id"].iloc[0]
    halved = rows.copy()
    halved["bytes"] = halved["bytes"] // 2
    one_stream = rows.copy()
    one_stream.loc[one_stream.index[3], "stream_sha256"] = "0" * 64
    error = rows.copy()
    error.loc[error.index[:5], "status"] = "error"
    return {"same": rows, "missing": rows[~first], "psnr": planted(rows, "psnr",
                                                                   lambda v: v - 0.1),
            "halved": halved, "one_stream": one_stream, "recoded": recoded(rows, 0.9),
            "errors": error, "renamed": rows.assign(image_id="other-" + rows["image_id"])}


@pytest.mark.parametrize("edit", ["same", "missing", "psnr", "halved", "one_stream",
                                  "recoded", "errors", "renamed"])
def test_stores_are_compared_in_sql_as_their_rows_are(results, tmp_path, edit):
    """Two stores compared where they lie (attached, nothing loaded) give the comparison
    their rows give, line for line, finding for finding, in both directions."""
    from medbench.reports.compare import open_results
    from tests.scale_rows import RUN_ID, write_store

    _, rows = results
    rows = rows.assign(run_id=RUN_ID)  # the run write_store records
    edited = _edits(rows)[edit]
    base, new = write_store(tmp_path / "a", rows), write_store(tmp_path / "b", edited)
    assert len(load_results(base)[0]) == len(rows)
    for one, other, b in ((base, new, edited), (new, base, rows)):
        in_sql = compare(open_results(one)[0], open_results(other)[0])
        in_frames = compare(load_results(one)[0], load_results(other)[0])
        assert format_comparison(in_sql) == format_comparison(in_frames)
        assert in_sql.regressions == in_frames.regressions
        assert in_sql.improvements == in_frames.improvements
        assert in_sql.notes == in_frames.notes
        pd.testing.assert_frame_equal(in_sql.table, in_frames.table)
        # and a store against the CSV of the other side's rows: the same again
        mixed = compare(open_results(one)[0], b)
        assert mixed.regressions == in_frames.regressions
    if edit != "same":  # (recoded into fewer bytes: a rate improvement, failing --strict)
        assert not compare(open_results(base)[0], open_results(new)[0],
                           Tolerances(strict=True)).passed
