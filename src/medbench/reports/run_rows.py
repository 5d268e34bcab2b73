"""What a report's sections read of a run's rows: from a frame, or selected in the store.

Besides the setting means (:mod:`.store_means`), a report's sections read little of a
run's rows: what ran on each dataset (:class:`DatasetFacts`: codecs, images, patients,
protocol, bit depths), the per-image rows of the one or two curves a paired comparison
needs, the rows of the few images of the visual comparison, the rows that are not ``ok``.
:class:`FrameRows` answers from rows held as a frame (a small run, a test); a report of
a store answers with :class:`StoreRows`, which selects each in SQLite, so that a report
of 10⁷ rows never holds them all. Both give the same answers (tested on the same rows).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd

from medbench.benchmark import lines as kept
from medbench.benchmark.store import ResultsStore, results_columns
from medbench.reports.means import group_kind

#: The columns of a curve's rows that a paired comparison reads.
CURVE_COLUMNS = ["dataset", "codec", "train_dataset", "setting", "status", "image_id",
                 "group_id", "bpp", "psnr"]
#: Curves whose rows :class:`StoreRows` keeps for the next paired comparison (the two
#: of one comparison: the next clinical ratio often compares the same two).
KEPT_CURVES = 2
#: The columns the rate-matched table reads of the rate-matched rows (their means come
#: from the store): only these are read, so 10⁶ rate-matched rows stay small.
MATCHED_COLUMNS = [
    "dataset", "image_id", "codec", "setting", "train_dataset", "status", "error", "bpp",
    "ratio", "psnr", "target_met", "target_note", "roi_psnr", "roi_ssim", "group_id",
    "group_kind",
]
#: What the diagnostic and reader verdicts read besides (each metric's call on a cell),
#: read only when the run has a detection experiment or a reader study.
VERDICT_COLUMNS = ["ssim", "ms_ssim", "vif", "gmsd", "haarpsi", "fsim"]

@dataclass
class DatasetFacts:
    """What ran on one dataset (the headline's first line, the diagnostic's bit depth).

    ``kinds``: the codec kind of each codec with an ``ok`` row (its first row's);
    ``codecs``: every codec with a row; ``groups``: distinct group ids, None when no row
    names a group other than its image; ``sizes``: 0 for none, 1 for one (width, height),
    2 for several, and their ranges (``width``, ``height``); ``depth_rows``: rows per bit
    depth; ``deep_windowed``: whether a row deeper than 8 bits was also scored on a
    display window.
    """

    rows: int = 0
    kinds: dict[str, object] = field(default_factory=dict)
    codecs: set[str] = field(default_factory=set)
    trained: bool = False
    images: int = 0
    splits: list[str] = field(default_factory=list)
    groups: int | None = None
    group_kind: str | None = None
    protocols: list[str] = field(default_factory=list)
    sizes: int = 0
    width: tuple[int, int] = (0, 0)
    height: tuple[int, int] = (0, 0)
    depth_rows: dict[int, int] = field(default_factory=dict)
    deep_windowed: bool = False
    body_parts: bool = False


class FrameRows:
    """The answers of a run's rows held as a frame (``rows``: the report's rows, images a
    model trained on and milestone checkpoints already left out)."""

    def __init__(self, rows: pd.DataFrame) -> None:
        self.rows = rows

    def datasets(self) -> list[str]:
        return sorted({str(d) for d in self.rows["dataset"]}) if len(self.rows) else []

    def facts(self, dataset: str) -> DatasetFacts:
        return _facts(self.rows[self.rows["dataset"] == dataset])

    def curve_rows(self, dataset: str, codec: str, train: str | None,
                   settings: Sequence[str]) -> pd.DataFrame:
        """The ``ok`` rows of one curve's ``settings`` (a paired comparison's values)."""
        rows = self.rows
        mine = rows[(rows["status"] == "ok") & (rows["dataset"] == dataset)
                    & (rows["codec"] == codec) & rows["setting"].isin(set(settings))]
        if "train_dataset" in mine:
            mine = mine[mine["train_dataset"] == train] if train \
                else mine[mine["train_dataset"].isna()]
        return mine

    def model_infos(self, dataset: str, codec: str, train: str | None) -> list[object]:
        """The ``model_info`` of the first ``ok`` row of each setting of one curve."""
        rows = self.rows
        own = rows[(rows["dataset"] == dataset) & (rows["codec"] == codec)
                   & (rows["status"] == "ok")]
        if train and "train_dataset" in own:
            own = own[own["train_dataset"] == train]
        return list(own.drop_duplicates("setting").get("model_info",
                                                       pd.Series(dtype=object)))


class StoreRows:
    """The same answers as :class:`FrameRows`, each selected in the store with SQL.

    ``where`` (and ``params``) select the report's rows of the run
    (:func:`~medbench.reports.store_means.report_rows_where`, part ``settings``).
    """

    def __init__(self, store: ResultsStore, where: str, params: Sequence,
                 means: pd.DataFrame | None = None, kept_run: str | None = None) -> None:
        self.store, self.where, self.params = store, where, list(params)
        #: The run whose kept lines stand for these rows (``store_means.kept_lines_where``
        #: found them usable): the facts are read from those.
        self.kept_run = kept_run
        #: The setting means of these rows (:mod:`.store_means`): which settings there are.
        self.means = means if means is not None else pd.DataFrame(
            columns=["dataset", "codec", "train_dataset", "setting", "images"])
        self._facts: dict[str, DatasetFacts] | None = None
        self._curves: dict[tuple, pd.DataFrame] = {}

    def datasets(self) -> list[str]:
        return sorted(self.all_facts())

    def facts(self, dataset: str) -> DatasetFacts:
        return self.all_facts().get(dataset, DatasetFacts())

    def all_facts(self) -> dict[str, DatasetFacts]:
        """Every dataset's facts, once: from the kept lines, else two passes over the
        rows."""
        if self._facts is None:
            self._facts = self.store.compute(_facts_in_lines, self.kept_run) \
                if self.kept_run is not None \
                else self.store.compute(_facts_in_store, self.where, self.params)
        return self._facts

    def curve_rows(self, dataset: str, codec: str, train: str | None,
                   settings: Sequence[str]) -> pd.DataFrame:
        marks = ", ".join("?" for _ in settings) or "NULL"
        train_sql = "train_dataset = ?" if train else "train_dataset IS NULL"
        where = (f"({self.where}) AND status = 'ok' AND dataset = ? AND codec = ? AND "
                 f"{train_sql} AND setting IN ({marks})")
        params = [*self.params, dataset, codec, *([train] if train else []), *settings]
        key = (dataset, codec, train, tuple(settings))
        if key not in self._curves:
            while len(self._curves) >= KEPT_CURVES:  # the oldest goes first
                del self._curves[next(iter(self._curves))]
            self._curves[key] = self.store.frame_where(where, params, columns=CURVE_COLUMNS)
        return self._curves[key]

    def model_infos(self, dataset: str, codec: str, train: str | None) -> list[object]:
        """The first ``ok`` row's record of each setting with ``ok`` rows (the settings
        from :attr:`means`, the setting means :func:`StoreRows` was given): each found
        by the scan in row order that stops at it, which is short (a run codes every
        setting of its first image first)."""
        table = self.means
        mine = table[(table["dataset"] == dataset) & (table["codec"] == codec)
                     & (table["images"] > 0)]
        if train:
            mine = mine[mine["train_dataset"] == train]
        train_sql = " AND train_dataset = ?" if train else ""
        present = self.store.compute(results_columns)
        info = "model_info" if "model_info" in present else "NULL"  # an older store: none
        found = []
        for setting in dict.fromkeys(mine["setting"]):
            # NOT INDEXED: in row order, not through the primary key (which would visit
            # every row of the run's dataset before the first)
            query = (f"SELECT rowid, {info} FROM results NOT INDEXED WHERE ({self.where}) AND "
                     f"dataset = ? AND codec = ? AND setting = ? AND status = 'ok'"
                     f"{train_sql} ORDER BY rowid LIMIT 1")
            params = [*self.params, dataset, codec, setting, *([train] if train else [])]
            found += self.store.compute(lambda db, q=query, p=params: db.execute(q, p)
                                        .fetchall())
        return [record for _, record in sorted(found)]


def as_rows(rows: pd.DataFrame | FrameRows | StoreRows) -> FrameRows | StoreRows:
    """``rows`` as an answerer (a frame is wrapped in :class:`FrameRows`)."""
    return FrameRows(rows) if isinstance(rows, pd.DataFrame) else rows


def _read(db: sqlite3.Connection, query: str, params: Sequence) -> pd.DataFrame:
    return pd.read_sql_query(query, db, params=list(params))


def _facts(rows: pd.DataFrame) -> DatasetFacts:
    """:class:`DatasetFacts` of one dataset's rows held as a frame."""
    facts = DatasetFacts(rows=len(rows))
    if rows.empty:
        return facts
    ok = rows[rows["status"] == "ok"] if "status" in rows else rows.iloc[0:0]
    facts.kinds = dict(ok.groupby("codec")["codec_kind"].first()) if len(ok) else {}
    facts.codecs = {str(c) for c in rows.get("codec", [])}
    facts.trained = bool(rows["train_dataset"].notna().any()) if "train_dataset" in rows \
        else False
    facts.images = int(rows["image_id"].nunique()) if "image_id" in rows else 0
    facts.splits = sorted({str(s) for s in rows.get("split", pd.Series(dtype=str)).dropna()})
    if "group_id" in rows and rows["group_id"].notna().any() \
            and (rows["group_id"].astype(str) != rows["image_id"].astype(str)).any():
        facts.groups = int(rows["group_id"].nunique())
    facts.group_kind = group_kind(rows)
    facts.protocols = sorted({str(p) for p in rows["protocol"].dropna()}) \
        if "protocol" in rows else []
    sizes = rows[["width", "height"]].dropna().drop_duplicates() if "width" in rows else []
    facts.sizes = min(len(sizes), 2)
    if len(sizes):
        facts.width = (int(sizes["width"].min()), int(sizes["width"].max()))
        facts.height = (int(sizes["height"].min()), int(sizes["height"].max()))
    if "bit_depth" in rows:
        depths = pd.to_numeric(rows["bit_depth"], errors="coerce").dropna()
        facts.depth_rows = {int(d): int(n) for d, n in depths.value_counts().items()}
        deep = rows[pd.to_numeric(rows["bit_depth"], errors="coerce") > 8]
        facts.deep_windowed = bool("display" in deep and deep["display"].notna().any())
    facts.body_parts = bool("body_part" in rows and rows["body_part"].notna().any())
    return facts


