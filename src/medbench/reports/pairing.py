"""The two results of ``medbench compare`` side by side in one SQLite database, so the
comparison is computed where the rows are.

A results store of 10⁷ rows does not fit in a DataFrame on a 24 GB machine, but
everything ``compare`` decides is a per-cell sum: how many images each side holds and
shares, how many streams differ, the sums behind each setting's means. :class:`Pair`
attaches the stores read-only (or loads a DataFrame, e.g. a results CSV, into a temporary
table), matches the two sides image by image with one SQL join and returns one line per
cell and kind of row (:func:`Pair.lines`): memory grows with the cells, not the rows.

Each side is a view, ``side_base`` and ``side_new`` (looked up by key), ``scan_base`` and
``scan_new`` (the same rows, read whole in the order of the file), with the same columns
whatever it came from:

- ``ord``: the row's position (its rowid in a store, its line in a frame), for the
  order of first appearance;
- ``dataset``, ``codec``, ``setting``, ``image_id``: text; ``train``: ``train_dataset``,
  "" where there is none;
- ``status``, ``sha``, ``lib`` (``stream_sha256``, ``codec_library``): text, NULL where
  absent or empty;
- ``bytes``, ``bpp``, ``height``, ``width``, ``psnr``, ``ms_ssim``, ``mse``,
  ``bit_depth``, ``setting_rank``: numbers, NULL where absent or not a number.
"""

from __future__ import annotations

import math
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from medbench.benchmark.store import results_columns, run_rowids
from medbench.errors import MedbenchError

#: A cell of the comparison; ``train_dataset`` is "" for classical codecs.
CELL = ["dataset", "codec", "train_dataset", "setting"]
#: What matches a row of BASELINE with a row of NEW.
IMAGE_KEY = [*CELL, "image_id"]
#: The view columns of a side, and the store/CSV column each is read from.
TEXT = {"dataset": "dataset", "codec": "codec", "setting": "setting", "image_id": "image_id"}
OPTIONAL_TEXT = {"status": "status", "sha": "stream_sha256", "lib": "codec_library"}
NUMBERS = {"bytes": "bytes", "bpp": "bpp", "height": "height", "width": "width",
           "psnr": "psnr", "ms_ssim": "ms_ssim", "mse": "mse", "bit_depth": "bit_depth",
           "setting_rank": "setting_rank"}
SIDES = ("base", "new")
#: Relative difference between ``bpp`` and ``8·bytes/(h·w)`` that is more than rounding.
BPP_RTOL = 1e-9
#: Image ids named in one finding; the rest are counted.
EXAMPLES = 3


@dataclass(frozen=True)
class StoreRun:
    """One run of a results store, read where it lies (see :func:`open_store_run`)."""

    path: Path
    run_id: str
    columns: frozenset[str]


def open_store_run(path: Path) -> StoreRun:
    """The latest run of the store at ``path``, checked (a damaged store is a clear
    error) but not loaded."""
    from medbench.benchmark.store import ResultsStore

    store = ResultsStore.open_existing(path)  # read-only: a read-only copy must do
    try:
        run_id = store.run_or_latest()
        columns = frozenset(store.compute(results_columns))
        return StoreRun(store.path, run_id, columns)
    finally:
        store.close()


Side = pd.DataFrame | StoreRun


