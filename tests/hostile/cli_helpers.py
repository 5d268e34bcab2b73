"""Helpers of the hostile CLI tests: invoke a command, read its one error line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from click.testing import CliRunner, Result

from medbench.cli import main
from tests.fixture_formats import picture, write_png

#: A quick run: one codec family, small tiles, no timing repeats, no progress bar.
QUICK = ["--repeats", "0", "--size", "64", "--no-progress"]


def invoke(*args: object) -> Result:
    """``medbench ARGS`` in this process; a traceback fails the test (it is re-raised)."""
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def error_line(result: Result) -> str:
    """The one ``Error: …`` line of a failed command (asserting there is exactly one, it
    is the last line, and no traceback was printed)."""
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert len(errors) == 1, result.output
    assert result.output.strip().splitlines()[-1] == errors[0], result.output
    return errors[0]


def png_folder(root: Path, count: int = 3, size: int = 48) -> Path:
    """``root`` holding ``count`` 8-bit radiograph-like PNGs ``im0.png``…"""
    root.mkdir(parents=True, exist_ok=True)
    for seed in range(count):
        write_png(root / f"im{seed}.png", picture((size, size), 8, seed))
    return root


def other_png(path: Path, size: int = 48) -> None:
    """Replace the PNG ``path`` with another picture of the same size."""
    write_png(path, np.ascontiguousarray(picture((size, size), 8, 99)[::-1]))
