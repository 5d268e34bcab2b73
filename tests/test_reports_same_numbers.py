"""A report and a comparison print the same numbers however they are computed.

The expected files in ``tests/reference/scale-report/`` were written by the report code
as it was before the report's scaling changes (medbench main at 5551c81, with reader
studies and complexity columns), from
the store of :mod:`tests.scale_rows` (a few thousand rows with patient groups, exact
images, errors, refusals, rate-matched cells, learned rows and images seen in training);
since re-recorded only where what a report says changed on purpose (the shipped models;
a fine-tuned model's training budget counting the model it started from), the report's
move into the store leaving every file as it was. Markdown must match to the character;
CSV files value for value, floats to 9 significant digits (a CSV prints 17, and a sum
taken in another order, as a bootstrap batched over metrics takes it, may differ in the
last few; every printed table shows at most 4).

Rewrite the expected files (review the diff!) with
``PYTHONPATH=src:. python -m tests.test_reports_same_numbers``.
"""

from __future__ import annotations

import math
import re
import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest

from medbench.reports.build import build_report
from medbench.reports.compare import Tolerances, compare, format_comparison, load_results
from tests.scale_rows import scale_rows, write_store

EXPECTED = Path(__file__).parent / "reference" / "scale-report"
#: The one line of a report that differs between two builds of it.
WRITTEN = re.compile(r"report written \| [^|]*\|")
COMPARISON_TXT = "comparison.txt"
COMPARISON_CSV = "comparison.csv"
EXPECTED_FILES = sorted(p.name for p in EXPECTED.iterdir()) if EXPECTED.is_dir() else []


def _outputs(folder: Path) -> dict[str, str]:
    """Every Markdown and CSV file a report and a comparison write, by name."""
    base, new = write_store(folder / "a", scale_rows()), write_store(
        folder / "b", scale_rows(shift=-0.02, library="libjpeg 9f"))
    report = build_report(base, folder / "report")
    files = {p.name: p.read_text(encoding="utf-8") for p in sorted(report.out.iterdir())
             if p.suffix in (".md", ".csv")}
    files["report.md"] = WRITTEN.sub("report written | (when) |", files["report.md"])
    result = compare(load_results(base)[0], load_results(new)[0], Tolerances())
    files[COMPARISON_TXT] = format_comparison(result) + "\n"
    files[COMPARISON_CSV] = result.table.to_csv(index=False)
    return files


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    return _outputs(tmp_path_factory.mktemp("same-numbers"))


def test_every_expected_file_is_written(outputs):
    assert EXPECTED_FILES, f"no expected files in {EXPECTED}"
    assert sorted(outputs) == EXPECTED_FILES


@pytest.mark.parametrize("name", [n for n in EXPECTED_FILES if not n.endswith(".csv")])
def test_text_is_the_same_to_the_character(outputs, name):
    assert outputs[name] == (EXPECTED / name).read_text(encoding="utf-8")


@pytest.mark.parametrize("name", [n for n in EXPECTED_FILES if n.endswith(".csv")])
def test_csv_values_are_the_same_to_the_last_digit(outputs, name, tmp_path):
    path = tmp_path / name
    path.write_text(outputs[name], encoding="utf-8")
    got, want = _read(path), _read(EXPECTED / name)
    assert list(got.columns) == list(want.columns)
    assert len(got) == len(want)
    for column in want.columns:
        for i, (a, b) in enumerate(zip(got[column], want[column])):
            assert _same(a, b), f"{name} line {i + 2}, {column}: {a!r} != {b!r}"


def _read(path: Path) -> pd.DataFrame:
    if not path.read_text(encoding="utf-8").strip():
        return pd.DataFrame()
    return pd.read_csv(path, keep_default_na=False, dtype=str)


def _same(a: str, b: str) -> bool:
    if a == b:
        return True
    try:
        x, y = float(a), float(b)
    except ValueError:
        return False
    if math.isnan(x) or math.isnan(y) or math.isinf(x) or math.isinf(y):
        return False
    # abs_tol: an interval of a constant value is 0 up to summation noise (3.6e-15 when
    # the bootstrap's sums are one matrix product); every printed table shows <= 4 places
    return math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-12)


if __name__ == "__main__":  # rewrite the expected files
    work = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("/tmp/same-numbers")
    shutil.rmtree(work, ignore_errors=True)
    shutil.rmtree(EXPECTED, ignore_errors=True)
    EXPECTED.mkdir(parents=True)
    for file, content in _outputs(work).items():
        (EXPECTED / file).write_text(content, encoding="utf-8")
    print(f"wrote {len(list(EXPECTED.iterdir()))} files to {EXPECTED}")