class Pair:
    """BASELINE and NEW in one in-memory SQLite database (module notes); use as a context
    manager, or :meth:`close` it."""

    def __init__(self, baseline: Side, new: Side):
        self.db = sqlite3.connect(":memory:", uri=True)
        #: Sides that lack ``stream_sha256`` or ``codec_library`` altogether (a CSV
        #: written before medbench recorded them), with the columns they lack.
        self.absent: dict[str, list[str]] = {}
        #: The attached stores' runs, by side.
        self.stores: dict[str, StoreRun] = {}
        try:
            for name, side in zip(SIDES, (baseline, new)):
                if isinstance(side, StoreRun):
                    self._attach(name, side)
                else:
                    self._load(name, side)
        except BaseException:
            self.db.close()
            raise

    def __enter__(self) -> Pair:
        return self

    def damaged(self, exc: sqlite3.DatabaseError) -> MedbenchError:
        """The one-line error of a SQLite failure while reading: a store that passed its
        opening check may still be damaged (or be damaged since); it names the store
        whose pages SQLite cannot read (both, when neither check finds it)."""
        from medbench.benchmark.store import READ_FIX, StoreDamagedError, _damaged_text

        runs = list(self.stores.items())
        bad = []
        for name, run in runs:
            try:
                found = [r[0] for r in self.db.execute(f"PRAGMA store_{name}.quick_check(1)")]
            except sqlite3.DatabaseError:
                found = ["unreadable"]
            if found != ["ok"]:
                bad.append(run)
        named = bad or [run for _, run in runs]
        if not named:  # two frames: SQLite's own trouble, not a store's
            return MedbenchError(f"comparing the results failed in SQLite ({exc})")
        return StoreDamagedError(" ".join(_damaged_text(run.path, exc, READ_FIX)
                                          for run in named))

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.db.close()

    def _attach(self, name: str, run: StoreRun) -> None:
        self.stores[name] = run
        wal = run.path.with_name(run.path.name + "-wal").exists()
        mode = "mode=ro" if wal else "mode=ro&immutable=1"  # as ResultsStore reads
        self.db.execute(f"ATTACH DATABASE ? AS store_{name}",
                        (f"{run.path.resolve().as_uri()}?{mode}",))
        present = run.columns

        def column(view: str, source: str, number: bool) -> str:
            if source not in present:
                return f"NULL AS {view}"
            if number:  # REAL/INTEGER columns: a number or NULL, as medbench writes them
                return f"{source} AS {view}"
            return f"NULLIF({source}, '') AS {view}"

        parts = ["rowid AS ord", *(f"{s} AS {v}" for v, s in TEXT.items()),
                 "COALESCE(train_dataset, '') AS train" if "train_dataset" in present
                 else "'' AS train",
                 *(column(v, s, False) for v, s in OPTIONAL_TEXT.items()),
                 *(column(v, s, True) for v, s in NUMBERS.items())]
        run_id = run.run_id.replace("'", "''")
        select = f"SELECT {', '.join(parts)} FROM store_{name}.results"
        # Key columns stay plain columns, so the join below looks NEW's rows up through
        # the store's primary key (run_id, dataset, image_id, codec, setting).
        self.db.execute(f"CREATE TEMP VIEW side_{name} AS {select} WHERE run_id = '{run_id}'")
        # A side read whole is read in the order of its file (store.run_rows_where).
        span = run_rowids(self.db, run.run_id, f"store_{name}")
        where = (f"run_id = '{run_id}'" if span is None else
                 f"rowid BETWEEN {span[0]} AND {span[1]} AND +run_id = '{run_id}'")
        self.db.execute(f"CREATE TEMP VIEW scan_{name} AS {select} WHERE {where}")

    def _load(self, name: str, rows: pd.DataFrame) -> None:
        absent = [c for c in ("stream_sha256", "codec_library") if c not in rows.columns]
        if absent:
            self.absent[name] = absent
        n = len(rows)
        columns: dict[str, list] = {"ord": list(range(n))}
        for view, source in {**TEXT, "train": "train_dataset"}.items():
            columns[view] = _text(rows, source, missing="")
        for view, source in OPTIONAL_TEXT.items():
            columns[view] = _text(rows, source, missing=None)
        for view, source in NUMBERS.items():
            values = (pd.to_numeric(rows[source], errors="coerce").astype(float)
                      if source in rows.columns else pd.Series(np.nan, index=rows.index))
            columns[view] = [None if math.isnan(v) else v for v in values.tolist()]
        names = list(columns)
        self.db.execute(f"CREATE TEMP TABLE side_{name} ({', '.join(names)})")
        self.db.executemany(f"INSERT INTO side_{name} VALUES ({', '.join('?' * len(names))})",
                            zip(*columns.values()))
        self.db.execute(f"CREATE INDEX temp.key_{name} ON side_{name} "
                        "(dataset, image_id, codec, setting)")
        self.db.execute(f"CREATE TEMP VIEW scan_{name} AS SELECT * FROM side_{name}")

    def lines(self) -> pd.DataFrame:
        """One line per cell × (row shared by both sides or not) × pair of other
        libraries: the counts and sums of each side (``<what>_base``, ``<what>_new``)
        and the counts of each image finding (:data:`_LINES`)."""
        # LIMIT -1 (no limit) keeps SQLite from flattening the rows' query into the sums:
        # it then computes each row's values once, instead of once a use (half the time).
        lines = self._query(f"SELECT {_LINES} FROM ({_BASE_ROWS} LIMIT -1) "
                            f"GROUP BY {_LINE_KEY}")
        new_rows = self.db.execute("SELECT COUNT(*) FROM side_new").fetchone()[0]
        if lines["rows_new"].sum() < new_rows:  # some NEW rows have no BASELINE partner
            only_new = self._query(f"SELECT {_LINES} FROM ({_NEW_ROWS} LIMIT -1) "
                                   f"GROUP BY {_LINE_KEY}")
            lines = pd.concat([lines, only_new], ignore_index=True)
        names = list(lines.columns)
        texts = ["dataset", "codec", "train", "setting", "other_base", "other_new"]
        for name in names:
            if name not in texts:  # SUM over no value is NULL: NaN, as a number
                lines[name] = pd.to_numeric(lines[name], errors="coerce").astype(float)
        return lines

    def examples(self, findings: list[str]) -> pd.DataFrame:
        """The first :data:`EXAMPLES` images (by id) of each cell with one of
        ``findings`` (names of :data:`QUOTED`), with the values a finding quotes; the
        ``finding`` column names it. Only asked for findings some cell has (rare), so
        the scans it costs are only spent then."""
        picks = " UNION ALL ".join(QUOTED[f] for f in findings)
        query = (f"SELECT * FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY {_CELL_SQL}, "
                 f"finding ORDER BY image_id) AS rank FROM ({picks})) "
                 f"WHERE rank <= {EXAMPLES} ORDER BY {_CELL_SQL}, image_id")
        return self._query(query)

    def _query(self, query: str) -> pd.DataFrame:
        cursor = self.db.execute(query)
        names = [d[0] for d in cursor.description]
        return pd.DataFrame(cursor.fetchall(), columns=names)


