"""Result rows read from SQLite in chunks, into compact columns.

``pandas.read_sql_query`` fetches every row as a tuple of Python objects before it makes
a column of any of them: 10⁶ rows of 60 columns peaked at 4.3 GB. :func:`read_frame`
fetches a chunk at a time, turns each chunk's columns into arrays at once, and makes
equal strings of a column one shared object (a million rows name a few codecs, settings
and libraries: each text column then costs a pointer a row, not a string a row). The
frame is the one ``read_sql_query`` gives, value for value and dtype for dtype:

- a column with no value at all: ``object``, all None;
- numbers: ``int64`` when every value is an integer, else ``float64`` (None → NaN);
- text: pandas' string dtype (None → NaN).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

import numpy as np
import pandas as pd

#: Rows fetched at a time: the transient tuples of one chunk are all that is held twice.
CHUNK = 50_000


def read_frame(db: sqlite3.Connection, query: str, params: Sequence = (),
               chunk: int = CHUNK) -> pd.DataFrame:
    """The rows of ``query`` as a DataFrame, built a chunk at a time (see module notes)."""
    cursor = db.execute(query, tuple(params))
    names = [d[0] for d in cursor.description]
    parts: list[list[tuple[str, np.ndarray]]] = [[] for _ in names]
    while True:
        rows = cursor.fetchmany(chunk)
        if not rows:
            break
        table = np.empty((len(rows), len(names)), dtype=object)
        table[:] = rows  # one C-level copy of the tuples' references
        del rows
        for j in range(len(names)):
            parts[j].append(_compact(table[:, j]))
        del table
    return pd.DataFrame({name: _column(pieces) for name, pieces in zip(names, parts)},
                        columns=names)


def _compact(values: np.ndarray) -> tuple[str, np.ndarray]:
    """One chunk of a column and what it holds: ``none``; ``int`` or ``float`` (as floats,
    None → NaN); ``text`` (an object array whose equal strings are one object);
    ``mixed``."""
    missing = pd.isna(values)
    if missing.all():
        return "none", np.full(len(values), np.nan)
    kind = pd.api.types.infer_dtype(values[~missing], skipna=False)
    if kind in ("integer", "floating", "mixed-integer-float"):
        out = np.full(len(values), np.nan)
        out[~missing] = values[~missing].astype(float)
        return ("int" if kind == "integer" else "float"), out
    if kind != "string":
        return "mixed", values
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    shared = np.empty(len(uniques) + 1, dtype=object)
    shared[:-1] = list(uniques)
    shared[-1] = None
    return "text", shared[codes]  # -1 (missing) picks the trailing None


def _column(pieces: list[tuple[str, np.ndarray]]) -> np.ndarray | pd.api.extensions.ExtensionArray:
    kinds = {kind for kind, _ in pieces} - {"none"}
    if not pieces or not kinds:
        return np.full(sum(len(p) for _, p in pieces), None, dtype=object)
    if kinds <= {"int", "float"}:
        values = np.concatenate([p for _, p in pieces])
        if kinds == {"int"} and not np.isnan(values).any():
            return values.astype(np.int64)
        return values
    if kinds == {"text"}:
        values = np.concatenate([p if kind == "text" else np.full(len(p), None, dtype=object)
                                 for kind, p in pieces])
        return pd.array(values, dtype="str")
    # Numbers and text in one column (rare): as read_sql_query infers it.
    values = np.concatenate([p.astype(object) for _, p in pieces])
    values[pd.isna(values)] = None
    return pd.Series(values, dtype=object).infer_objects().to_numpy()
