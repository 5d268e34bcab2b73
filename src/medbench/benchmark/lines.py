"""Per-patient lines of a run's rows, kept in the store as the rows are written.

A report's setting means (:mod:`medbench.reports.store_means`) need, for each setting ×
train dataset × patient group × body part, each metric's count and sum over the group's
``ok`` rows and a few counts and maxima; its facts (:mod:`medbench.reports.run_rows`)
and body-part table count images and patient groups. Computed from the rows, that reads
every row several times and sorts them by patient (the means alone: 165 s of a report of
10⁷ rows). The store keeps these lines instead, in :data:`TABLE` (per patient) and
:data:`IMAGES` (per image): SQLite triggers add each inserted row to its lines in the
insert's own transaction, so the lines are the rows whoever writes them (an older
medbench, a user's own SQL).

- Adding is cheap, taking back is not (a maximum cannot be un-taken): a row deleted or
  updated (an image re-coded by ``--resume``, a cell replaced) marks its run's lines
  stale (:data:`STALE`); the end of the run, or the next writer to open the store,
  rebuilds them from the rows (:func:`refresh`).
- A reader uses a run's lines only where they are known to be its rows
  (:func:`usable`): the tables of this version exist, the run is not stale, and both
  count as many rows as the store holds for it (a writer without
  ``recursive_triggers`` replaces a row without the delete trigger: the counts then
  differ). Else a report reads the rows, as before.
- Images a learned model trained on leave out every row of the image
  (:mod:`medbench.reports.seen`), a question across a line's rows: a run with such
  images reads its rows.

A line is keyed by what a report selects, groups or tells on: run, dataset, codec,
setting, train dataset (``''`` for none), group (group id, else image id), body part,
group kind, bit depth, codec kind, whether it is learned, whether its knob names a
checkpoint, whether it has a train dataset, split and protocol (the last ones one value a
dataset as a rule: they add no lines). A missing value in a key is stored as the empty
blob (a primary key holds no NULL, and no text or number equals a blob); readers map it
back to NULL. The tables' names carry their version: a writer drops another version's
and builds its own.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

from medbench.benchmark.targets import PREFIX as TARGET_PREFIX

#: The lines' table; its name changes with what a line holds (a store written by another
#: version has the other table, which a writer of this version drops and rebuilds).
TABLE = "result_lines_v2"
#: Per image, what a report counts in images (its facts' images and patient groups, the
#: body parts' images): the rows and ``ok`` rows of each run × dataset × image × group id
#: × codec × train dataset × body part, and whether they are the report's settings' rows.
IMAGES = "result_images_v2"
#: Runs whose lines a delete or update made stale.
STALE = "result_lines_stale"
#: Between a learned model's setting and its checkpoint (``reports.budget.SEPARATOR``).
SEPARATOR = "@"
#: The metrics whose count and sum a line keeps (``reports.means`` METRICS, MORE_METRICS;
#: a test holds the two equal). A change to what a line holds changes the tables' version.
METRICS = ("bpp", "psnr", "ssim", "ms_ssim", "encode_ms", "decode_ms",
           "vif", "gmsd", "haarpsi", "fsim", "display_psnr", "display_ssim")
#: Means over the finite values only (an exact image's PSNR is infinite).
PSNRS = ("psnr", "display_psnr")
#: The columns whose largest ``ok`` value a line keeps.
MAXIMA = ("max_abs_error", "batch_size", "params", "kmac_per_pixel_enc",
          "kmac_per_pixel_dec", "peak_mem_mb")
#: Whether a setting is a rate-matched cell's, in SQL.
TARGET_SQL = f"substr(CAST(setting AS TEXT), 1, {len(TARGET_PREFIX)}) = '{TARGET_PREFIX}'"

_NONE = "X''"  # a missing key value
_AGG = {"sum": "SUM", "min": "MIN", "max": "MAX"}  # how lines combine, as SQL aggregates


def _learned(r: str) -> str:
    return f"(COALESCE({r}codec_kind, 'learned') = 'learned')"


def _knob_sep(r: str) -> str:
    return f"(instr(COALESCE(CAST({r}knob AS TEXT), ''), '{SEPARATOR}') > 0)"


def _milestone(r: str) -> str:
    return f"(instr(CAST({r}setting AS TEXT), '{SEPARATOR}') > 0)"


def _keys(r: str) -> dict[str, str]:
    """Each key column's value for a results row (``r``: ``NEW.`` in a trigger)."""
    return {
        "run_id": f"COALESCE({r}run_id, {_NONE})",
        "dataset": f"COALESCE({r}dataset, {_NONE})",
        "codec": f"COALESCE({r}codec, {_NONE})",
        "setting": f"COALESCE({r}setting, {_NONE})",
        "train": f"COALESCE({r}train_dataset, '')",
        "grp": f"COALESCE(CAST(COALESCE({r}group_id, {r}image_id) AS TEXT), {_NONE})",
        "part": f"COALESCE(CAST({r}body_part AS TEXT), {_NONE})",
        "kind": f"COALESCE(CAST({r}group_kind AS TEXT), {_NONE})",
        "depth": f"COALESCE(CAST({r}bit_depth AS INTEGER), {_NONE})",
        "codec_kind": f"COALESCE({r}codec_kind, {_NONE})",
        "learned": _learned(r),
        "knob_sep": _knob_sep(r),
        # what a report's facts tell of a dataset (one value a dataset, as a rule)
        "trained": f"({r}train_dataset IS NOT NULL)",
        "split": f"COALESCE({r}split, {_NONE})",
        "protocol": f"COALESCE({r}protocol, {_NONE})",
    }