def _text(rows: pd.DataFrame, column: str, missing: str | None) -> list:
    if column not in rows.columns:
        return [missing] * len(rows)
    return [missing if (v is None or (not isinstance(v, str) and pd.isna(v)) or v == "")
            else str(v) for v in rows[column].tolist()]


# -- the SQL ---------------------------------------------------------------------------------
_JOIN = ("{a}.dataset = {b}.dataset AND {a}.image_id = {b}.image_id AND {a}.codec = "
         "{b}.codec AND {a}.setting = {b}.setting AND {a}.train = {b}.train")
_CELL_SQL = "dataset, codec, train, setting"


def _values(t: str, side: str) -> list[str]:
    """What one side's row adds to its setting's sums (side table alias ``t``): its
    metrics where it is ``ok`` (NULL otherwise), as :mod:`medbench.reports.means` takes
    them, and whether its bpp disagrees with its bytes."""
    ok = f"{t}.status = 'ok'"
    peak = f"((1 << CAST({t}.bit_depth AS INTEGER)) - 1)"
    return [
        f"{t}.ord AS ord_{side}", f"{t}.setting_rank AS rank_{side}",
        f"{ok} AS ok_{side}", f"{t}.status = 'error' AS error_{side}",
        f"CASE WHEN {ok} THEN {t}.psnr END AS psnr_{side}",
        f"CASE WHEN {ok} THEN {t}.bpp END AS bpp_{side}",
        f"CASE WHEN {ok} THEN {t}.ms_ssim END AS ms_ssim_{side}",
        f"CASE WHEN {ok} AND {t}.bit_depth BETWEEN 1 AND 53 "
        f"THEN {t}.mse / (CAST({peak} AS REAL) * {peak}) END AS nmse_{side}",
        f"{_bad_bpp(t)} AS bad_bpp_{side}",
    ]


def _bad_bpp(t: str) -> str:
    """A row whose bpp is not 8·bytes/(h·w) (no pixels and some bytes: never right)."""
    pixels = f"({t}.height * {t}.width)"
    expected = f"(8.0 * {t}.bytes / {pixels})"
    return (f"({t}.status = 'ok' AND {t}.bpp IS NOT NULL AND {t}.bytes IS NOT NULL "
            f"AND {pixels} IS NOT NULL AND CASE WHEN {pixels} = 0 THEN {t}.bytes != 0 "
            f"ELSE abs({t}.bpp - {expected}) > {BPP_RTOL!r} * max(abs({expected}), 1e-12) "
            f"END)")


