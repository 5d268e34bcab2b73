"""The report's detectability tables (``run --observer nodules``), read from the store.

:func:`observer_table` gives the run's ``observer`` table (d', AUC, d' coded/original
with intervals, per dataset × codec × setting × observer × nodule size × contrast; the
columns are :data:`medbench.benchmark.observers.summary.COLUMNS`);
:func:`write_observer_csv` writes it to ``report/observer.csv``; :func:`task_lossless_limits`
reads it into the highest compression ratio at which each codec keeps detectability.

**Task-lossless.** A setting is *task-lossless* for a nodule size and observer when, at
every contrast, detectability is shown not to drop by more than 5 %: the lower end of the
95 % interval of ``dprime_ratio`` is at least :data:`MARGIN` = 0.95 (a non-inferiority
test with a 5 % margin). The limit is the highest mean compression ratio of the codec's
settings, scanned from the least compressed, before the first setting that is not
task-lossless. This criterion is used rather than "the interval includes 1" because the
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


def _passes(rows: pd.DataFrame, criterion: str, margin: float) -> bool:
    """Whether every contrast of one setting meets ``criterion`` (an interval is needed)."""
    low, high = rows["dprime_ratio_low"], rows["dprime_ratio_high"]
    if low.isna().any() or high.isna().any():
        return False
    if criterion == "noninferior":
        return bool((low >= margin).all())
    return bool(((low <= 1) & (high >= 1)).all())


def _limit(settings: list[tuple[str, float, float, pd.DataFrame]], criterion: str,
           margin: float) -> dict[str, object]:
    """The last passing setting before the first failing one (ascending ratio)."""
    best = None
    for setting, ratio, bpp, rows in settings:
        if not _passes(rows, criterion, margin):
            failing = rows.sort_values("contrast")
            if criterion == "noninferior":
                bad = failing[~(failing["dprime_ratio_low"] >= margin)]
            else:
                bad = failing[~((failing["dprime_ratio_low"] <= 1)
                                & (failing["dprime_ratio_high"] >= 1))]
            contrast = bad["contrast"].iloc[0] if len(bad) else None
            return {"best": best, "fails": (setting, ratio, contrast)}
        best = (setting, ratio, bpp)
    return {"best": best, "fails": None}


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
        limit_setting, limit_bpp, fails_at, fails_at_ratio, fails_at_contrast,
        limit_ratio_includes_1, limit_setting_includes_1, settings``: ``limit_*`` empty
        when no setting is task-lossless (the least compressed already fails, or no
        interval could be computed); ``fails_at*`` the first setting that is not (empty
        when every setting is).
    """
    columns = ["dataset", "codec", "train_dataset", "observer", "diameter_mm", "limit_ratio",
               "limit_setting", "limit_bpp", "fails_at", "fails_at_ratio",
               "fails_at_contrast", "limit_ratio_includes_1", "limit_setting_includes_1",
               "settings"]
    coded = table[(table["codec"] != ORIGINAL) & table["ratio"].notna()]
    if coded.empty:
        return pd.DataFrame(columns=columns)
    out = []
    keys = ["dataset", "codec", "train_dataset", "observer", "diameter_mm"]
    for key, rows in coded.groupby(keys, dropna=False, sort=True):
        settings = sorted(
            ((str(setting), float(part["ratio"].mean()), float(part["bpp"].mean()), part)
             for setting, part in rows.groupby("setting")), key=lambda item: item[1])
        strict = _limit(settings, "noninferior", margin)
        loose = _limit(settings, "includes_1", margin)
        best, fails, wide = strict["best"], strict["fails"], loose["best"]
        out.append({
            **dict(zip(keys, key)),
            "limit_ratio": best[1] if best else np.nan,
            "limit_setting": best[0] if best else None,
            "limit_bpp": best[2] if best else np.nan,
            "fails_at": fails[0] if fails else None,
            "fails_at_ratio": fails[1] if fails else np.nan,
            "fails_at_contrast": fails[2] if fails else np.nan,
            "limit_ratio_includes_1": wide[1] if wide else np.nan,
            "limit_setting_includes_1": wide[0] if wide else None,
            "settings": len(settings)})
    return pd.DataFrame(out, columns=columns)
