"""The end-of-run table: one line per dataset × codec × setting, with 95 % intervals.

The numbers are :func:`medbench.reports.means.setting_means`'s (which says how exact
images and intervals are treated); this module picks the summary's columns and prints
them for the terminal.
"""

from __future__ import annotations

import sqlite3

import pandas as pd

from medbench.benchmark.store import ResultsStore, run_rows_where
from medbench.reports.format import fmt
from medbench.reports.means import COMPLEXITY, METRICS, MORE_METRICS, setting_means
from medbench.reports.seen import seen_in_store
from medbench.reports.store_means import (
    has_seen_images,
    kept_lines_where,
    means_in_store,
    report_rows_where,
)

GROUP = ["dataset", "codec", "setting"]
#: Complexity columns only learned models have.
MODEL_COLUMNS = ("params", "kmac_per_pixel_enc", "kmac_per_pixel_dec")
#: The columns of ``summary.csv``, in order (those of earlier versions first).
COLUMNS = [
    *GROUP, "train_dataset", "codec_kind", "images", "errors", "unsupported",
    "max_abs_error", *[c for m in METRICS for c in (m, f"{m}_ci")], "exact_images",
    "psnr_pooled", "batch_size", "groups", "group_kind", "ci_method",
    *[c for m in MORE_METRICS for c in (m, f"{m}_ci")], *COMPLEXITY,
]


def summarize(rows: pd.DataFrame) -> pd.DataFrame:
    """Means over ``ok`` rows per dataset × codec × (train dataset ×) setting.

    Parameters
    ----------
    rows : pandas.DataFrame
        Result rows, as written to ``results.csv``.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`COLUMNS`, settings in their codec's order (low to high rate).
        ``psnr`` is the mean over images that did not decode exactly, ``exact_images``
        counts those that did, ``psnr_pooled`` is the PSNR of the mean normalised MSE
        over all images (see :func:`~medbench.reports.means.setting_means`).
    """
    return setting_means(rows)[COLUMNS]


def summarize_run(store: ResultsStore, run_id: str) -> tuple[pd.DataFrame, dict[str, str]]:
    """:func:`summarize` of run ``run_id``'s rows but those of images a learned model
    trained on, computed in the store (a 10⁷-cell run's rows are never loaded: from the
    per-patient lines it keeps where they stand for the rows), without intervals (the
    terminal does not print them); and per dataset the note on the images left out."""
    seen = store.compute(has_seen_images, run_id)
    _, notes = seen_in_store(store, run_id, seen)
    where = store.compute(report_rows_where, run_id, "kept", seen)
    lines = store.compute(kept_lines_where, run_id, "kept", seen)
    found = store.compute(means_in_store, *where, None, None, None, False, lines)
    return found.table[COLUMNS], notes


def run_totals(db: sqlite3.Connection, run_id: str) -> tuple[int, int, tuple | None]:
    """Run ``run_id``'s rows, error rows, and its first error row's codec, setting,
    image and error (None without one), counted in SQL."""
    where, params = run_rows_where(db, run_id)
    rows, errors, first = db.execute(
        f"SELECT COUNT(*), SUM(status = 'error'), MIN(CASE WHEN status = 'error' THEN rowid "
        f"END) FROM results WHERE {where}", params).fetchone()
    error = None if first is None else db.execute(
        "SELECT codec, setting, image_id, error FROM results WHERE rowid = ?", (first,)
    ).fetchone()
    return int(rows), int(errors or 0), error


def format_table(table: pd.DataFrame) -> str:
    """A fixed-width text table for the terminal.

    The ``exact`` column (images that decoded exactly, left out of ``PSNR dB``) shows
    only when some setting has such images.
    """
    if table.empty:
        return "(no results)"
    cols = [
        ("dataset", "dataset", "{}"),
        ("codec", "codec", "{}"),
        ("setting", "setting", "{}"),
        ("images", "n", "{:.0f}"),
        ("errors", "err", "{:.0f}"),
        ("bpp", "bpp", "{:.3f}"),
        ("psnr", "PSNR dB", "{:.2f}"),
        ("exact_images", "exact", "{:.0f}"),
        ("psnr_pooled", "pooled dB", "{:.2f}"),
        ("ms_ssim", "MS-SSIM", "{:.4f}"),
        ("encode_ms", "enc ms", "{:.1f}"),
        ("decode_ms", "dec ms", "{:.1f}"),
        ("peak_mem_mb", "peak MiB", "{:.1f}"),
        ("params", "params", "{:,.0f}"),
        ("kmac_per_pixel_enc", "kMAC/px enc", "{:.2f}"),
        ("kmac_per_pixel_dec", "kMAC/px dec", "{:.2f}"),
    ]
    if not table["params"].notna().any():  # no learned model: no empty model columns
        cols = [c for c in cols if c[0] not in MODEL_COLUMNS]
    if not (table["exact_images"] > 0).any():
        cols = [c for c in cols if c[0] != "exact_images"]
    cells = [[head for _, head, _ in cols]]
    for _, row in table.iterrows():
        line = [fmt(row[key], spec) for key, _, spec in cols]
        if row.get("unsupported", 0) and not row["images"]:
            line[3] = "unsup."
        cells.append(line)
    widths = [max(len(r[i]) for r in cells) for i in range(len(cols))]
    text_cols = {0, 1, 2}
    lines = []
    for r in cells:
        lines.append(
            "  ".join(
                c.ljust(w) if i in text_cols else c.rjust(w)
                for i, (c, w) in enumerate(zip(r, widths))
            )
        )
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
