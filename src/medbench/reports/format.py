"""Turning report tables into text: number formatting, Markdown and HTML tables.

Each table is first rendered to a frame of strings (:func:`text_frame`), so the Markdown
file and the HTML page show exactly the same cells.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Sequence
from typing import Any

import pandas as pd

MISSING = "–"

#: A column of a rendered table: (source column, header, format). The format is a
#: ``str.format`` spec, or ``"pm"`` for ``mean ± ci`` (reads ``<column>_ci`` too).
Column = tuple[str, str, str]


def fmt(value: Any, spec: str = "{}") -> str:
    """One cell: missing values as a dash, infinities as ``inf``, numbers by ``spec``."""
    if value is None:
        return MISSING
    if isinstance(value, float):
        if math.isnan(value):
            return MISSING
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
    if isinstance(value, (bool,)):
        return "yes" if value else "no"
    try:
        if pd.isna(value):
            return MISSING
    except (TypeError, ValueError):
        pass
    try:
        return spec.format(value)
    except (ValueError, TypeError):
        return str(value)


def fmt_pm(mean: Any, ci: Any, spec: str) -> str:
    """``mean ± half-width``; only the mean when the interval is undefined."""
    text = fmt(mean, spec)
    if text in (MISSING, "inf", "-inf") or ci is None or pd.isna(ci):
        return text
    return f"{text} ± {fmt(ci, spec)}"


def text_frame(table: pd.DataFrame, columns: Sequence[Column]) -> pd.DataFrame:
    """``table`` rendered to strings, with the given headers, in the given column order."""
    out: dict[str, list[str]] = {}
    for key, header, spec in columns:
        if spec.startswith("pm"):
            inner = spec[2:] or "{:.3f}"
            ci_key = f"{key}_ci"
            out[header] = [
                fmt_pm(row.get(key), row.get(ci_key), inner) for _, row in table.iterrows()
            ]
        else:
            values = table[key] if key in table else [None] * len(table)
            out[header] = [fmt(v, spec) for v in values]
    return pd.DataFrame(out, columns=[header for _, header, _ in columns])


_NUMBER = re.compile(r"^(?:[+-]?\d[\d.,]*(?:e[+-]?\d+)?%?(?: ± [\d.,e+-]+%?)?|[+-]?inf|–)$")


def numeric_columns(frame: pd.DataFrame) -> list[bool]:
    """Which columns of a text frame hold only numbers (or dashes): those align right."""
    out = []
    for column in frame.columns:
        cells = [str(v) for v in frame[column]]
        out.append(bool(cells) and all(_NUMBER.match(c) for c in cells)
                   and any(c != MISSING for c in cells))
    return out


def markdown(frame: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table; numeric columns right-aligned."""
    if frame.empty:
        return "(none)\n"
    headers = [str(c) for c in frame.columns]
    align = ["---:" if num else "---" for num in numeric_columns(frame)]

    def cell(text: Any) -> str:
        return str(text).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(h) for h in headers) + " |", "| " + " | ".join(align) + " |"]
    for row in frame.itertuples(index=False):
        lines.append("| " + " | ".join(cell(v) for v in row) + " |")
    return "\n".join(lines) + "\n"


def html_table(frame: pd.DataFrame, css_class: str = "",
               classes: pd.DataFrame | None = None) -> str:
    """An HTML ``<table>`` of a text frame (escaped); numeric columns right-aligned.

    ``classes``, of the same shape as ``frame``, adds CSS classes to single cells (e.g.
    ``num unreliable``); "" adds none.
    """
    if frame.empty:
        return "<p class=\"empty\">(none)</p>"
    cls = f' class="{html.escape(css_class)}"' if css_class else ""
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    numeric = numeric_columns(frame)
    body = []
    for i, row in enumerate(frame.itertuples(index=False)):
        cells = []
        for j, (value, num) in enumerate(zip(row, numeric)):
            names = (["num"] if num else []) + (
                str(classes.iat[i, j]).split() if classes is not None else [])
            attr = f' class="{html.escape(" ".join(dict.fromkeys(names)))}"' if names else ""
            cells.append(f"<td{attr}>{html.escape(str(value))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table{cls}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