def _values(r: str) -> dict[str, tuple[str, str]]:
    """Each value column: its value for one row and how lines combine (sum, min, max),
    the expressions ``reports.store_means`` once summed over the rows themselves."""
    ok = f"{r}status = 'ok'"
    peak = f"((1 << CAST({r}bit_depth AS INTEGER)) - 1)"
    pooled = f"{ok} AND {r}mse IS NOT NULL AND {r}bit_depth IS NOT NULL"
    sized = f"{r}width IS NOT NULL AND {r}height IS NOT NULL"
    out = {
        "rows": ("1", "sum"),
        "first_row": (f"{r}rowid", "min"),
        "first_ok": (f"(CASE WHEN {ok} THEN {r}rowid END)", "min"),
        "setting_rank": (f"{r}setting_rank", "min"),
        "images": (f"({ok})", "sum"),
        "errors": (f"({r}status = 'error')", "sum"),
        "unsupported": (f"({r}status = 'unsupported')", "sum"),
        "exact_images": (f"({ok} AND {r}psnr >= 9e999)", "sum"),
        "exact_display": (f"({ok} AND {r}display_psnr >= 9e999)", "sum"),
        "psnr_raw": (f"(CASE WHEN {ok} THEN {r}psnr IS NOT NULL END)", "sum"),
        "display_psnr_raw": (f"(CASE WHEN {ok} THEN {r}display_psnr IS NOT NULL END)", "sum"),
        **{f"max_{c}": (f"(CASE WHEN {ok} THEN {r}{c} END)", "max") for c in MAXIMA},
        "nmse_sum": (f"(CASE WHEN {pooled} THEN {r}mse / (CAST({peak} AS REAL) * {peak}) END)",
                     "sum"),
        "nmse_n": (f"({pooled})", "sum"),
        "windowed": (f"({r}display IS NOT NULL)", "sum"),
        "sized": (f"({sized})", "sum"),
        "w0": (f"(CASE WHEN {sized} THEN {r}width END)", "min"),
        "w1": (f"(CASE WHEN {sized} THEN {r}width END)", "max"),
        "h0": (f"(CASE WHEN {sized} THEN {r}height END)", "min"),
        "h1": (f"(CASE WHEN {sized} THEN {r}height END)", "max"),
    }
    for m in METRICS:
        value = f"(CASE WHEN {ok} THEN {_finite(m, r)} END)"
        out[f"{m}_n"] = (f"({value} IS NOT NULL)", "sum")
        out[f"{m}_s"] = (value, "sum")
    return out


def _image_keys(r: str) -> dict[str, str]:
    """The key of a row's image line (:data:`IMAGES`): ``settings`` whether the row is
    one of the settings' rows a report's facts count (no rate-matched cell, no
    milestone checkpoint)."""
    return {
        "run_id": f"COALESCE({r}run_id, {_NONE})",
        "dataset": f"COALESCE({r}dataset, {_NONE})",
        "image_id": f"COALESCE({r}image_id, {_NONE})",
        "group_id": f"COALESCE({r}group_id, {_NONE})",
        "codec": f"COALESCE({r}codec, {_NONE})",
        "train": f"COALESCE({r}train_dataset, '')",
        "part": f"COALESCE({r}body_part, {_NONE})",
        "settings": f"(NOT ({_learned(r)} AND ({_milestone(r)} OR {_knob_sep(r)})) AND NOT "
                    f"{TARGET_SQL.replace('setting', r + 'setting')})",
    }


def _finite(metric: str, r: str) -> str:
    """The values a metric's mean is over (a PSNR's exact images are left out)."""
    return f"CASE WHEN {r}{metric} < 9e999 THEN {r}{metric} END" if metric in PSNRS \
        else f"{r}{metric}"


KEYS = tuple(_keys(""))
VALUES = tuple(_values(""))
IMAGE_KEYS = tuple(_image_keys(""))
#: The columns a trigger reads of a results row (added to an older store first).
READS = ("run_id", "dataset", "codec", "setting", "train_dataset", "group_id", "image_id",
         "body_part", "group_kind", "bit_depth", "codec_kind", "knob", "status", "split",
         "protocol", "display", "width", "height", "setting_rank", "mse", *MAXIMA, *METRICS)