def _facts_in_store(db: sqlite3.Connection, where: str, params: Sequence
                    ) -> dict[str, DatasetFacts]:
    """:func:`_facts` of each dataset's rows that ``where`` selects, in two SQL passes:
    the distinct combinations of the few-valued columns with their row counts, then the
    per-dataset counts of images and groups and the ranges of image sizes."""
    present = results_columns(db)

    def col(name: str) -> str:
        return name if name in present else "NULL"

    combos = pd.read_sql_query(f"""
        SELECT dataset, codec, {col('codec_kind')} AS codec_kind,
            {col('train_dataset')} IS NOT NULL AS trained, {col('split')} AS split,
            {col('protocol')} AS protocol, {col('group_kind')} AS group_kind,
            CAST({col('bit_depth')} AS INTEGER) AS bit_depth,
            {col('display')} IS NOT NULL AS windowed,
            {col('body_part')} IS NOT NULL AS has_part,
            MIN(CASE WHEN status = 'ok' THEN rowid END) AS first_ok, COUNT(*) AS n
        FROM results WHERE {where}
        GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10""", db, params=list(params))
    sized = f"{col('width')} IS NOT NULL AND {col('height')} IS NOT NULL"
    counts = pd.read_sql_query(f"""
        SELECT dataset, COUNT(DISTINCT image_id) AS images,
            COUNT(DISTINCT {col('group_id')}) AS groups,
            SUM({col('group_id')} IS NOT NULL) AS named,
            SUM({col('group_id')} IS NULL OR CAST({col('group_id')} AS TEXT)
                != CAST(image_id AS TEXT)) AS other,
            SUM({sized}) AS sized,
            MIN(CASE WHEN {sized} THEN {col('width')} END) AS w0,
            MAX(CASE WHEN {sized} THEN {col('width')} END) AS w1,
            MIN(CASE WHEN {sized} THEN {col('height')} END) AS h0,
            MAX(CASE WHEN {sized} THEN {col('height')} END) AS h1
        FROM results WHERE {where} GROUP BY dataset""", db, params=list(params))
    return _assembled(combos, counts)


