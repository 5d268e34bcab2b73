"""Per-body-part breakdown (MXID's 18 body parts, ``sample``'s chest and tibia).

For each dataset × body part × RD curve: the number of images, PSNR and MS-SSIM (dB) read
off that body part's own curve at the clinical ratios' bpp (10:1 and 30:1 for the images'
bit depth), and BD-rate against JPEG 2000 on the same body part's images.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Callable

import pandas as pd

from medbench.benchmark import lines as kept_lines
from medbench.reports.bd import bd_against
from medbench.reports.curves import (
    ANCHOR,
    CLINICAL_RATIOS,
    Curve,
    clinical_bpp,
    curves,
    curves_from_means,
)
from medbench.reports.means import setting_means
from medbench.reports.store_means import BY_SEPARATOR, StoreMeans, means_in_store, split_by

COLUMNS = ["dataset", "body_part", "codec", "train_dataset", "images", "bit_depth"]
#: The columns of ``body_part_settings.csv``.
SETTING_COLUMNS = ["dataset", "body_part", "codec", "train_dataset", "setting", "images", "bpp",
                   "psnr", "exact_images", "psnr_pooled", "ms_ssim"]


def has_body_parts(rows: pd.DataFrame) -> bool:
    return "body_part" in rows and rows["body_part"].notna().any()


def _table_columns() -> list[str]:
    ratio_cols = [f"psnr_at_{r}to1" for r in CLINICAL_RATIOS] + [
        f"ms_ssim_db_at_{r}to1" for r in CLINICAL_RATIOS
    ]
    return COLUMNS + ratio_cols + ["bd_rate_psnr", "bd_reliable"]


def body_part_table(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per dataset × body part × curve (empty when no row has a body part)."""
    if not has_body_parts(rows):
        return pd.DataFrame(columns=_table_columns())
    part_rows = rows[rows["body_part"].notna()]
    out = []
    for (dataset, part), group in part_rows.groupby(["dataset", "body_part"], sort=True):
        def images(c: Curve, group: pd.DataFrame = group) -> int:
            mine = group[(group["codec"] == c.codec) & (group["status"] == "ok")]
            if c.train_dataset:
                mine = mine[mine["train_dataset"] == c.train_dataset]
            return int(mine["image_id"].nunique())

        out += _part_lines(dataset, part, curves(group), images)
    return pd.DataFrame(out, columns=_table_columns())


def _part_lines(dataset: str, part: str, part_curves: list[Curve],
                images: Callable[[Curve], int]) -> list[dict]:
    """The table's lines of one dataset × body part (``images(curve)``: its images)."""
    anchor = next((c for c in part_curves if c.codec == ANCHOR and not c.train_dataset), None)
    out = []
    for c in part_curves:
        depth = c.bit_depths[0] if len(c.bit_depths) == 1 else None
        row = {"dataset": dataset, "body_part": part, "codec": c.codec,
               "train_dataset": c.train_dataset, "images": images(c), "bit_depth": depth}
        for r in CLINICAL_RATIOS:
            bpp = clinical_bpp(depth, r) if depth else math.nan
            row[f"psnr_at_{r}to1"] = c.at(bpp, "psnr")
            row[f"ms_ssim_db_at_{r}to1"] = c.at(bpp, "ms_ssim_db")
        if anchor is not None and c is not anchor:
            bd = bd_against(anchor, c)
            row["bd_rate_psnr"], row["bd_reliable"] = bd["bd_rate_psnr"], bd["reliable"]
        out.append(row)
    return out


def body_parts_in_store(db: sqlite3.Connection, where: str, params: list,
                        found: StoreMeans | None = None, kept_run: str | None = None
                        ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`body_part_table` and :func:`body_part_settings` of the rows ``where``
    selects, computed in the store: the means by body part are ``found`` (what
    :func:`~medbench.reports.store_means.means_in_store` gave with ``parts="body_part"``
    in the report's pass over the rows; the CSV has no intervals), else a pass of
    their own. ``kept_run``: ``where`` selects the settings' rows of that run, whose
    kept lines stand for its rows (:mod:`medbench.benchmark.lines`): the images are
    counted in its per-image lines."""
    if found is None:
        found = means_in_store(db, where, params, parts="body_part", intervals=False).parts
    if found is None or found.table.empty:
        return pd.DataFrame(columns=_table_columns()), pd.DataFrame()
    names = [split_by(d) for d in found.table["dataset"]]
    table = found.table.assign(dataset=[d for d, _ in names], body_part=[p for _, p in names])
    depths: dict[tuple[str, str, str], set[int]] = {}
    for (composite, codec, train, _), found_depths in found.depths.items():
        depths.setdefault((composite, codec, train), set()).update(found_depths)
    if kept_run is not None:
        counted = pd.read_sql_query(
            f"SELECT dataset, part, codec, train, COUNT(DISTINCT image_id) AS n FROM "
            f"{kept_lines.IMAGES} WHERE run_id = ? AND settings AND ok > 0 AND "
            f"typeof(part) != 'blob' GROUP BY 1, 2, 3, 4", db, params=[kept_run])
    else:
        counted = pd.read_sql_query(
            f"SELECT dataset, body_part, codec, COALESCE(train_dataset, '') AS train, "
            f"COUNT(DISTINCT image_id) AS n FROM results WHERE ({where}) AND status = 'ok' "
            f"AND body_part IS NOT NULL GROUP BY 1, 2, 3, 4", db, params=params)
    images = {(str(d), str(p), str(c), str(t)): int(n) for d, p, c, t, n
              in counted.itertuples(index=False)}
    out, frames = [], []
    for (dataset, part), means in table.groupby(["dataset", "body_part"], sort=True):
        composite = f"{dataset}{BY_SEPARATOR}{part}"
        mine = {(dataset, codec, train): tuple(sorted(ds)) for (d, codec, train), ds
                in depths.items() if d == composite and ds}
        out += _part_lines(dataset, part, curves_from_means(means, mine),
                           lambda c, d=dataset, p=part: images.get(
                               (d, p, c.codec, c.train_dataset or ""), 0))
        kept = means[means["images"] > 0]
        frames.append(kept[SETTING_COLUMNS[2:]].assign(dataset=dataset, body_part=part))
    settings = pd.concat(frames, ignore_index=True)[SETTING_COLUMNS]
    return pd.DataFrame(out, columns=_table_columns()), settings


def body_part_settings(rows: pd.DataFrame) -> pd.DataFrame:
    """Per-setting means for each dataset × body part × codec (the CSV behind the table).

    The means are :func:`~medbench.reports.means.setting_means` over each body part's
    rows, so PSNR leaves out exactly decoded images as everywhere else.
    """
    if not has_body_parts(rows):
        return pd.DataFrame()
    parts = rows[rows["body_part"].notna()]
    frames = []
    for (dataset, part), group in parts.groupby(["dataset", "body_part"], sort=True):
        means = setting_means(group)
        means = means[means["images"] > 0]
        frames.append(means[SETTING_COLUMNS[2:]].assign(dataset=dataset, body_part=part))
    return pd.concat(frames, ignore_index=True)[SETTING_COLUMNS]