def _combined(name: str, how: str) -> str:
    """A line's ``name`` with one more row's (``excluded``), as SQL's aggregate would
    have it: NULLs ignored, NULL only while every value was."""
    old, new = name, f"excluded.{name}"
    if how == "sum":
        both = f"{old} + {new}"
    else:
        pick = "<" if how == "min" else ">"
        both = f"CASE WHEN {new} {pick} {old} THEN {new} ELSE {old} END"
    return f"{name} = CASE WHEN {new} IS NULL THEN {old} WHEN {old} IS NULL THEN {new} " \
           f"ELSE {both} END"


def _create_sql() -> list[str]:
    keys, values = _keys("NEW."), _values("NEW.")
    columns = ", ".join([*KEYS, *VALUES])
    image_columns = ", ".join([*IMAGE_KEYS, "rows", "ok"])
    line = (f"INSERT INTO {TABLE} ({columns}) VALUES "
            f"({', '.join([*keys.values(), *(v for v, _ in values.values())])}) "
            f"ON CONFLICT ({', '.join(KEYS)}) DO UPDATE SET "
            + ", ".join(_combined(n, how) for n, (_, how) in values.items()))
    image = (f"INSERT INTO {IMAGES} ({image_columns}) VALUES "
             f"({', '.join(_image_keys('NEW.').values())}, 1, NEW.status = 'ok') "
             f"ON CONFLICT ({', '.join(IMAGE_KEYS)}) DO UPDATE SET rows = rows + 1, "
             "ok = ok + excluded.ok")
    stale = f"INSERT OR IGNORE INTO {STALE} (run_id) VALUES"
    return [
        # No declared types: a value keeps the type it has in the row, and lines compare
        # and add as the rows' values did.
        f"CREATE TABLE {TABLE} ({columns}, PRIMARY KEY ({', '.join(KEYS)})) WITHOUT ROWID",
        f"CREATE TABLE {IMAGES} ({image_columns}, PRIMARY KEY ({', '.join(IMAGE_KEYS)})) "
        "WITHOUT ROWID",
        f"CREATE TABLE IF NOT EXISTS {STALE} (run_id PRIMARY KEY)",
        f"CREATE TRIGGER {TABLE}_insert AFTER INSERT ON results BEGIN {line}; {image}; END",
        f"CREATE TRIGGER {TABLE}_delete AFTER DELETE ON results BEGIN "
        f"{stale} (OLD.run_id); END",
        f"CREATE TRIGGER {TABLE}_update AFTER UPDATE ON results BEGIN "
        f"{stale} (OLD.run_id); {stale} (NEW.run_id); END",
    ]


def _fill_sql(where: str = "1") -> list[str]:
    """The lines (and image lines) of the rows ``where`` selects, from the rows."""
    keys, values = _keys(""), _values("")
    image_keys = ", ".join(_image_keys("").values())
    return [f"INSERT INTO {TABLE} ({', '.join([*KEYS, *VALUES])}) "
            f"SELECT {', '.join(keys.values())}, "
            + ", ".join(f"{_AGG[how]}({v})" for v, how in values.values())
            + f" FROM results WHERE {where} GROUP BY {', '.join(keys.values())}",
            f"INSERT INTO {IMAGES} ({', '.join([*IMAGE_KEYS, 'rows', 'ok'])}) "
            f"SELECT {image_keys}, COUNT(*), SUM(status = 'ok') FROM results WHERE {where} "
            f"GROUP BY {image_keys}"]


def install(db: sqlite3.Connection, echo: Callable[[str], Any] | None = None,
            path: object = "the store") -> None:
    """Give the store (opened for writing, every column of :data:`READS` present) the
    lines of this version, built from its rows if it had none, and rebuild stale runs'.
    Call inside a transaction: the table, its triggers and its lines appear together.
    The writer's connection should have ``recursive_triggers`` on, so that a replaced
    row marks its run stale (without, :func:`usable` notices the miscount). ``echo``
    says so before lines are built from rows already there (minutes at 10⁷ rows)."""
    if not _complete(db):
        for name, kind in db.execute("SELECT name, type FROM sqlite_master WHERE "
                                     "(name GLOB 'result_lines_v*' OR name GLOB "
                                     "'result_images_v*') AND type IN ('table', 'trigger')"
                                     ).fetchall():
            db.execute(f"DROP {kind.upper()} IF EXISTS {name}")  # another version's, a part
        if echo is not None and db.execute("SELECT 1 FROM results LIMIT 1").fetchone():
            echo(f"building the per-patient lines of the rows in {path}, which an older "
                 "medbench wrote (once; about a minute per 4 million rows)")
        for statement in [*_create_sql(), *_fill_sql()]:
            db.execute(statement)
        db.execute(f"DELETE FROM {STALE}")
    refresh(db, echo=echo)