def _facts_in_lines(db: sqlite3.Connection, run_id: str) -> dict[str, DatasetFacts]:
    """:func:`_facts_in_store` of the settings' rows of run ``run_id`` (no seen image),
    from the store's kept lines (:mod:`medbench.benchmark.lines`) instead of its rows:
    the same combinations from the per-patient lines, the counts of images and patient
    groups from the per-image lines."""
    where, params = kept.lines_where(run_id, "settings")
    combos = pd.read_sql_query(f"""
        SELECT dataset, codec, {_value('codec_kind')} AS codec_kind, trained,
            {_value('split')} AS split, {_value('protocol')} AS protocol,
            {_value('kind')} AS group_kind, {_value('depth')} AS bit_depth,
            windowed > 0 AS windowed, has_part, first_ok, n
        FROM (SELECT dataset, codec, codec_kind, trained, split, protocol, kind, depth,
                  typeof(part) != 'blob' AS has_part, SUM(windowed) AS windowed,
                  MIN(first_ok) AS first_ok, SUM(rows) AS n
              FROM {kept.TABLE} WHERE {where}
              GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9)""", db, params=params)
    lines = pd.read_sql_query(f"""
        SELECT dataset, SUM(sized) AS sized, MIN(w0) AS w0, MAX(w1) AS w1, MIN(h0) AS h0,
            MAX(h1) AS h1
        FROM {kept.TABLE} WHERE {where} GROUP BY dataset""", db, params=params)
    images = pd.read_sql_query(f"""
        SELECT dataset,
            COUNT(DISTINCT CASE WHEN typeof(image_id) != 'blob' THEN image_id END) AS images,
            COUNT(DISTINCT CASE WHEN typeof(group_id) != 'blob' THEN group_id END) AS groups,
            SUM(CASE WHEN typeof(group_id) != 'blob' THEN rows ELSE 0 END) AS named,
            SUM(CASE WHEN typeof(group_id) = 'blob' OR CAST(group_id AS TEXT)
                     != CAST(image_id AS TEXT) THEN rows ELSE 0 END) AS other
        FROM {kept.IMAGES} WHERE run_id = ? AND settings GROUP BY dataset""", db,
        params=[run_id])
    return _assembled(combos, images.merge(lines, on="dataset", how="left"))


