"""The results store: one SQLite file, one row per (run, dataset, image, codec, setting).

Rows are committed as their cells finish (together when many workers finish cells
faster than a commit a row allows: ``runner._Writer``), so an interrupted run loses at
most the rows of its last half second, and ``--resume`` skips the cells already present
(counting them per image in SQLite: a 10⁷-row store is never read whole to resume it).
Reports and exports only read it.

Beside the rows, a run keeps the images it chose (``run_images``: dataset, image id,
source file and its SHA-256), so ``--resume`` codes exactly those images and notices a
file that changed, and the cell being coded in this process (``pending``), so a cell
whose codec killed the process becomes an error row on ``--resume`` instead of killing it
again.

And per-patient and per-image lines of the rows (``benchmark.lines``): SQLite triggers
add each row to its lines as it is inserted, so that a report of 10⁷ rows reads 2.5
million lines for its setting means and facts instead of sorting every row.
"""

from __future__ import annotations

import csv
import functools
import json
import math
import os
import sqlite3
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from medbench.benchmark import lines as kept_lines
from medbench.benchmark import pixels as kept_files
from medbench.benchmark.chunked import read_frame
from medbench.benchmark.observers import storage as observer_storage
from medbench.benchmark.rows import (
    COLUMNS,
    STATUSES,
    UNREADABLE,
    KeptPixels,
    ResultRow,
    VisualCrop,
)
from medbench.benchmark.visuals import pack, unpack
from medbench.errors import MedbenchError

STORE_NAME = "results.sqlite"

KEY = ("run_id", "dataset", "image_id", "codec", "setting")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class StoreWriteError(MedbenchError):
    """The results store could not be written (disk full, read-only folder...)."""


class StoreDamagedError(MedbenchError):
    """The results store is damaged, or is a file of another kind under its name."""


#: Tables every results store has (older stores may lack the others).
REQUIRED_TABLES = ("runs", "results")
#: What a reader of a damaged store can do (``open_existing(fix=...)`` says it per command).
READ_FIX = "point at a results folder written by `medbench run --out`"