_NO_SIDE = ["NULL AS ord_base", "NULL AS rank_base", "NULL AS ok_base", "NULL AS error_base",
            "NULL AS psnr_base", "NULL AS bpp_base", "NULL AS ms_ssim_base",
            "NULL AS nmse_base", "NULL AS bad_bpp_base"]
# BASELINE's rows with their NEW partner (if any), and NEW's rows that have none. Per row
# only what the sums need: each side's values, and how the pair's streams compare
# (pair_ok: both ok; lib_same, sha_same, bytes_differ: NULL where a side has no value);
# the per-cell findings are sums of these.
_BASE_ROWS = (
    "SELECT b.dataset AS dataset, b.codec AS codec, b.train AS train, b.setting AS setting, "
    "1 AS has_base, n.ord IS NOT NULL AS has_new, "
    + ", ".join(_values("b", "base") + _values("n", "new"))
    + ", (n.ord IS NOT NULL AND b.status = 'ok' AND n.status = 'ok') AS pair_ok, "
    "CASE WHEN b.lib IS NOT NULL AND n.lib IS NOT NULL THEN b.lib = n.lib END AS lib_same, "
    "CASE WHEN b.sha IS NOT NULL AND n.sha IS NOT NULL THEN b.sha = n.sha END AS sha_same, "
    "CASE WHEN b.bytes IS NOT NULL AND n.bytes IS NOT NULL THEN b.bytes != n.bytes END "
    "AS bytes_differ, "
    "CASE WHEN b.status = 'ok' AND n.status = 'ok' AND b.lib != n.lib THEN b.lib END "
    "AS other_base, "
    "CASE WHEN b.status = 'ok' AND n.status = 'ok' AND b.lib != n.lib THEN n.lib END "
    "AS other_new "
    "FROM scan_base b LEFT JOIN side_new n ON " + _JOIN.format(a="n", b="b")
)
_NEW_ROWS = (
    "SELECT n.dataset AS dataset, n.codec AS codec, n.train AS train, n.setting AS setting, "
    "0 AS has_base, 1 AS has_new, "
    + ", ".join(_NO_SIDE + _values("n", "new"))
    + ", 0 AS pair_ok, NULL AS lib_same, NULL AS sha_same, NULL AS bytes_differ, "
    "NULL AS other_base, NULL AS other_new "
    "FROM scan_new n WHERE NOT EXISTS (SELECT 1 FROM side_base b WHERE "
    + _JOIN.format(a="b", b="n") + ")"
)
_LINE_KEY = f"{_CELL_SQL}, shared, other_base, other_new"
#: The findings of :mod:`medbench.reports.streams`, as sums of the rows' values.
_FINDINGS = {
    "only_base": "has_base AND NOT has_new",
    "only_new": "has_new AND NOT has_base",
    "ok": "pair_ok",
    "same_library": "pair_ok AND lib_same = 1",
    "other_library": "pair_ok AND lib_same = 0",
    "unrecorded": "pair_ok AND NOT (lib_same IS NOT NULL AND sha_same IS NOT NULL)",
    "differ": "pair_ok AND lib_same = 1 AND (sha_same = 0 OR bytes_differ = 1)",
    "same_sha_other_bytes": "sha_same = 1 AND bytes_differ = 1",
    "same_library_recorded": "pair_ok AND lib_same = 1 AND sha_same IS NOT NULL",
    "bad_bpp_base": "bad_bpp_base",
    "bad_bpp_new": "bad_bpp_new",
}