def _value(key: str) -> str:
    """A kept line's key column as the rows held it (the empty blob: none)."""
    return f"CASE WHEN typeof({key}) != 'blob' THEN {key} END"


def _assembled(combos: pd.DataFrame, counts: pd.DataFrame) -> dict[str, DatasetFacts]:
    """Each dataset's :class:`DatasetFacts` from its distinct combinations of the
    few-valued columns (with their rows and first ``ok`` row) and its counts."""
    out: dict[str, DatasetFacts] = {}
    for line in counts.itertuples(index=False):
        mine = combos[combos["dataset"] == line.dataset]
        facts = DatasetFacts(rows=int(mine["n"].sum()), images=int(line.images))
        ok = mine[mine["first_ok"].notna()].sort_values("first_ok")
        for codec, part in ok.groupby("codec", sort=True):
            kinds = part["codec_kind"].dropna()  # the first row's kind that is known
            facts.kinds[str(codec)] = kinds.iloc[0] if len(kinds) else None
        facts.codecs = {str(c) for c in mine["codec"]}
        facts.trained = bool(mine["trained"].any())
        facts.splits = sorted({str(s) for s in mine["split"].dropna()})
        if line.named and line.other:
            facts.groups = int(line.groups)
        kinds = sorted({str(k) for k in mine["group_kind"].dropna()})
        facts.group_kind = "/".join(kinds) or None
        facts.protocols = sorted({str(p) for p in mine["protocol"].dropna()})
        if line.sized:  # one size where both ends agree, else several
            facts.sizes = 1 if line.w0 == line.w1 and line.h0 == line.h1 else 2
            facts.width, facts.height = (int(line.w0), int(line.w1)), (int(line.h0), int(line.h1))
        depths = mine.dropna(subset=["bit_depth"]).groupby("bit_depth")["n"].sum()
        facts.depth_rows = {int(d): int(n) for d, n in depths.items()}
        facts.deep_windowed = bool(mine.loc[mine["bit_depth"] > 8, "windowed"].any())
        facts.body_parts = bool(mine["has_part"].any())
        out[str(line.dataset)] = facts
    return out
