"""Per-body-part breakdown (MXID's 18 body parts, ``sample``'s chest and tibia).

For each dataset × body part × RD curve: the number of images, PSNR and MS-SSIM (dB) read
off that body part's own curve at the clinical ratios' bpp (10:1 and 30:1 for the images'
bit depth), and BD-rate against JPEG 2000 on the same body part's images.
"""

from __future__ import annotations

import math

import pandas as pd

from medbench.reports.bd import bd_against
from medbench.reports.curves import ANCHOR, CLINICAL_RATIOS, clinical_bpp, curves
from medbench.reports.means import setting_means

COLUMNS = ["dataset", "body_part", "codec", "train_dataset", "images", "bit_depth"]
#: The columns of ``body_part_settings.csv``.
SETTING_COLUMNS = ["dataset", "body_part", "codec", "train_dataset", "setting", "images", "bpp",
                   "psnr", "exact_images", "psnr_pooled", "ms_ssim"]


def has_body_parts(rows: pd.DataFrame) -> bool:
    return "body_part" in rows and rows["body_part"].notna().any()


def body_part_table(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per dataset × body part × curve (empty when no row has a body part)."""
    ratio_cols = [f"psnr_at_{r}to1" for r in CLINICAL_RATIOS] + [
        f"ms_ssim_db_at_{r}to1" for r in CLINICAL_RATIOS
    ]
    columns = COLUMNS + ratio_cols + ["bd_rate_psnr", "bd_reliable"]
    if not has_body_parts(rows):
        return pd.DataFrame(columns=columns)
    part_rows = rows[rows["body_part"].notna()]
    out = []
    for (dataset, part), group in part_rows.groupby(["dataset", "body_part"], sort=True):
        part_curves = curves(group)
        anchor = next((c for c in part_curves if c.codec == ANCHOR and not c.train_dataset),
                      None)
        for c in part_curves:
            images = group[(group["codec"] == c.codec) & (group["status"] == "ok")]
            if c.train_dataset:
                images = images[images["train_dataset"] == c.train_dataset]
            depth = c.bit_depths[0] if len(c.bit_depths) == 1 else None
            row = {"dataset": dataset, "body_part": part, "codec": c.codec,
                   "train_dataset": c.train_dataset, "images": images["image_id"].nunique(),
                   "bit_depth": depth}
            for r in CLINICAL_RATIOS:
                bpp = clinical_bpp(depth, r) if depth else math.nan
                row[f"psnr_at_{r}to1"] = c.at(bpp, "psnr")
                row[f"ms_ssim_db_at_{r}to1"] = c.at(bpp, "ms_ssim_db")
            if anchor is not None and c is not anchor:
                bd = bd_against(anchor, c)
                row["bd_rate_psnr"], row["bd_reliable"] = bd["bd_rate_psnr"], bd["reliable"]
            out.append(row)
    return pd.DataFrame(out, columns=columns)


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