def _sums(side: str) -> list[str]:
    """The counts and sums behind one side's setting means (medbench.reports.means)."""
    return [
        f"SUM(has_{side}) AS rows_{side}", f"MIN(ord_{side}) AS ord_{side}",
        f"MIN(rank_{side}) AS rank_{side}", f"SUM(ok_{side}) AS images_{side}",
        f"SUM(error_{side}) AS errors_{side}",
        f"SUM(psnr_{side} >= 9e999) AS exact_{side}",
        f"COUNT(psnr_{side}) AS psnr_any_{side}",
        f"SUM(CASE WHEN psnr_{side} < 9e999 THEN psnr_{side} END) AS psnr_sum_{side}",
        f"SUM(psnr_{side} < 9e999) AS psnr_n_{side}",
        f"SUM(bpp_{side}) AS bpp_sum_{side}", f"COUNT(bpp_{side}) AS bpp_n_{side}",
        f"SUM(ms_ssim_{side}) AS ms_ssim_sum_{side}",
        f"COUNT(ms_ssim_{side}) AS ms_ssim_n_{side}",
        f"SUM(nmse_{side}) AS nmse_sum_{side}", f"COUNT(nmse_{side}) AS nmse_n_{side}",
    ]


_LINES = ", ".join([
    _CELL_SQL, "has_base AND has_new AS shared", "other_base", "other_new",
    *_sums("base"), *_sums("new"), *(f"SUM({v}) AS {k}" for k, v in _FINDINGS.items()),
])
_QUOTE = ("{t}.dataset AS dataset, {t}.codec AS codec, {t}.train AS train, {t}.setting AS "
          "setting, {t}.image_id AS image_id")
_SIDE_QUOTE = ["bpp", "bytes", "height", "width", "sha", "lib"]


def _quoting(finding: str, source: str, where: str, base: str | None, new: str | None) -> str:
    """One finding's rows, with the values its text quotes (``base``/``new``: the aliases
    of each side's table in ``source``, None where that side has no row)."""
    values = [f"{t}.{c} AS {c}_{side}" if t else f"NULL AS {c}_{side}"
              for side, t in (("base", base), ("new", new)) for c in _SIDE_QUOTE]
    return (f"SELECT '{finding}' AS finding, {_QUOTE.format(t=base or new)}, "
            f"{', '.join(values)} FROM {source} WHERE {where}")


_PAIRED = "scan_base b CROSS JOIN side_new n ON " + _JOIN.format(a="n", b="b")
_SAME_LIB = ("b.status = 'ok' AND n.status = 'ok' AND b.lib IS NOT NULL AND "
             "n.lib IS NOT NULL AND b.lib = n.lib")
_SHAS = "b.sha IS NOT NULL AND n.sha IS NOT NULL"
_BYTES_DIFFER = "b.bytes IS NOT NULL AND n.bytes IS NOT NULL AND b.bytes != n.bytes"
#: For each finding that quotes images, the query of its rows (:meth:`Pair.examples`).
QUOTED = {
    "only_base": _quoting("only_base", "scan_base b", "NOT EXISTS (SELECT 1 FROM side_new n "
                          "WHERE " + _JOIN.format(a="n", b="b") + ")", "b", None),
    "only_new": _quoting("only_new", "scan_new n", "NOT EXISTS (SELECT 1 FROM side_base b "
                         "WHERE " + _JOIN.format(a="b", b="n") + ")", None, "n"),
    "bad_bpp_base": _quoting("bad_bpp_base", "scan_base b", _bad_bpp("b"), "b", None),
    "bad_bpp_new": _quoting("bad_bpp_new", "scan_new n", _bad_bpp("n"), None, "n"),
    "same_sha_other_bytes": _quoting("same_sha_other_bytes", _PAIRED,
                                     f"{_SHAS} AND b.sha = n.sha AND {_BYTES_DIFFER}",
                                     "b", "n"),
    "differ": _quoting("differ", _PAIRED, f"{_SAME_LIB} AND (({_SHAS} AND b.sha != n.sha) "
                       f"OR {_BYTES_DIFFER})", "b", "n"),
}


def check_duplicates(rows: pd.DataFrame, side: str) -> None:
    """Refuse a frame holding two rows of one image and cell (several runs mixed); a
    store cannot (its primary key)."""
    keys = pd.DataFrame({c: _text(rows, c, "") for c in IMAGE_KEY})
    twice = keys.duplicated(keep=False)
    if twice.any():
        first = keys[twice].iloc[0]
        raise MedbenchError(
            f"{side} holds {int(twice.sum())} rows that share a cell and image (e.g. "
            f"{first['dataset']} {first['codec']} {first['setting']} {first['image_id']}); "
            "give the rows of one run (a results folder, or one run's results.csv)")