def _guarded(method: Callable) -> Callable:
    """A store method whose SQLite failures on a damaged file (SQLite's "database disk
    image is malformed", pandas' wrapping of it) become a :class:`StoreDamagedError`."""

    @functools.wraps(method)
    def wrapper(self: ResultsStore, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except (sqlite3.DatabaseError, pd.errors.DatabaseError) as exc:
            raise self._damaged(exc) from None

    return wrapper


class ResultsStore:
    """SQLite results of all runs written into one output folder."""

    def __init__(self, path: Path, readonly: bool = False,
                 echo: Callable[[str], Any] | None = None):
        self.path = Path(path)
        self.readonly = readonly
        self._echo = echo  # what a writer says while it builds the kept lines
        self._fix = READ_FIX
        if not readonly:
            try:
                self._open_for_writing()
            except (OSError, sqlite3.Error) as exc:
                raise StoreWriteError(
                    f"cannot write the results store {self.path} ({_reason(exc)}); choose a "
                    "writable --out with free space, or move the damaged file away") from None
            return
        # Reports and compare only read: a read-only folder or copy must do. Without a -wal
        # file no writer is active, and `immutable` reads without creating the
        # shared-memory file a WAL reader otherwise needs.
        wal = self.path.with_name(self.path.name + "-wal").exists()
        mode = "mode=ro" if wal else "mode=ro&immutable=1"
        self._db = sqlite3.connect(f"{self.path.resolve().as_uri()}?{mode}", uri=True,
                                   timeout=30)

    def _open_for_writing(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(self.path), timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        # In WAL mode NORMAL keeps every committed row through a crash or kill of the
        # process (only a power cut may lose the last ones) and skips an fsync per row,
        # which cost ~6 ms a cell here: the writer of a 2-worker run was its bottleneck.
        self._db.execute("PRAGMA synchronous=NORMAL")
        # A replaced row (INSERT OR REPLACE) fires the delete trigger of the kept lines.
        self._db.execute("PRAGMA recursive_triggers=ON")
        self._create()

    @classmethod
    def open_existing(cls, folder: Path, readonly: bool = True,
                      fix: str = READ_FIX, echo: Callable[[str], Any] | None = None,
                      check: bool = True) -> ResultsStore:
        """The store in results folder ``folder`` (or the store file itself), read-only by
        default; a clear error when there is none or it is damaged.

        The file is checked before anything reads or writes it (SQLite's ``quick_check``
        over every page, and the tables a store has), so a damaged store fails here, in
        one line, rather than as a traceback half-way through a command, or as rows that
        silently vanish behind a broken index. ``fix`` ends that line: what the user of
        this command can do. ``check=False`` (read-only) skips the file's check where
        the same command opens it again, checked, before it reads the rows (the check
        reads every page: ~20 s at 10⁷ rows, from memory).

        Raises
        ------
        MedbenchError
            There is no store file.
        StoreDamagedError
            The file is no SQLite database, fails the check, or lacks the results tables.
        """
        path = Path(folder) / STORE_NAME if Path(folder).is_dir() else Path(folder)
        if not path.is_file():
            raise MedbenchError(
                f"no results store at {path}; run `medbench run --out {folder}` first"
            )
        try:
            store = cls(path, readonly=True)
        except sqlite3.DatabaseError as exc:
            raise StoreDamagedError(_damaged_text(path, exc, fix)) from None
        store._fix = fix
        if not check and readonly:
            return store
        try:
            store._check()
        except BaseException:
            store.close()
            raise
        if readonly:
            return store
        store.close()
        store = cls(path, readonly=False, echo=echo)
        store._fix = fix
        return store

    def _check(self) -> None:
        """Raise :class:`StoreDamagedError` unless the file is a sound results store."""
        try:
            tables = {row[0] for row in self._db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")}
            missing = [name for name in REQUIRED_TABLES if name not in tables]
            if missing:
                raise StoreDamagedError(_damaged_text(
                    self.path, f"it has no table {', '.join(missing)}", self._fix))
            read_ahead(self.path)
            problems = [row[0] for row in self._db.execute("PRAGMA quick_check(3)")]
        except sqlite3.DatabaseError as exc:
            raise self._damaged(exc) from None
        if problems != ["ok"]:
            detail = "; ".join(" ".join(str(p).split()) for p in problems)  # one line
            raise StoreDamagedError(_damaged_text(self.path, detail, self._fix))

    def _damaged(self, exc: BaseException | str) -> StoreDamagedError:
        return StoreDamagedError(_damaged_text(self.path, exc, self._fix))

    def _create(self) -> None:
        cols = ",\n".join(f"{name} {sqltype}" for name, sqltype in COLUMNS.items())
        with self._db:
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS runs (run_id TEXT PRIMARY KEY, started_at TEXT, "
                "finished_at TEXT, status TEXT, arguments TEXT, environment TEXT)"
            )
            self._db.execute(
                f"CREATE TABLE IF NOT EXISTS results ({cols}, PRIMARY KEY ({', '.join(KEY)}))"
            )
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS visuals (run_id TEXT NOT NULL, dataset TEXT NOT NULL, "
                "image_id TEXT NOT NULL, codec TEXT NOT NULL, setting TEXT NOT NULL, "
                "role TEXT NOT NULL, bit_depth INTEGER, top INTEGER, left_ INTEGER, "
                "dtype TEXT, height INTEGER, width INTEGER, pixels BLOB, "
                "PRIMARY KEY (run_id, dataset, image_id, codec, setting, role))"
            )
            self._db.execute(  # run --keep-pixels: whole images in OUT/pixels/ (benchmark.pixels)
                "CREATE TABLE IF NOT EXISTS kept_pixels (run_id TEXT NOT NULL, dataset TEXT NOT "
                "NULL, image_id TEXT NOT NULL, codec TEXT NOT NULL, setting TEXT NOT NULL, "
                "bit_depth INTEGER, dtype TEXT, height INTEGER, width INTEGER, sha256 TEXT, "
                "path TEXT, PRIMARY KEY (run_id, dataset, image_id, codec, setting))"
            )
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS run_images (run_id TEXT NOT NULL, dataset TEXT NOT "
                "NULL, image_id TEXT NOT NULL, source TEXT, file_hash TEXT, "
                "PRIMARY KEY (run_id, dataset, image_id))"
            )
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS pending (run_id TEXT NOT NULL, dataset TEXT NOT NULL, "
                "image_id TEXT NOT NULL, codec TEXT NOT NULL, setting TEXT NOT NULL, "
                "started_at TEXT, PRIMARY KEY (run_id, dataset, image_id, codec, setting))"
            )
            observer_storage.create_tables(self._db)  # run --observer (benchmark.observers)
            existing = results_columns(self._db)
            for name, sqltype in COLUMNS.items():  # stores written by older versions
                if name not in existing:
                    self._db.execute(
                        f"ALTER TABLE results ADD COLUMN {name} {sqltype.replace(' NOT NULL', '')}"
                    )
            # "Has run R an image a model trained on?" without reading R's rows.
            self._db.execute("CREATE INDEX IF NOT EXISTS results_seen ON results (run_id) "
                             "WHERE seen_in_training = 1")
            # per-patient lines for reports (benchmark.lines)
            kept_lines.install(self._db, self._echo, self.path)

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """Every read inside sees the store as the first one saw it (one read
        transaction): a report of a run still being written reads one state of it, not
        a different one in each of its queries."""
        self._db.execute("BEGIN")
        try:
            yield
        finally:
            self._db.rollback()

    # -- runs -------------------------------------------------------------------------
    def new_run(self, arguments: dict[str, Any], environment: dict[str, Any]) -> str:
        run_id = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6]
        with self._writing():
            self._db.execute(
                "INSERT INTO runs VALUES (?, ?, NULL, 'running', ?, ?)",
                (run_id, _now(), json.dumps(arguments), json.dumps(environment)),
            )
        return run_id

    @_guarded
    def runs(self) -> list[tuple[str, str]]:
        """``(run_id, status)`` of every run in the store, oldest first."""
        return [tuple(r) for r in self._db.execute(  # type: ignore[misc]
            "SELECT run_id, status FROM runs ORDER BY started_at, rowid")]

    @_guarded
    def latest_run(self) -> str | None:
        row = self._db.execute(
            "SELECT run_id FROM runs ORDER BY started_at DESC, rowid DESC LIMIT 1"
        ).fetchone()
        return row[0] if row else None

    def run_or_latest(self, run_id: str | None = None) -> str:
        """``run_id``, or the latest run when None; an empty store is a clear error."""
        run_id = run_id or self.latest_run()
        if run_id is None:
            folder = self.path.parent
            raise MedbenchError(f"the results store in {folder} holds no run yet; run "
                                f"`medbench run --out {folder}` first")
        return run_id

    @_guarded
    def run_info(self, run_id: str) -> dict[str, Any]:
        row = self._db.execute(
            "SELECT run_id, started_at, finished_at, status, arguments, environment "
            "FROM runs WHERE run_id = ?",
            (run_id,),
        ).fetchone()
        if row is None:
            raise MedbenchError(f"run {run_id!r} is not in {self.path}")
        try:
            arguments, environment = (json.loads(text or "{}") for text in row[4:6])
        except json.JSONDecodeError as exc:
            raise self._damaged(f"the arguments of run {run_id} are not JSON: {exc}") from None
        if not isinstance(arguments, dict) or not isinstance(environment, dict):
            raise self._damaged(f"the arguments of run {run_id} are not a JSON object")
        return {
            "run_id": row[0],
            "started_at": row[1],
            "finished_at": row[2],
            "status": row[3],
            "arguments": arguments,
            "environment": environment,
        }

    def set_run_status(self, run_id: str, status: str) -> None:
        with self._writing():
            self._db.execute(
                "UPDATE runs SET status = ?, finished_at = ? WHERE run_id = ?",
                (status, _now(), run_id),
            )
            if status != "running":  # nothing is in flight any more
                self._db.execute("DELETE FROM pending WHERE run_id = ?", (run_id,))
            if status == "finished":  # its lines, if a row was replaced (not on Ctrl-C:
                # minutes at 10⁷ rows; the next writer rebuilds them)
                kept_lines.refresh(self._db, run_id, self._echo)

    # -- the images a run chose ------------------------------------------------------------
    def set_run_images(self, run_id: str, images: list[tuple[str, str, str, str]]) -> None:
        """Record (or update) ``(dataset, image_id, source, file_hash)`` of a run's images."""
        with self._writing():
            self._db.executemany(
                "INSERT OR REPLACE INTO run_images VALUES (?, ?, ?, ?, ?)",
                [(run_id, *image) for image in images],
            )

    @_guarded
    def run_images(self, run_id: str) -> list[tuple[str, str, str, str]]:
        """``(dataset, image_id, source, file_hash)`` of the images ``run_id`` chose, in the
        order recorded; empty for runs written before images were recorded."""
        try:
            rows = self._db.execute(
                "SELECT dataset, image_id, source, file_hash FROM run_images WHERE run_id = ? "
                "ORDER BY rowid", (run_id,)).fetchall()
        except sqlite3.OperationalError:  # a store written before run_images existed
            return []
        return [tuple(r) for r in rows]  # type: ignore[misc]

    def delete_image(self, run_id: str, dataset: str, image_id: str) -> int:
        """Delete one image's rows (and visuals) of a run; returns how many rows went."""
        with self._writing():
            count = self._db.execute(
                "DELETE FROM results WHERE run_id = ? AND dataset = ? AND image_id = ?",
                (run_id, dataset, image_id)).rowcount
            for table in ("visuals", "kept_pixels"):  # kept files stay: others may share them
                self._db.execute(
                    f"DELETE FROM {table} WHERE run_id = ? AND dataset = ? AND image_id = ?",
                    (run_id, dataset, image_id))
            observer_storage.delete_image(self._db, run_id, dataset, image_id)
        return count

    # -- the cell in flight --------------------------------------------------------------
    def mark_pending(self, run_id: str, images: Iterable[tuple[str, str]], codec: str,
                     setting: str) -> None:
        """Record, committed, that the cell ``(codec, setting)`` of ``images`` (``(dataset,
        image_id)``: one, or a batch coded together) is about to be coded in this process,
        and that the cells before it are no longer in flight."""
        started = _now()
        with self._writing():
            self._db.execute("DELETE FROM pending WHERE run_id = ?", (run_id,))
            self._db.executemany(
                "INSERT OR REPLACE INTO pending VALUES (?, ?, ?, ?, ?, ?)",
                [(run_id, dataset, image_id, codec, setting, started)
                 for dataset, image_id in images])

    @_guarded
    def pending_cells(self, run_id: str) -> list[tuple[str, str, str, str, str]]:
        """``(dataset, image_id, codec, setting, started_at)`` of cells in flight when the
        process coding ``run_id`` last stopped."""
        try:
            rows = self._db.execute(
                "SELECT dataset, image_id, codec, setting, started_at FROM pending "
                "WHERE run_id = ?", (run_id,)).fetchall()
        except sqlite3.OperationalError:  # an older store
            return []
        return [tuple(r) for r in rows]  # type: ignore[misc]

    @_guarded
    def model_ids(self, run_id: str) -> dict[tuple[str, str], set[str]]:
        """``(codec, setting)`` → the ``model_id``s its rows' ``model_info`` name (learned
        codecs: the model that coded them)."""
        found: dict[tuple[str, str], set[str]] = {}
        for codec, setting, info in self._db.execute(
                "SELECT DISTINCT codec, setting, model_info FROM results WHERE run_id = ? AND "
                "model_info IS NOT NULL", (run_id,)):
            try:
                model_id = json.loads(info).get("model_id")
            except (json.JSONDecodeError, AttributeError):
                continue
            if model_id:
                found.setdefault((codec, setting), set()).add(str(model_id))
        return found

    # -- rows ---------------------------------------------------------------------------
    @_guarded
    def finished_by_image(self, run_id: str) -> dict[tuple[str, str], int]:
        """``(dataset, image_id)`` → how many of its cells ``run_id`` has finished: what
        ``--resume`` needs first, counted by SQLite (a 10⁷-row store has 10⁵ images; a
        set of its 10⁷ cells in Python would take gigabytes)."""
        return {(d, i): n for d, i, n in self._db.execute(
            "SELECT dataset, image_id, COUNT(*) FROM results WHERE run_id = ? "
            "GROUP BY dataset, image_id", (run_id,))}

    @_guarded
    def finished_cells_of(self, run_id: str, dataset: str, image_id: str
                          ) -> set[tuple[str, str]]:
        """``(codec, setting)`` of the cells of one image ``run_id`` has finished (a
        look-up in the store's key, not a scan)."""
        return {tuple(r) for r in self._db.execute(  # type: ignore[misc]
            "SELECT codec, setting FROM results WHERE run_id = ? AND dataset = ? AND "
            "image_id = ?", (run_id, dataset, image_id))}

    @_guarded
    def unreadable_images(self, run_id: str) -> dict[str, int]:
        """Per dataset (sorted), how many images of run ``run_id`` no worker could read
        (their rows are errors saying so), counted in SQL."""
        where, params = run_rows_where(self._db, run_id)
        return dict(self._db.execute(
            f"SELECT dataset, COUNT(DISTINCT image_id) FROM results WHERE {where} AND "
            f"substr(error, 1, {len(UNREADABLE)}) = ? GROUP BY dataset ORDER BY dataset",
            [*params, UNREADABLE]).fetchall())

    def write(self, row: ResultRow) -> None:
        """Insert (or replace) one finished cell, with its visual crops, and commit at once."""
        self.write_many([row])

    def write_many(self, rows: Iterable[ResultRow]) -> None:
        """Insert (or replace) finished cells, with their visual crops, in one committed
        transaction: a commit costs about as much as a thousand inserted rows, so a writer
        fed by many workers keeps up by committing what has arrived together
        (``benchmarks/big_store.py write`` measures both)."""
        rows = list(rows)
        for row in rows:
            if row.status not in STATUSES:
                raise ValueError(f"row status {row.status!r} is not one of "
                                 f"{', '.join(STATUSES)}")
        names = ", ".join(COLUMNS)
        marks = ", ".join("?" for _ in COLUMNS)
        # kept pixel files are written before their rows
        kept = [self._kept_file(row, view) for row in rows for view in row.kept]
        now = _now()
        values = [[_sql_value(getattr(row, name)) for name in COLUMNS] for row in rows]
        at = list(COLUMNS).index("finished_at")
        for line in values:
            line[at] = now if line[at] is None else line[at]
        with self._writing():
            self._db.executemany(f"INSERT OR REPLACE INTO results ({names}) VALUES ({marks})",
                                 values)
            self._db.executemany(
                "DELETE FROM pending WHERE run_id = ? AND dataset = ? AND image_id = ? "
                "AND codec = ? AND setting = ?",
                [(r.run_id, r.dataset, r.image_id, r.codec, r.setting) for r in rows])
            for row in rows:
                for view in row.visuals:
                    self._write_visual(row, view)
                observer_storage.write_sites(self._db, row)
            self._db.executemany(
                "INSERT OR REPLACE INTO kept_pixels VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                kept)

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """One committed transaction; a failed write (disk full...) is a
        :class:`StoreWriteError` saying what to do."""
        try:
            with self._db:
                yield
        except sqlite3.OperationalError as exc:
            raise StoreWriteError(
                f"could not write to the results store {self.path} ({_reason(exc)}); free "
                "space or fix the folder's permissions, then continue with --resume") from None
        except sqlite3.DatabaseError as exc:  # "database disk image is malformed"
            raise self._damaged(exc) from None

    def _write_visual(self, row: ResultRow, view: VisualCrop) -> None:
        blob, dtype, height, width = pack(view.pixels)
        codec, setting = (row.codec, row.setting) if view.decoded else ("", "")
        self._db.execute(
            "INSERT OR REPLACE INTO visuals VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (row.run_id, row.dataset, row.image_id, codec, setting, view.role,
             view.bit_depth, view.top, view.left, dtype, height, width, blob),
        )

    def _kept_file(self, row: ResultRow, view: KeptPixels) -> tuple:
        """Write one kept image's file (``run --keep-pixels``); its ``kept_pixels`` row."""
        try:
            sha, rel = kept_files.write(self.path.parent, view.pixels)
        except OSError as exc:
            raise StoreWriteError(
                f"could not write a kept image into {self.path.parent / kept_files.PIXELS_DIR}"
                f" ({_reason(exc)}); free space or fix the folder's permissions, then "
                "continue with --resume") from None
        codec, setting = (row.codec, row.setting) if view.decoded else ("", "")
        height, width = view.pixels.shape
        return (row.run_id, row.dataset, row.image_id, codec, setting, view.bit_depth,
                view.pixels.dtype.str, height, width, sha, rel)

    @_guarded
    def kept_pixels(self, run_id: str) -> pd.DataFrame:
        """The images a run kept (``run --keep-pixels``): one row per cell (``codec`` ""
        is the original) with ``bit_depth, dtype, height, width, sha256, path`` (relative
        to the results folder; read them with :func:`medbench.benchmark.pixels.read`)."""
        columns = ["dataset", "image_id", "codec", "setting", "bit_depth", "dtype", "height",
                   "width", "sha256", "path"]
        try:
            rows = self._db.execute(
                f"SELECT {', '.join(columns)} FROM kept_pixels WHERE run_id = ? ORDER BY rowid",
                (run_id,)).fetchall()
        except sqlite3.OperationalError:  # a store written before pixels were kept
            rows = []
        return pd.DataFrame(rows, columns=columns)

    @_guarded
    def visuals(self, run_id: str) -> list[dict[str, Any]]:
        """Stored visual-comparison pixels of a run: one dict per view (``codec`` "" is the
        original), with the ``pixels`` array unpacked."""
        try:
            cursor = self._db.execute(
                "SELECT dataset, image_id, codec, setting, role, bit_depth, top, left_, dtype, "
                "height, width, pixels FROM visuals WHERE run_id = ? ORDER BY rowid", (run_id,))
        except sqlite3.OperationalError:  # a store written before visuals were kept
            return []
        out = []
        for (dataset, image_id, codec, setting, role, depth, top, left, dtype, h, w,
             blob) in cursor:
            out.append({"dataset": dataset, "image_id": image_id, "codec": codec,
                        "setting": setting, "role": role, "bit_depth": depth, "top": top,
                        "left": left, "pixels": unpack(blob, dtype, h, w)})
        return out

    # -- the observer experiment (run --observer, medbench.benchmark.observers) ------------
    @_guarded
    def observer_sites(self, run_id: str) -> pd.DataFrame:
        """The run's observed sites (one row per image × cell × site × condition)."""
        return observer_storage.read_sites(self._db, run_id)

    def write_observer(self, run_id: str, table: pd.DataFrame) -> None:
        """Replace the run's ``observer`` summary table with ``table``."""
        with self._writing():
            observer_storage.write_table(self._db, run_id, table)

    @_guarded
    def observer(self, run_id: str) -> pd.DataFrame:
        """The run's ``observer`` summary table (empty when none was written)."""
        return observer_storage.read_table(self._db, run_id)

    @_guarded
    def compute(self, function: Callable[..., Any], *args: Any) -> Any:
        """``function(connection, *args)``: what a report computes in SQL on this store
        (read-only when opened by :meth:`open_existing`), a damaged file's failure a
        :class:`StoreDamagedError`."""
        return function(self._db, *args)

    @_guarded
    def frame(self, run_id: str | None = None) -> pd.DataFrame:
        """Result rows as a DataFrame (one run, or all runs when ``run_id`` is None)."""
        if run_id is None:
            return self._frame("1", ())
        return self._frame(*run_rows_where(self._db, run_id))

    @_guarded
    def frame_where(self, where: str, params: Sequence[Any] = (),
                    leave_out: Sequence[str] = (),
                    columns: Sequence[str] | None = None) -> pd.DataFrame:
        """The result rows the SQL condition ``where`` selects, as :meth:`frame` gives
        them; the columns of ``leave_out`` are not read (they hold None), or only
        ``columns`` are (and the frame has only those): a large selection stays small
        where nobody reads its per-row texts."""
        return self._frame(where, tuple(params), leave_out, columns)

    def _frame(self, where: str, params: tuple, leave_out: Sequence[str] = (),
               columns: Sequence[str] | None = None) -> pd.DataFrame:
        # A store written by an older version lacks the newer columns: they read as empty.
        present = results_columns(self._db)
        wanted = list(COLUMNS) if columns is None else list(columns)
        names = [c for c in wanted if c in present and c not in leave_out]
        query = f"SELECT {', '.join(names)} FROM results WHERE {where} ORDER BY rowid"
        df = read_frame(self._db, query, params)  # in bounded chunks
        df = df.reindex(columns=wanted)
        for flag in FLAGS:  # SQLite keeps 0/1
            if flag in df:
                df[flag] = df[flag].map(lambda v: None if pd.isna(v) else bool(v))
        return df

    @_guarded
    def export_csv(self, run_id: str, path: Path) -> Path:
        """Write run ``run_id``'s rows to ``path`` as CSV, streamed from SQLite: a
        10⁷-cell run's rows would take ~20 GB as a frame (:meth:`frame`); a CSV row here
        holds the values :meth:`frame` gives (the flags ``True``/``False``, a missing
        value empty, integers as integers even where some rows lack one). The file
        appears whole or not at all."""
        path = Path(path)
        present = results_columns(self._db)
        values = [_csv_value(name, name in present) for name in COLUMNS]
        where, params = run_rows_where(self._db, run_id)
        cursor = self._db.execute(f"SELECT {', '.join(values)} FROM results WHERE {where} "
                                  "ORDER BY rowid", params)
        partial = path.with_name(f".{path.name}.partial")
        try:
            with open(partial, "w", newline="", encoding="utf-8") as file:
                writer = csv.writer(file, lineterminator="\n")
                writer.writerow(COLUMNS)
                while rows := cursor.fetchmany(10_000):
                    writer.writerows(rows)
            os.replace(partial, path)
        finally:
            partial.unlink(missing_ok=True)
        return path


def results_columns(db: sqlite3.Connection) -> set[str]:
    """The columns of the store's results table (older stores lack the newer ones)."""
    return {row[1] for row in db.execute("PRAGMA table_info(results)")}


def read_ahead(path: Path) -> bool:
    """Read the file at ``path`` once, in order, into the page cache where it fits in the
    memory free for it (Linux; elsewhere, or on any failure, nothing): whether it did.

    ``quick_check`` walks every B-tree in key order: on a file not in the page cache
    that is a random read per page, and a 12.9 GB store (10⁷ rows) took over 10 minutes
    to check (~20 MB/s), against ~20 s to read it in order and ~20 s to check it then.
    The kernel copies the file to ``/dev/null`` (``sendfile``): pages already cached
    cost next to nothing (under a second at 12.9 GB), and nothing passes through Python.
    """
    try:
        size = path.stat().st_size
        if size > _free_memory() * 0.8:  # it would push out its own first pages
            return False
        source, sink = os.open(path, os.O_RDONLY), os.open(os.devnull, os.O_WRONLY)
        try:
            done = 0
            while done < size:
                sent = os.sendfile(sink, source, done, min(size - done, 1 << 30))
                if not sent:
                    break
                done += sent
        finally:
            os.close(source)
            os.close(sink)
    except (OSError, AttributeError, ValueError):  # no sendfile, /proc or /dev/null here
        return False
    return True


def _free_memory() -> int:
    """Bytes of memory available without swapping (``MemAvailable``; 0 where unknown)."""
    with open("/proc/meminfo", encoding="ascii") as info:
        for line in info:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


#: Columns a frame reads as booleans (SQLite keeps 0/1).
FLAGS = ("lossless_exact", "seen_in_training")


def _csv_value(name: str, present: bool) -> str:
    """What the CSV export selects for column ``name`` (empty where an older store lacks it)."""
    if not present:
        return f"NULL AS {name}"
    if name in FLAGS:
        return f"CASE WHEN {name} IS NULL THEN NULL WHEN {name} THEN 'True' ELSE 'False' END"
    return name


def run_rows_where(db: sqlite3.Connection, run_id: str, schema: str = "main"
                   ) -> tuple[str, list]:
    """The SQL condition (and its parameters) selecting run ``run_id``'s rows of
    ``results`` so that SQLite reads them in the order of the file (rowid), not of the
    key: a run is rarely written in key order, and a whole run read in key order costs a
    page read per row wherever it lies (a 10⁷-row store compared from disk: ~17 MB/s
    instead of the disk's sequential rate). ``+run_id`` keeps SQLite from choosing the
    key instead; a condition on the key itself (an image's rows) still uses it. Through
    the key where the run's rows are few among the rows around them
    (:func:`run_rowids`)."""
    span = run_rowids(db, run_id, schema)
    if span is None:
        return "run_id = ?", [run_id]
    return "rowid BETWEEN ? AND ? AND +run_id = ?", [*span, run_id]


def run_rowids(db: sqlite3.Connection, run_id: str, schema: str = "main"
               ) -> tuple[int, int] | None:
    """The first and last rowid of run ``run_id``'s rows in ``schema``'s ``results``:
    the table's ends at once where it holds this run only (as it usually does), else
    the run's key entries are read; ``(0, -1)``, no rowid, where the run has no rows;
    None where other runs' rows are most of that span (a run resumed after a larger
    one was written into the same store), which is then better read through the key."""
    table = f"{schema}.results"
    others = db.execute(f"SELECT EXISTS (SELECT 1 FROM {table} WHERE run_id < ?) "
                        f"OR EXISTS (SELECT 1 FROM {table} WHERE run_id > ?)",
                        (run_id, run_id)).fetchone()[0]
    if not others:  # the table's ends: two look-ups (a count would read the whole key)
        low, high = db.execute(f"SELECT MIN(rowid), MAX(rowid) FROM {table}").fetchone()
        return (0, -1) if low is None else (int(low), int(high))
    low, high, rows = db.execute(f"SELECT MIN(rowid), MAX(rowid), COUNT(*) FROM {table} "
                                 "WHERE run_id = ?", (run_id,)).fetchone()
    if low is None:
        return 0, -1
    return None if 2 * rows < high - low + 1 else (int(low), int(high))


def _reason(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


def _damaged_text(path: Path, problem: BaseException | str, fix: str) -> str:
    detail = problem if isinstance(problem, str) else _reason(problem)
    if isinstance(problem, pd.errors.DatabaseError) and problem.__cause__ is not None:
        detail = _reason(problem.__cause__)  # pandas' text repeats the whole query
    return (f"the results store {path} is damaged or not a medbench store ({detail}); "
            f"{fix}, or move the damaged file away")


def _sql_value(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "item"):  # numpy scalars
        return _sql_value(value.item())
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return value