def refresh(db: sqlite3.Connection, run_id: str | None = None,
            echo: Callable[[str], Any] | None = None) -> None:
    """Rebuild from its rows the lines of each stale run (of ``run_id`` only, if given)."""
    stale = [r[0] for r in db.execute(f"SELECT run_id FROM {STALE}")]
    for run in stale:
        if run_id is not None and run != run_id:
            continue
        if echo is not None:
            echo(f"rebuilding the per-patient lines of run {run} (a row of it was replaced "
                 "or deleted)")
        for table in (TABLE, IMAGES):
            db.execute(f"DELETE FROM {table} WHERE run_id = ?", (run,))
        for statement in _fill_sql("run_id = ?"):
            db.execute(statement, (run,))
        db.execute(f"DELETE FROM {STALE} WHERE run_id = ?", (run,))


def _complete(db: sqlite3.Connection) -> bool:
    """Whether the store has this version's tables, with their columns, and triggers
    (a hand-edited store may have a table of the name and not its columns)."""
    names = {r[0] for r in db.execute("SELECT name FROM sqlite_master")}
    if not {TABLE, IMAGES, STALE, f"{TABLE}_insert", f"{TABLE}_delete",
            f"{TABLE}_update"} <= names:
        return False
    return all(set(columns) <= {r[1] for r in db.execute(f"PRAGMA table_info({table})")}
               for table, columns in ((TABLE, (*KEYS, *VALUES)),
                                      (IMAGES, (*IMAGE_KEYS, "rows", "ok"))))


def usable(db: sqlite3.Connection, run_id: str) -> bool:
    """Whether run ``run_id``'s lines are known to be its rows (module notes)."""
    if not _complete(db):
        return False
    if db.execute(f"SELECT 1 FROM {STALE} WHERE run_id = ?", (run_id,)).fetchone():
        return False
    rows = db.execute("SELECT COUNT(*) FROM results WHERE run_id = ?", (run_id,)).fetchone()[0]
    return all(db.execute(f"SELECT COALESCE(SUM(rows), 0) FROM {table} WHERE run_id = ?",
                          (run_id,)).fetchone()[0] == rows for table in (TABLE, IMAGES))


def lines_where(run_id: str, part: str) -> tuple[str, list]:
    """The condition on :data:`TABLE` selecting the lines of the rows that
    ``reports.store_means.report_rows_where(db, run_id, part)`` selects in a run without
    seen images."""
    milestone = _milestone("")
    where = ["run_id = ?"]
    if part == "milestones":
        where.append(f"learned AND {milestone}")
    elif part != "kept":
        where.append(f"NOT (learned AND ({milestone} OR knob_sep))")
    if part == "settings":
        where.append(f"NOT {TARGET_SQL}")
    elif part == "targets":
        where.append(TARGET_SQL)
    return " AND ".join(where), [run_id]


def select_sql(where: str, per_group: bool = True, parts: bool = False) -> str:
    """The group lines ``reports.store_means`` reads (its ``_lines_sql`` of the rows),
    from the kept lines that ``where`` selects: the same columns, in the same order of
    dataset, codec, setting, train dataset, group and body part (the table's own order:
    no sort). A group's rows may stand on several lines (rows of two bit depths or group
    kinds; every group of a setting, without ``per_group``): the reader adds them up as
    it adds a setting's groups (sums, minima, maxima, joined kinds), so SQLite does not
    aggregate here. Kinds and bit depths may repeat in their texts (their readers take
    the distinct values)."""
    order = [f"{TABLE}.{c}" for c in ("dataset", "codec", "setting", "train", "grp", "part")]
    skip = {"rows", "first_row", "first_ok", "setting_rank", "windowed", "sized",
            "w0", "w1", "h0", "h1"}
    sums = ", ".join(name for name in _values("") if name not in skip)
    return f"""
        SELECT dataset, codec, train, setting, {'grp' if per_group else "''"} AS grp,
            {"CASE WHEN typeof(part) = 'text' THEN part END" if parts else 'NULL'} AS part,
            CASE WHEN {TARGET_SQL} THEN first_row + 9e15 ELSE first_row END AS first,
            CASE WHEN typeof(codec_kind) != 'blob' THEN codec_kind END AS codec_kind,
            setting_rank, {sums},
            CASE WHEN images > 0 AND typeof(kind) = 'text'
                 THEN replace(kind, ',', char(31)) END AS kinds,
            CASE WHEN images > 0 AND typeof(depth) = 'integer' THEN CAST(depth AS TEXT) END
                AS depths
        FROM {TABLE} WHERE {where}
        ORDER BY {', '.join(order)}
    """
