"""The observer experiment in the results store: its sites, and the table made from them.

Two SQLite tables beside ``results`` (:class:`~medbench.benchmark.store.ResultsStore`
creates them and calls these functions):

``observer_sites``
    One row per run × dataset × image × cell (``codec``/``setting`` empty for the uncoded
    original) × site × condition: the site's place, status and note, and what the
    observers need, so the experiment resumes with the run and a report is rebuilt from
    the store alone. Channel responses are ``float64`` little-endian blobs (``J`` values
    each); no pickles. Site ``-1`` rows speak for a whole condition of the image (a skip
    with its reason, or the error of coding the image with nodules). Written in the same
    transaction as the cell's result row.
``observer``
    The summary (:data:`~medbench.benchmark.observers.summary.COLUMNS`), one row per
    dataset × codec × setting × observer × diameter × contrast, written when the run
    finishes (:func:`write_table`).
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from medbench.benchmark.observers.summary import COLUMNS

if TYPE_CHECKING:
    from medbench.benchmark.observers.experiment import SiteObservation
    from medbench.benchmark.rows import ResultRow

#: ``observer_sites`` columns → SQL types.
SITE_COLUMNS: dict[str, str] = {
    "run_id": "TEXT NOT NULL", "dataset": "TEXT NOT NULL", "image_id": "TEXT NOT NULL",
    "group_id": "TEXT", "codec": "TEXT NOT NULL", "setting": "TEXT NOT NULL",
    "site": "INTEGER NOT NULL", "diameter_mm": "REAL NOT NULL", "contrast": "REAL NOT NULL",
    "status": "TEXT", "note": "TEXT", "row_": "INTEGER", "col_": "INTEGER",
    "cho_present": "BLOB", "cho_absent": "BLOB", "npwe_present": "REAL",
    "npwe_absent": "REAL", "spacing_row_mm": "REAL", "spacing_col_mm": "REAL",
    "spacing_source": "TEXT", "channel_width_mm": "REAL", "nodule_bytes": "INTEGER",
}
_SITE_KEY = ("run_id", "dataset", "image_id", "codec", "setting", "site", "diameter_mm",
             "contrast")


def create_tables(db: sqlite3.Connection) -> None:
    """Create both tables when missing (stores written before the experiment existed)."""
    columns = ", ".join(f"{name} {kind}" for name, kind in SITE_COLUMNS.items())
    db.execute(f"CREATE TABLE IF NOT EXISTS observer_sites ({columns}, "
               f"PRIMARY KEY ({', '.join(_SITE_KEY)}))")
    summary = ", ".join(f"{name} {kind}" for name, kind in COLUMNS.items())
    db.execute(f"CREATE TABLE IF NOT EXISTS observer ({summary})")


def _blob(values: np.ndarray | None) -> bytes | None:
    return None if values is None else np.asarray(values, dtype="<f8").tobytes()


def write_sites(db: sqlite3.Connection, row: ResultRow) -> None:
    """Insert (or replace) the observations a result row carries (inside its transaction)."""
    items: tuple[SiteObservation, ...] = row.observations
    if not items:
        return
    names = ", ".join(SITE_COLUMNS)
    marks = ", ".join("?" for _ in SITE_COLUMNS)
    db.executemany(f"INSERT OR REPLACE INTO observer_sites ({names}) VALUES ({marks})", [
        (row.run_id, row.dataset, row.image_id, row.group_id, o.codec, o.setting, o.site,
         o.diameter_mm, o.contrast, o.status, o.note, o.row, o.col, _blob(o.cho_present),
         _blob(o.cho_absent), o.npwe_present, o.npwe_absent, o.spacing_row_mm,
         o.spacing_col_mm, o.spacing_source, o.channel_width_mm, o.nodule_bytes)
        for o in items])


def read_sites(db: sqlite3.Connection, run_id: str) -> pd.DataFrame:
    """The run's site rows; ``cho_present``/``cho_absent`` as float64 arrays (or None)."""
    if not _exists(db, "observer_sites"):  # a store written before the experiment existed
        return pd.DataFrame(columns=list(SITE_COLUMNS))
    frame = pd.read_sql_query("SELECT * FROM observer_sites WHERE run_id = ? ORDER BY rowid",
                              db, params=(run_id,))
    for name in ("cho_present", "cho_absent"):
        frame[name] = frame[name].map(
            lambda b: None if b is None else np.frombuffer(b, dtype="<f8").astype(np.float64))
    return frame.rename(columns={"row_": "row", "col_": "col"})


def delete_image(db: sqlite3.Connection, run_id: str, dataset: str, image_id: str) -> None:
    """Delete an image's site rows (its file changed: every cell is coded again)."""
    db.execute("DELETE FROM observer_sites WHERE run_id = ? AND dataset = ? AND image_id = ?",
               (run_id, dataset, image_id))


def write_table(db: sqlite3.Connection, run_id: str, table: pd.DataFrame) -> None:
    """Replace the run's ``observer`` rows with ``table``."""
    db.execute("DELETE FROM observer WHERE run_id = ?", (run_id,))
    names = ", ".join(COLUMNS)
    marks = ", ".join("?" for _ in COLUMNS)
    db.executemany(f"INSERT INTO observer ({names}) VALUES ({marks})",
                   [tuple(_sql(record.get(name)) for name in COLUMNS)
                    for record in table.to_dict("records")])


def read_table(db: sqlite3.Connection, run_id: str) -> pd.DataFrame:
    """The run's ``observer`` rows (empty when none were written)."""
    if not _exists(db, "observer"):
        return pd.DataFrame(columns=list(COLUMNS))
    return pd.read_sql_query(f"SELECT {', '.join(COLUMNS)} FROM observer WHERE run_id = ? "
                             "ORDER BY rowid", db, params=(run_id,))


def _exists(db: sqlite3.Connection, table: str) -> bool:
    """Whether the store has ``table`` (a damaged store raises, as every read does)."""
    return db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                      (table,)).fetchone() is not None


def _sql(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, (np.generic,)):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None if np.isnan(value) else value
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return value
