"""Per-setting means computed where the rows are: in the results store, with SQL.

:func:`means_in_store` gives, for the rows of one run a report shows, the table
:func:`~medbench.reports.means.setting_means` gives from those rows as a DataFrame (same
columns, order, counts, means and intervals), without holding the rows: in one pass,
SQLite reduces them to one line per setting × patient group (what the setting's line
needs of the group's rows, and each metric's count and sum), and only those reach
Python, a setting at a time. What each number is (exact images, pooled MSE, intervals and their
methods) is documented in :mod:`medbench.reports.means`; this module only moves the work.

- Means are sums over counts taken by SQLite, where ``setting_means`` lets numpy sum the
  values: the same numbers to about 1e-15 (summation order).
- Intervals need each metric's sum and image count per group (the cluster bootstrap
  resamples groups, :class:`~medbench.reports.means.Bootstraps`), or, where every image is
  its own group (Student-t), the values themselves, which are then the groups' sums.
  Groups are numbered in sorted order of their names, as ``np.unique`` numbers them:
  SQLite's ``ORDER BY`` on text compares UTF-8 bytes, which is code-point order.
- Rows of one setting that lack a train dataset (an image no worker could read) count on
  the line of the one train dataset the setting's other rows name, as in
  ``setting_means``: their group lines are joined to that train dataset's in Python.

Memory grows with the groups of one setting, not with rows (a 10⁷-row run of 23
settings over 108,690 patients: 2.5 million group lines, streamed setting by setting).
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from medbench.benchmark import lines as kept
from medbench.benchmark.metrics import psnr_from_mse
from medbench.benchmark.store import results_columns, run_rows_where
from medbench.benchmark.targets import PREFIX as TARGET_PREFIX
from medbench.reports.budget import SEPARATOR
from medbench.reports.means import (
    _PSNRS,
    COLUMNS,
    COMPLEXITY,
    CONFIDENCE,
    METRICS,
    MORE_METRICS,
    Bootstraps,
    _decide,
    _methods_text,
)

#: The report's parts of a run (:func:`report_rows_where`).
PARTS = ("settings", "targets", "all", "kept", "milestones")
#: Group lines fetched from SQLite at a time.
FETCH = 5_000
_ALL_METRICS = (*METRICS, *MORE_METRICS)
#: The per-group columns :class:`StoreMeans` keeps (what a resampled RD curve needs).
_KEPT = ("grp", "bpp_n", "bpp_s", "psnr_n", "psnr_s")
#: Whether a row's setting is a rate-matched cell's (``target:…``), in SQL.
_TARGET_SQL = kept.TARGET_SQL
#: The columns each selected row carries into the means.
_CARRIED = ("dataset", "codec", "setting", "train_dataset", "status", "setting_rank",
            "codec_kind", "max_abs_error", *_ALL_METRICS, "group_kind", "batch_size",
            *COMPLEXITY, "mse", "bit_depth")
#: Every column the means read (a store written by an older version may lack some: they
#: read as NULL).
_NEEDED = (*_CARRIED, "group_id", "image_id")


def report_rows_where(db: sqlite3.Connection, run_id: str, part: str = "all",
                      seen: bool | None = None) -> tuple[str, list]:
    """The SQL condition (and its parameters) selecting the rows of run ``run_id`` that a
    report compares, as :func:`medbench.reports.build.build_report` selects them.

    Left out: every row of an image a learned model trained on (:mod:`.seen`) and the
    rows of milestone checkpoints (:func:`~medbench.reports.budget.split_milestones`).
    ``part``: ``settings`` (the settings' rows), ``targets`` (rate-matched rows,
    ``target:`` settings), ``all`` (both), ``kept`` (every row but the seen images',
    milestones included) or ``milestones`` (the milestone checkpoints' rows).
    ``seen``: whether the run has such images, where the caller knows
    (:func:`has_seen_images`; finding out reads the run's rows).
    """
    if part not in PARTS:
        raise ValueError(f"part must be one of {PARTS}, not {part!r}")
    present = results_columns(db)
    kind = "codec_kind" if "codec_kind" in present else "NULL"  # older stores lack some
    knob = "knob" if "knob" in present else "NULL"
    learned = f"COALESCE({kind}, 'learned') = 'learned'"
    run, params = run_rows_where(db, run_id)  # the run's rows in the order of the file
    where = [run]
    if part == "milestones":
        where.append(f"{learned} AND instr(CAST(setting AS TEXT), '{SEPARATOR}') > 0")
    elif part != "kept":
        where.append(f"NOT ({learned} AND (instr(CAST(setting AS TEXT), '{SEPARATOR}') > 0 "
                     f"OR instr(COALESCE(CAST({knob} AS TEXT), ''), '{SEPARATOR}') > 0))")
    if seen is None:
        seen = has_seen_images(db, run_id)
    if seen:  # an image a model trained on: none of its rows, whatever the codec
        where.append("NOT EXISTS (SELECT 1 FROM results AS s WHERE s.run_id = "
                     "results.run_id AND s.dataset = results.dataset AND s.image_id = "
                     "results.image_id AND s.seen_in_training = 1)")
    if part == "settings":
        where.append(f"NOT {_TARGET_SQL}")
    elif part == "targets":
        where.append(_TARGET_SQL)
    return " AND ".join(where), params


def kept_lines_where(db: sqlite3.Connection, run_id: str, part: str = "all",
                     seen: bool | None = None) -> tuple[str, list] | None:
    """The condition on the store's kept per-patient lines (:mod:`medbench.benchmark.lines`)
    selecting those of :func:`report_rows_where`'s rows, for :func:`means_in_store`; None
    where the run's lines cannot stand for its rows (none kept, stale, miscounted) or
    the run has images a model trained on (whose rows are left out image by image)."""
    if part not in PARTS:
        raise ValueError(f"part must be one of {PARTS}, not {part!r}")
    if seen is None:
        seen = has_seen_images(db, run_id)
    if seen or not kept.usable(db, run_id):
        return None
    return kept.lines_where(run_id, part)


def has_seen_images(db: sqlite3.Connection, run_id: str) -> bool:
    """Whether a row of run ``run_id`` marks its image as one a model trained on."""
    return "seen_in_training" in results_columns(db) and db.execute(
        "SELECT 1 FROM results WHERE run_id = ? AND seen_in_training = 1 LIMIT 1",
        (run_id,)).fetchone() is not None


@dataclass
class StoreMeans:
    """What :func:`means_in_store` computed for each line of ``setting_means``.

    ``table`` is ``setting_means``' table; the other fields are keyed by a line's
    ``(dataset, codec, train dataset or "", setting)``: ``depths`` the bit depths of its
    ``ok`` images, ``kinds`` their group kinds, and (``keep`` lines only) ``groups`` its
    per-group sums and counts of bpp and finite PSNR (columns ``grp``, ``bpp_n``,
    ``bpp_s``, ``psnr_n``, ``psnr_s``; groups sorted by name), from which :mod:`.bd_ci`
    resamples curves.
    """

    table: pd.DataFrame
    depths: dict[tuple, tuple[int, ...]] = field(default_factory=dict)
    kinds: dict[tuple, tuple[str, ...]] = field(default_factory=dict)
    groups: dict[tuple, pd.DataFrame] = field(default_factory=dict)
    #: ``means_in_store(parts=…)``: the same of each dataset × value of that column
    #: (datasets read ``<dataset>`` :data:`BY_SEPARATOR` ``<value>``, no intervals).
    parts: StoreMeans | None = None


def report_means(db: sqlite3.Connection, run_id: str) -> StoreMeans:
    """The setting means of the rows a report shows of run ``run_id`` (its settings, then
    its rate-matched cells), the groups of its settings kept for the BD intervals."""
    seen = has_seen_images(db, run_id)
    where, params = report_rows_where(db, run_id, "all", seen)
    return means_in_store(db, where, params, keep=lambda key: not is_target(key[3]),
                          lines=kept_lines_where(db, run_id, "all", seen))


def is_target(setting: object) -> bool:
    """Whether a setting is a rate-matched cell's (``target:…``)."""
    return str(setting).startswith(TARGET_PREFIX)


def curve_depths(found: StoreMeans, targets: bool = False
                 ) -> dict[tuple[str, str, str], tuple[int, ...]]:
    """The bit depths of each curve's ``ok`` images (settings; rate-matched cells too
    with ``targets``), keyed as :func:`~medbench.reports.curves.curves_from_means` reads
    them."""
    depths: dict[tuple[str, str, str], set[int]] = {}
    for (dataset, codec, train, setting), found_depths in found.depths.items():
        if targets or not is_target(setting):
            depths.setdefault((dataset, codec, train), set()).update(found_depths)
    return {key: tuple(sorted(values)) for key, values in depths.items() if values}


def means_in_store(db: sqlite3.Connection, where: str, params: list,
                   keep: Callable[[tuple], bool] | None = None, parts: str | None = None,
                   in_parts: Callable[[str], bool] | None = None,
                   intervals: bool = True,
                   lines: tuple[str, list] | None = None) -> StoreMeans:
    """:func:`~medbench.reports.means.setting_means` of the rows of the store's results
    that ``where`` selects (:func:`report_rows_where`), computed in SQLite, with what else
    each line's rows give (:class:`StoreMeans`); ``keep(key)`` chooses the lines whose
    groups are kept.

    Ties of rank are broken by where a setting's first row is, settings first seen in a
    ``target:`` row after every other (a report averages its settings' rows followed by
    its rate-matched rows).

    ``parts`` (a column, e.g. ``body_part``): in the same pass, also ``setting_means`` of
    each dataset × value of it apart (rows without a value left out; only the settings
    ``in_parts(setting)`` accepts, all without it), without intervals, as
    :attr:`StoreMeans.parts`. Without ``intervals`` the rows are not reduced to patients
    (much faster), the ``_ci`` and ``groups`` columns are NaN and ``ci_method`` None.

    ``lines``: the condition (and parameters) selecting the same rows' per-patient lines
    that the store keeps (:func:`kept_lines_where`, :mod:`medbench.benchmark.lines`),
    read instead of the rows where given (``parts`` then ``body_part`` or None): the
    same numbers, without reading or sorting the rows.
    """
    present = results_columns(db)
    col = {c: (c if c in present else "NULL") for c in _NEEDED}
    if parts is not None and parts not in present:
        parts = None  # an older store: no such column, no breakdown
    if lines is not None and parts not in (None, "body_part"):
        lines = None  # the kept lines are split by body part only
    found = StoreMeans(pd.DataFrame())
    split = _Breakdown() if parts is not None else None
    pending = Bootstraps()
    if lines is not None:
        query, params = kept.select_sql(lines[0], intervals, parts is not None), lines[1]
    else:
        query = _lines_sql(col, where, intervals, parts)
    out: list[dict] = []
    for key, setting, groups in _lines(db, query, params, split, in_parts):
        out.append(_line(setting, groups, pending if intervals else None))
        if not intervals:  # its rows were one group: no count of groups, no method
            out[-1].update(groups=math.nan, ci_method=None)
        found.depths[key] = _split(setting["depths"], int)
        found.kinds[key] = _split(setting["kinds"], str)
        if keep is not None and keep(key):
            # Copied out: a selection of columns would keep the whole block alive (at 10⁷
            # rows the kept groups held 2.6 GB of the other columns).
            found.groups[key] = pd.DataFrame({c: groups[c].to_numpy(copy=True)
                                              for c in _KEPT})
    if split is not None:
        found.parts = split.means()
    if not out:
        return StoreMeans(pd.DataFrame(columns=COLUMNS), parts=found.parts)
    if intervals:
        pending.run()
    found.table = _table(out, intervals)
    return found


def _table(lines: list[dict], intervals: bool) -> pd.DataFrame:
    """``setting_means``' table of :func:`_line`'s lines, in its order."""
    for line in lines:
        decisions = line.pop("_intervals")
        for name in _ALL_METRICS:
            line[f"{name}_ci"] = decisions[name].result().halfwidth if intervals else math.nan
    out = pd.DataFrame(lines, columns=[*COLUMNS, "_first"])
    out["train_dataset"] = out["train_dataset"].map(lambda v: None if v == "" else v)
    # setting_means' order: dataset, codec, train dataset, rank; then first appearance.
    order = out.assign(train_key=out["train_dataset"].fillna(""))
    order = order.sort_values(["dataset", "codec", "train_key", "setting_rank", "_first"],
                              kind="stable")
    return out.loc[order.index, COLUMNS].reset_index(drop=True)


@dataclass
class _Breakdown:
    """The lines of each dataset × value of ``parts`` (:func:`means_in_store`)."""

    lines: list[dict] = field(default_factory=list)
    depths: dict[tuple, tuple[int, ...]] = field(default_factory=dict)
    kinds: dict[tuple, tuple[str, ...]] = field(default_factory=dict)

    def add(self, block: pd.DataFrame) -> None:
        """The lines of one dataset × codec × setting's group lines, by value."""
        for value, lines in block[block["part"].notna()].groupby("part", sort=True):
            composite = lines.assign(dataset=f"{lines['dataset'].iloc[0]}{BY_SEPARATOR}{value}")
            for key, setting, groups in _setting_lines(composite):
                line = _line(setting, groups, None)
                line.update(groups=math.nan, ci_method=None)
                self.lines.append(line)
                self.depths[key] = _split(setting["depths"], int)
                self.kinds[key] = _split(setting["kinds"], str)

    def means(self) -> StoreMeans:
        if not self.lines:
            return StoreMeans(pd.DataFrame(columns=COLUMNS))
        return StoreMeans(_table(self.lines, False), self.depths, self.kinds)


#: Between a dataset and a value of ``parts`` in a :attr:`StoreMeans.parts` dataset.
BY_SEPARATOR = chr(30)


def split_by(dataset: object) -> tuple[str, str]:
    """(dataset, value of ``parts``) of a :attr:`StoreMeans.parts` table's dataset."""
    name, _, value = str(dataset).partition(BY_SEPARATOR)
    return name, value


def _split(joined: object, kind: type) -> tuple:
    """The sorted distinct values of a ``group_concat`` (empty for none; a comma inside a
    value was stored as the unit separator)."""
    if pd.isna(joined):
        return ()
    return tuple(sorted({kind(v.replace(chr(31), ",")) for v in str(joined).split(",")}))


def _lines_sql(col: dict[str, str], where: str, per_group: bool = True,
               parts: str | None = None) -> str:
    """One pass over the selected rows: a line per setting (by its rows' own train
    dataset, "" for none) × group (``grp``: group id, else image id), holding what the
    setting's line needs of the group's rows (counts, maxima, pooled MSE, kinds and bit
    depths) and per metric the count and sum of its ``ok`` values (PSNRs: the finite
    ones); ordered so that a setting's lines of every train dataset come together.
    Without ``per_group`` all of a setting's rows are one group (no interval needs them:
    one line per setting, and no sort by patient). With ``parts`` (a column), a group's
    rows of each value of it are a line of their own (``part``)."""
    ok = "status = 'ok'"
    first = f"MIN(CASE WHEN {_TARGET_SQL} THEN ord + 9e15 ELSE ord END)"  # targets last
    peak = "((1 << CAST(bit_depth AS INTEGER)) - 1)"
    maxima = ", ".join(f"MAX(CASE WHEN {ok} THEN {c} END) AS max_{c}"
                       for c in ("max_abs_error", "batch_size", *COMPLEXITY))
    sums = ", ".join(f"COUNT(CASE WHEN {ok} THEN {_finite(m)} END) AS {m}_n, "
                     f"SUM(CASE WHEN {ok} THEN {_finite(m)} END) AS {m}_s"
                     for m in _ALL_METRICS)
    grp = f"CAST(COALESCE({col['group_id']}, {col['image_id']}) AS TEXT)" if per_group \
        else "''"
    part = f"CAST({parts} AS TEXT)" if parts is not None else "NULL"
    return f"""
        WITH r AS (
            SELECT rowid AS ord, {', '.join(f'{col[c]} AS {c}' for c in _CARRIED)},
                   COALESCE({col['train_dataset']}, '') AS train,
                   {grp} AS grp, {part} AS part
            FROM results WHERE {where}
        )
        SELECT {_KEY_SQL}, grp, part, {first} AS first,
            MIN(codec_kind) AS codec_kind, MIN(setting_rank) AS setting_rank,
            SUM({ok}) AS images, SUM(status = 'error') AS errors,
            SUM(status = 'unsupported') AS unsupported,
            SUM({ok} AND psnr >= 9e999) AS exact_images,
            SUM({ok} AND display_psnr >= 9e999) AS exact_display,
            SUM(CASE WHEN {ok} THEN psnr IS NOT NULL END) AS psnr_raw,
            SUM(CASE WHEN {ok} THEN display_psnr IS NOT NULL END) AS display_psnr_raw,
            {maxima},
            SUM(CASE WHEN {ok} AND mse IS NOT NULL AND bit_depth IS NOT NULL
                THEN mse / (CAST({peak} AS REAL) * {peak}) END) AS nmse_sum,
            SUM({ok} AND mse IS NOT NULL AND bit_depth IS NOT NULL) AS nmse_n,
            group_concat(DISTINCT CASE WHEN {ok} THEN replace(CAST(group_kind AS TEXT), ',',
                                                             char(31)) END) AS kinds,
            group_concat(DISTINCT CASE WHEN {ok} THEN CAST(bit_depth AS INTEGER) END)
                AS depths,
            {sums}
        FROM r GROUP BY dataset, codec, setting, train, grp, part
        ORDER BY dataset, codec, setting, train, grp, part
    """


_KEY_SQL = "dataset, codec, train, setting"
#: How a setting's line is made of its groups' lines (a sum of only NULLs stays NULL).
_COMBINE = {
    "first": "min", "codec_kind": "min", "setting_rank": "min", "images": "sum",
    "errors": "sum", "unsupported": "sum", "exact_images": "sum", "exact_display": "sum",
    "psnr_raw": "sum", "display_psnr_raw": "sum", "nmse_sum": "sum", "nmse_n": "sum",
    **{f"max_{c}": "max" for c in ("max_abs_error", "batch_size", *COMPLEXITY)},
    "kinds": "join", "depths": "join",
    **{f"{m}_{x}": "sum" for m in _ALL_METRICS for x in "ns"},
}


def _lines(db: sqlite3.Connection, query: str, params: list,
           split: _Breakdown | None = None, in_parts: Callable[[str], bool] | None = None
           ) -> Iterator[tuple[tuple, pd.Series, pd.DataFrame]]:
    """Each setting's key, its line (what :func:`_line` reads) and its groups with
    ``ok`` rows (sorted by name), from the group lines of ``query``
    (:func:`_lines_sql`), streamed a setting at a time; each setting's lines by value of
    ``part`` go to ``split`` (the settings ``in_parts`` accepts).

    Fetched lines become columns at once (a float a value, not a Python object; the
    setting's name once, not once a line): a setting of 10⁵ groups held as fetched
    tuples took 0.7 GB.
    """
    cursor = db.execute(query, params)
    names = [d[0] for d in cursor.description]
    pieces: list[pd.DataFrame] = []
    here = None

    def done() -> Iterator[tuple[tuple, pd.Series, pd.DataFrame]]:
        block = _block(here, pieces)
        if split is not None and (in_parts is None or in_parts(here[2])):
            split.add(block)
        yield from _setting_lines(block)

    while True:
        chunk = cursor.fetchmany(FETCH)
        if not chunk:
            break
        start = 0
        for end in range(1, len(chunk) + 1):
            if end < len(chunk) and _key(chunk[end]) == _key(chunk[start]):
                continue
            key = _key(chunk[start])  # chunk[start:end]: lines of one setting
            if key != here and pieces:
                yield from done()
                pieces = []
            here = key
            pieces.append(pd.DataFrame.from_records(
                chunk[start:end], columns=names, exclude=["dataset", "codec", "setting"]))
            start = end
    if pieces:
        yield from done()


def _key(line: tuple) -> tuple:
    """A group line's dataset, codec and setting (:func:`_lines_sql`'s first columns)."""
    return line[0], line[1], line[3]


def _block(key: tuple, pieces: list[pd.DataFrame]) -> pd.DataFrame:
    """The group lines of one dataset × codec × setting (``key``), from its pieces."""
    block = pd.concat(pieces, ignore_index=True) if len(pieces) > 1 else pieces[0]
    dataset, codec, setting = key
    return block.assign(dataset=dataset, codec=codec, setting=setting)


def _setting_lines(block: pd.DataFrame) -> Iterator[tuple[tuple, pd.Series, pd.DataFrame]]:
    """The lines of one dataset × codec × setting, one per train dataset, each with its
    groups (:func:`_by_group`). Rows that lack a train dataset count on the line of the
    one train dataset the setting's other rows name (as ``setting_means`` fills it in)."""
    trains = list(dict.fromkeys(block["train"]))
    named = [t for t in trains if t != ""]
    if "" in trains and len(named) == 1:
        block = block.assign(train=named[0])
    for _, lines in block.groupby("train", sort=True):
        setting = _combine(lines, ["dataset", "codec", "train", "setting"]).iloc[0]
        groups = _by_group(lines)
        groups = groups[groups["images"] > 0].reset_index(drop=True)
        yield tuple(setting[["dataset", "codec", "train", "setting"]]), setting, groups


#: What a setting's groups are read for (:func:`_line`, :data:`_KEPT`): summed per group.
_GROUP_SUMS = ["images", *(f"{m}_{x}" for m in _ALL_METRICS for x in "ns")]


def _by_group(lines: pd.DataFrame) -> pd.DataFrame:
    """One line per group, sorted by name: ``lines`` as they are where each group has
    one; else (a patient with images of two body parts, rows without a train dataset
    joined to their setting's) each group's counts and sums added up, column by column."""
    if lines["grp"].is_monotonic_increasing and lines["grp"].is_unique:
        return lines
    return lines.groupby("grp", sort=True)[_GROUP_SUMS].sum(min_count=1).reset_index()


def _combine(lines: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """The lines of ``lines`` with equal ``keys`` made one, as :data:`_COMBINE` says."""
    grouped = lines.groupby(keys, sort=True, dropna=False)
    by = {how: [n for n, h in _COMBINE.items() if h == how] for how in ("sum", "min", "max")}
    joined = grouped[["kinds", "depths"]].agg(_joined)
    out = pd.concat([grouped[by["sum"]].sum(min_count=1), grouped[by["min"]].min(),
                     grouped[by["max"]].max(), joined], axis=1).reset_index()
    return out[[*keys, *_COMBINE]]


def _joined(texts: pd.Series) -> str | None:
    """The distinct ``group_concat`` texts of some lines, joined as one (None for none):
    what :func:`_split` reads, without repeating a setting's one kind on each patient."""
    return ",".join(str(x) for x in pd.unique(texts.dropna())) or None


def _finite(metric: str) -> str:
    """The values ``metric``'s mean is taken over (a PSNR's exact images are left out)."""
    return f"CASE WHEN {metric} < 9e999 THEN {metric} END" if metric in _PSNRS else metric


def _line(setting: pd.Series, groups: pd.DataFrame, pending: Bootstraps | None) -> dict:
    """One line of the table (see ``means._line``), its bootstraps left to ``pending``
    (None: no intervals)."""
    kind = "/".join(_split(setting["kinds"], str)) or None
    rank = setting["setting_rank"]
    line = {
        "dataset": setting["dataset"], "codec": setting["codec"],
        "train_dataset": setting["train"], "setting": setting["setting"],
        "codec_kind": setting["codec_kind"],
        "setting_rank": 0 if pd.isna(rank) else int(rank),
        "images": _int(setting["images"]), "errors": _int(setting["errors"]),
        "unsupported": _int(setting["unsupported"]),
        "max_abs_error": _number(setting["max_max_abs_error"]),
        "exact_images": _int(setting["exact_images"]),
        "groups": len(groups), "group_kind": kind, "_first": setting["first"],
    }
    found, methods = {}, {}
    for name in _ALL_METRICS:
        counts = groups[f"{name}_n"].to_numpy(dtype=float)
        sums = groups[f"{name}_s"].to_numpy(dtype=float)
        has = counts > 0
        total = counts.sum()
        line[name] = float(sums[has].sum() / total) if total else math.nan
        if pending is None:
            continue
        decision = _decision(sums[has], counts[has], kind)
        if decision.interval is None:
            pending.add(decision)
        found[name] = decision
        if total:
            methods[name] = decision.how
    line["_intervals"] = found
    line["ci_method"] = _methods_text(methods)
    for name, exact in (("psnr", "exact_images"), ("display_psnr", "exact_display")):
        raw = _int(setting[f"{name}_raw"])
        if raw and _int(setting[exact]) == raw:  # every image exact
            line[name] = math.inf
    batch = setting["max_batch_size"]
    line["batch_size"] = 1 if pd.isna(batch) else int(batch)
    for name in COMPLEXITY:
        line[name] = _number(setting[f"max_{name}"])
    images = line["images"]
    complete = images and _int(setting["nmse_n"]) == images
    line["nmse"] = float(setting["nmse_sum"]) / images if complete else math.nan
    line["psnr_pooled"] = psnr_from_mse(line["nmse"], 1.0)
    return line


def _decision(sums: np.ndarray, counts: np.ndarray, kind: str | None):
    """``means._decide`` of a metric given as per-group sums and counts (groups in sorted
    order). Where each group holds one value its sums are the values themselves; else
    each group's sum stands on its first image and zeros on the others, which decides
    the same method and gives a bootstrap the same per-group sums and counts."""
    total = int(counts.sum())
    if total >= 2 and len(counts) == total:  # one value per group: Student-t on the values
        return _decide(sums, None, kind, CONFIDENCE)
    sizes = counts.astype(int)
    index = np.repeat(np.arange(len(sizes)), sizes)
    values = np.zeros(total)
    values[np.cumsum(sizes) - sizes] = sums  # each group's sum on its first image
    return _decide(values, index, kind, CONFIDENCE, coded=True)


def _int(value: object) -> int:
    """A count SQLite summed (NULL where every summed value was NULL: 0)."""
    return 0 if pd.isna(value) else int(value)


def _number(value: object) -> float:
    return math.nan if pd.isna(value) else float(value)
