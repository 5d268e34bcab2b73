"""Images a learned model trained on are left out of every comparison.

A learned row whose source image was among its model's training or validation images
(``seen_in_training``, decided by content when the cell was coded) measures memory, not
compression. Leaving only that row out would compare the learned codec on fewer images
than JPEG 2000 on the same dataset, so a report leaves out the *image*: every codec's rows
of it, on that dataset, from the summary, the RD curves, BD values, the rate-matched
table, the generalization matrix and the headline. It says how many images and rows it
left out and which models had seen them; the rows themselves go to
``seen_in_training.csv``. ``medbench compare`` does not leave them out: a regression
check compares what was coded.
"""

from __future__ import annotations

import pandas as pd

from medbench.benchmark.store import ResultsStore
from medbench.reports.store_means import has_seen_images

#: The report file listing the rows left out.
SEEN_CSV = "seen_in_training.csv"


def leave_out_seen(rows: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, str]]:
    """``rows`` without the images a learned model trained on, those rows, and a note.

    Parameters
    ----------
    rows : pandas.DataFrame
        Result rows; ``seen_in_training`` true on a row marks its (dataset, image).

    Returns
    -------
    kept, left_out : pandas.DataFrame
        The rows of the other images, and every row of the marked images.
    notes : dict of str to str
        Per dataset with marked images, one sentence saying what was left out and why.
    """
    if rows.empty or "seen_in_training" not in rows:
        return rows, rows.iloc[0:0], {}
    flagged = rows["seen_in_training"].map(lambda v: v is True or v == 1)
    marked = rows.loc[flagged, ["dataset", "image_id"]].drop_duplicates()
    if marked.empty:
        return rows, rows.iloc[0:0], {}
    keys = pd.MultiIndex.from_frame(rows[["dataset", "image_id"]].astype(str))
    out = keys.isin(pd.MultiIndex.from_frame(marked.astype(str)))
    left_out, kept = rows[out], rows[~out]
    totals = {str(d): rows.loc[rows["dataset"] == d, "image_id"].nunique()
              for d in set(left_out["dataset"])}
    return kept, left_out, _notes(left_out, totals)


def seen_in_store(store: ResultsStore, run_id: str, seen: bool | None = None
                  ) -> tuple[pd.DataFrame, dict[str, str]]:
    """The rows and notes :func:`leave_out_seen` gives of run ``run_id``, selected in the
    store (the rows of the images a model trained on only, however large the run);
    ``seen``: whether there are any, where the caller knows."""
    if seen is None:
        seen = store.compute(has_seen_images, run_id)
    if not seen:
        return store.frame_where("0"), {}
    left_out = store.frame_where(
        "run_id = ? AND EXISTS (SELECT 1 FROM results AS s WHERE s.run_id = results.run_id "
        "AND s.dataset = results.dataset AND s.image_id = results.image_id "
        "AND s.seen_in_training = 1)", [run_id])
    datasets = sorted({str(d) for d in left_out["dataset"]})
    marks = ", ".join("?" for _ in datasets)
    totals = dict(store.compute(lambda db: db.execute(
        f"SELECT CAST(dataset AS TEXT), COUNT(DISTINCT image_id) FROM results WHERE "
        f"run_id = ? AND dataset IN ({marks}) GROUP BY dataset",
        [run_id, *datasets]).fetchall()))
    return left_out, _notes(left_out, totals)


def _notes(left_out: pd.DataFrame, totals: dict[str, int]) -> dict[str, str]:
    """Per dataset of ``left_out`` (every row of the images left out), what was left out
    and why (``totals``: the dataset's images in the run)."""
    flagged = left_out["seen_in_training"].map(lambda v: v is True or v == 1)
    notes = {}
    for dataset, group in left_out.groupby("dataset", sort=True):
        images = group["image_id"].nunique()
        total = totals[str(dataset)]
        seen = group[flagged[group.index]]
        knobs = seen["knob"] if "knob" in seen else pd.Series(None, index=seen.index)
        models = sorted({f"{c} {k if str(s).startswith('target:') and k else s}"
                         for c, s, k in zip(seen["codec"], seen["setting"], knobs)})
        named = ", ".join(models[:3]) + (f" and {len(models) - 3} more" if len(models) > 3
                                          else "")
        notes[str(dataset)] = (
            f"{images} of {total} images left out of every table, curve and ranking "
            f"(all {len(group)} of their rows, every codec): learned models trained or "
            f"validated on them ({named}); the rows are in {SEEN_CSV}.")
    return notes
