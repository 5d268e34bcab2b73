"""Rows read in chunks are the frame ``pandas.read_sql_query`` gives."""

from __future__ import annotations

import math
import sqlite3

import pandas as pd
import pytest

from medbench.benchmark.chunked import read_frame


@pytest.fixture
def db():
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE t (i INTEGER, some_i INTEGER, r REAL, s TEXT, some_s TEXT, "
               "none_at_all TEXT, late TEXT, mixed)")
    rows = []
    for k in range(25):
        rows.append((k, k if k % 3 else None, k / 7 if k != 5 else math.inf, f"s{k % 4}",
                     None if k % 2 else "x", None, "late" if k > 20 else None,
                     k if k % 2 else f"t{k}"))
    db.executemany("INSERT INTO t VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
    return db


@pytest.mark.parametrize("chunk", [1, 4, 10, 1000])
def test_the_frame_is_read_sql_querys_value_for_value_and_dtype_for_dtype(db, chunk):
    query = "SELECT * FROM t ORDER BY rowid"
    pd.testing.assert_frame_equal(read_frame(db, query, chunk=chunk),
                                  pd.read_sql_query(query, db))


def test_equal_strings_of_a_column_are_one_object(db):
    frame = read_frame(db, "SELECT s FROM t", chunk=100)
    values = frame["s"].to_numpy(dtype=object)
    assert values[0] is values[4]  # "s0" twice: one shared object, not one per row


def test_an_empty_result_keeps_its_columns(db):
    frame = read_frame(db, "SELECT i, s FROM t WHERE i < 0")
    assert list(frame.columns) == ["i", "s"] and frame.empty
