"""The generalization matrix: each learned codec, train dataset × test dataset.

A model trained on A and measured on B is one RD curve (rows with ``dataset == B`` and
``train_dataset == A``). To compare cells at a *matched rate*, every cell of one codec is
read at the same bpp: the geometric middle of the bpp range that all of that codec's
curves cover (PCHIP in log-bpp, no extrapolation). When the curves share no range, the
bpp that most curves reach is used, and cells whose curve does not reach it stay empty.
Each cell also gives the BD-rate against JPEG 2000 on the test dataset (from the BD table).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from medbench.reports.curves import ANCHOR, Curve

COLUMNS = [
    "codec", "train_dataset", "test_dataset", "in_domain", "common_bpp", "psnr_at_bpp",
    "ms_ssim_db_at_bpp", "anchor_psnr_at_bpp", "bd_rate_psnr", "bd_reliable", "points",
    "bpp_min", "bpp_max", "note",
]


def learned_curves(all_curves: list[Curve]) -> dict[str, list[Curve]]:
    """Curves of learned codecs (those with a train dataset), by codec name."""
    out: dict[str, list[Curve]] = {}
    for c in all_curves:
        if c.train_dataset and (c.kind in ("learned", "")):
            out.setdefault(c.codec, []).append(c)
    return out


def common_bpp(group: list[Curve]) -> tuple[float, str]:
    """The bpp at which to compare a codec's curves, and a note on how it was chosen."""
    ranges = [c.envelope("psnr")[0] for c in group]
    ranges = [r for r in ranges if len(r)]
    if not ranges:
        return math.nan, "no lossy points"
    lo = max(r[0] for r in ranges)
    hi = min(r[-1] for r in ranges)
    if lo <= hi:
        return float(math.sqrt(lo * hi)), "middle of the bpp range all curves cover"
    # No common range: the measured bpp that the most curves reach (the middle one of ties).
    candidates = np.unique(np.concatenate(ranges))
    reach = np.array([sum(r[0] <= b <= r[-1] for r in ranges) for b in candidates])
    best = candidates[reach == reach.max()]
    return float(best[len(best) // 2]), "curves share no bpp range: the bpp most curves reach"


def generalization_table(all_curves: list[Curve], bd: pd.DataFrame) -> pd.DataFrame:
    """Long table: one row per learned codec × train dataset × test dataset."""
    anchors = {c.dataset: c for c in all_curves if c.codec == ANCHOR and not c.train_dataset}
    rows = []
    for codec, group in sorted(learned_curves(all_curves).items()):
        bpp, how = common_bpp(group)
        for c in sorted(group, key=lambda x: (x.train_dataset, x.dataset)):
            rate = c.envelope("psnr")[0]
            bd_row = _bd_lookup(bd, c)
            anchor = anchors.get(c.dataset)
            psnr = c.at(bpp, "psnr")
            rows.append(
                {
                    "codec": codec,
                    "train_dataset": c.train_dataset,
                    "test_dataset": c.dataset,
                    # a fine-tuned model reads "jsrt (from nih)": in domain on jsrt
                    "in_domain": c.train_dataset.split(" (from ", 1)[0] == c.dataset,
                    "common_bpp": bpp,
                    "psnr_at_bpp": psnr,
                    "ms_ssim_db_at_bpp": c.at(bpp, "ms_ssim_db"),
                    "anchor_psnr_at_bpp": anchor.at(bpp, "psnr") if anchor else math.nan,
                    "bd_rate_psnr": bd_row.get("bd_rate_psnr", math.nan),
                    "bd_reliable": bd_row.get("reliable", False),
                    "points": len(rate),
                    "bpp_min": float(rate[0]) if len(rate) else math.nan,
                    "bpp_max": float(rate[-1]) if len(rate) else math.nan,
                    "note": how if not math.isnan(psnr) else f"{how}; curve does not reach it",
                }
            )
    return pd.DataFrame(rows, columns=COLUMNS)


def matrix(table: pd.DataFrame, codec: str, value: str = "psnr_at_bpp") -> pd.DataFrame:
    """Train datasets (rows) × test datasets (columns) of ``value`` for one codec."""
    part = table[table["codec"] == codec]
    if part.empty:
        return pd.DataFrame()
    grid = part.pivot_table(index="train_dataset", columns="test_dataset", values=value,
                            aggfunc="first", dropna=False)
    grid.index.name, grid.columns.name = "train \\ test", None
    return grid


def _bd_lookup(bd: pd.DataFrame, c: Curve) -> dict:
    if bd is None or bd.empty:
        return {}
    hit = bd[(bd["dataset"] == c.dataset) & (bd["codec"] == c.codec)
             & (bd["train_dataset"] == c.train_dataset)]
    return hit.iloc[0].to_dict() if len(hit) else {}

