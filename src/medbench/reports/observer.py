"""The report's detectability tables (``run --observer nodules``), read from the store.

:func:`observer_table` gives the run's ``observer`` table (d', AUC, d' coded/original
with intervals, per dataset × codec × setting × observer × nodule size × contrast; the
columns are :data:`medbench.benchmark.observers.summary.COLUMNS`);
:func:`write_observer_csv` writes it to ``report/observer.csv``; :func:`task_lossless_limits`
reads it into the highest compression ratio at which each codec keeps detectability.

**Task-lossless.** A setting is *task-lossless* for a nodule size and observer when, at
every contrast, detectability is shown not to drop by more than 5 %: the lower end of the
95 % interval of ``dprime_ratio`` is at least :data:`MARGIN` = 0.95 (a non-inferiority
test with a 5 % margin). The limit is the highest mean compression ratio among the
codec's task-lossless settings; the least compressed setting that is not task-lossless is
named beside it, with a note where it lies below the limit (detectability that is not
monotone in the rate). This criterion is used rather than "the interval includes 1" because the
latter (a) counts an experiment too small to see a loss as evidence that there is none:
the fewer the images, the wider the interval and the *higher* the limit, and (b) calls a
codec that makes nodules more detectable (an interval above 1) lossy. With the margin,
more images can only give a better-founded limit. Both are in the table
(``limit_ratio`` and ``limit_ratio_includes_1``); a setting without an interval (fewer
than 10 patient groups) is never called task-lossless.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from medbench.benchmark.observers.summary import ORIGINAL, summarize
from medbench.benchmark.store import ResultsStore

#: The report file of the observer table.
OBSERVER_CSV = "observer.csv"
#: Non-inferiority margin of :func:`task_lossless_limits`: at most 5 % of d' may be lost.
MARGIN = 0.95


def observer_table(store: ResultsStore, run_id: str) -> pd.DataFrame:
    """The run's ``observer`` table as stored at the end of the run.

    A run that stopped before its end (Ctrl-C, a crash) has sites but no table yet: the
    table is then computed from its sites as the run would have (nothing is written; the
    store may be read-only), and ``note`` of every row starts with ``run unfinished``.
    Empty when the run has no observer experiment.
    """
    table = store.observer(run_id)
    if not table.empty:
        return table
    sites = store.observer_sites(run_id)
    if sites.empty:
        return table
    seed = int(store.run_info(run_id)["arguments"].get("seed") or 0)
    table = summarize(sites, store.frame(run_id), seed, run_id)
    table["note"] = ["run unfinished: from the sites observed so far"
                     + (f" | {note}" if isinstance(note, str) and note else "")
                     for note in table["note"]]
    return table


def write_observer_csv(store: ResultsStore, run_id: str, folder: Path) -> Path | None:
    """Write :func:`observer_table` to ``folder/observer.csv``; None when the run has no
    observer experiment (nothing is written)."""
    table = observer_table(store, run_id)
    if table.empty:
        return None
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / OBSERVER_CSV
    table.to_csv(path, index=False)
    return path


def _failing(rows: pd.DataFrame, criterion: str, margin: float) -> pd.DataFrame:
    """The contrasts of one setting that do not meet ``criterion`` (no interval: failing)."""
    low, high = rows["dprime_ratio_low"], rows["dprime_ratio_high"]
    if criterion == "noninferior":
        ok = low >= margin
    else:
        ok = (low <= 1) & (high >= 1)
    return rows[~ok.fillna(False).astype(bool)].sort_values("contrast")


def task_lossless_limits(table: pd.DataFrame, margin: float = MARGIN) -> pd.DataFrame:
    """Per dataset, codec (and train dataset), observer and nodule size: the highest
    compression ratio that is still task-lossless (module notes).

    Parameters
    ----------
    table
        The ``observer`` table (:func:`observer_table`).
    margin
        The non-inferiority margin on ``dprime_ratio`` (0.95: at most 5 % lost).

    Returns
    -------
    pandas.DataFrame
        ``dataset, codec, train_dataset, observer, diameter_mm, limit_ratio,
        limit_setting, limit_bpp, first_failure, first_failure_ratio,
        first_failure_contrast, limit_ratio_includes_1, limit_setting_includes_1,
        settings, note``. ``limit_*``: the setting of highest mean ratio that is
        task-lossless at every contrast, empty when none is; ``first_failure*``: the
        least compressed setting that is not, and its first failing contrast; ``note``
        says when that failure lies *below* the limit (detectability not monotone in
        the rate, e.g. a near-lossless setting that spends more bytes than lossless).
    """
    columns = ["dataset", "codec", "train_dataset", "observer", "diameter_mm", "limit_ratio",
               "limit_setting", "limit_bpp", "first_failure", "first_failure_ratio",
               "first_failure_contrast", "limit_ratio_includes_1",
               "limit_setting_includes_1", "settings", "note"]
    coded = table[(table["codec"] != ORIGINAL) & table["ratio"].notna()]
    if coded.empty:
        return pd.DataFrame(columns=columns)
    out = []
    keys = ["dataset", "codec", "train_dataset", "observer", "diameter_mm"]
    for key, rows in coded.groupby(keys, dropna=False, sort=True):
        settings = sorted(
            ((str(setting), float(part["ratio"].mean()), float(part["bpp"].mean()), part)
             for setting, part in rows.groupby("setting")), key=lambda item: item[1])
        strict = [item for item in settings if _failing(item[3], "noninferior", margin).empty]
        loose = [item for item in settings if _failing(item[3], "includes_1", margin).empty]
        failures = [item for item in settings if not _failing(item[3], "noninferior",
                                                              margin).empty]
        best = strict[-1] if strict else None
        fail = failures[0] if failures else None
        note = None
        if best and fail and fail[1] < best[1]:
            note = (f"not monotone: {fail[0]} ({fail[1]:.3g}:1) fails below the limit")
        out.append({
            **dict(zip(keys, key)),
            "limit_ratio": best[1] if best else np.nan,
            "limit_setting": best[0] if best else None,
            "limit_bpp": best[2] if best else np.nan,
            "first_failure": fail[0] if fail else None,
            "first_failure_ratio": fail[1] if fail else np.nan,
            "first_failure_contrast": (_failing(fail[3], "noninferior", margin)["contrast"]
                                       .iloc[0] if fail else np.nan),
            "limit_ratio_includes_1": loose[-1][1] if loose else np.nan,
            "limit_setting_includes_1": loose[-1][0] if loose else None,
            "settings": len(settings), "note": note})
    return pd.DataFrame(out, columns=columns)
