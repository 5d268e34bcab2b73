"""Bjøntegaard deltas of every codec against JPEG 2000, with the ``bjontegaard`` package.

BD-rate is the average difference in rate (%) at equal quality; BD-PSNR the average
difference in PSNR (dB) at equal rate; both over the interval where the two curves
overlap. Negative BD-rate and positive BD-PSNR mean better than the anchor. We also give
BD-rate on the MS-SSIM dB scale (``-10·log10(1 - MS-SSIM)``).

Notes
-----
Interpolation is ``pchip`` (monotone piecewise cubic Hermite) of the curve's upper
envelope, so a curve never overshoots between points. A result rests on the overlap of
the two curves along the integration axis (quality for BD-rate, log-rate for BD-PSNR);
when that overlap is below :data:`MIN_OVERLAP` of their joint range, the value is marked
unreliable, and with no overlap at all it is not computed.

References
----------
G. Bjøntegaard, "Calculation of average PSNR differences between RD-curves",
ITU-T SG16/Q6 VCEG-M33, 2001.
C. Herglotz, M. Kränzler, R. Mons, A. Kaup, "Beyond Bjøntegaard: limits of video
coding performance comparisons", 2022 (the ``bjontegaard`` package).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd

from medbench.reports.curves import ANCHOR, Curve

METHOD = "pchip"
#: Relative overlap below which a BD value is marked unreliable (bjontegaard's default).
MIN_OVERLAP = 0.75
#: Fewest RD points a curve needs for a BD value.
MIN_POINTS = 2

COLUMNS = [
    "dataset", "codec", "train_dataset", "anchor", "points", "anchor_points",
    "bd_rate_psnr", "bd_psnr", "bd_rate_msssim", "quality_overlap", "rate_overlap",
    "msssim_overlap", "psnr_from", "psnr_to", "bpp_from", "bpp_to", "reliable", "note", "method",
]


def overlap(a: np.ndarray, b: np.ndarray) -> float:
    """Length of the intersection of two ranges over the length of their union."""
    lo, hi = max(a.min(), b.min()), min(a.max(), b.max())
    total = max(a.max(), b.max()) - min(a.min(), b.min())
    if total <= 0:
        return 0.0
    return max(hi - lo, 0.0) / total


def bd_pair(
    anchor_rate: np.ndarray,
    anchor_metric: np.ndarray,
    test_rate: np.ndarray,
    test_metric: np.ndarray,
    method: str = METHOD,
) -> tuple[float, float]:
    """(BD-rate in %, BD-metric) of test against anchor; NaN where the curves don't overlap.

    Inputs must be envelopes (strictly increasing in rate and in metric).
    """
    import bjontegaard as bd

    kwargs = {"method": method, "require_matching_points": False, "min_overlap": 0.0}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # overlap is judged by the caller
        rate = float(bd.bd_rate(anchor_rate, anchor_metric, test_rate, test_metric, **kwargs))
        dmetric = float(bd.bd_psnr(anchor_rate, anchor_metric, test_rate, test_metric, **kwargs))
    return rate, dmetric


def bd_against(anchor: Curve, test: Curve, method: str = METHOD) -> dict:
    """One row of the BD table: ``test`` against ``anchor`` on the same dataset."""
    row = {
        "dataset": test.dataset,
        "codec": test.codec,
        "train_dataset": test.train_dataset,
        "anchor": anchor.codec,
        "method": method,
        "bd_rate_psnr": math.nan,
        "bd_psnr": math.nan,
        "bd_rate_msssim": math.nan,
        "quality_overlap": math.nan,
        "rate_overlap": math.nan,
        "msssim_overlap": math.nan,
        "psnr_from": math.nan,
        "psnr_to": math.nan,
        "bpp_from": math.nan,
        "bpp_to": math.nan,
        "reliable": False,
    }
    ar, ap = anchor.envelope("psnr")
    tr, tp = test.envelope("psnr")
    row["points"], row["anchor_points"] = len(tr), len(ar)
    if len(tr) == 0 and test.lossless_bpp is not None:
        row["note"] = "lossless only: no RD curve (its rate is in the summary)"
        return row
    if len(tr) < MIN_POINTS or len(ar) < MIN_POINTS:
        row["note"] = f"too few RD points (need {MIN_POINTS} lossy settings on each curve)"
        return row
    q_overlap = overlap(ap, tp)
    r_overlap = overlap(np.log10(ar), np.log10(tr))
    row["quality_overlap"], row["rate_overlap"] = q_overlap, r_overlap
    # The intervals the deltas average over (empty when the curves do not overlap).
    if q_overlap > 0:
        row["psnr_from"], row["psnr_to"] = max(ap[0], tp[0]), min(ap[-1], tp[-1])
    if r_overlap > 0:
        row["bpp_from"], row["bpp_to"] = max(ar[0], tr[0]), min(ar[-1], tr[-1])
    if q_overlap > 0 or r_overlap > 0:
        rate, dpsnr = bd_pair(ar, ap, tr, tp, method)
        row["bd_rate_psnr"] = rate if q_overlap > 0 else math.nan
        row["bd_psnr"] = dpsnr if r_overlap > 0 else math.nan
    am_r, am = anchor.envelope("ms_ssim_db")
    tm_r, tm = test.envelope("ms_ssim_db")
    if len(am) >= MIN_POINTS and len(tm) >= MIN_POINTS:
        row["msssim_overlap"] = overlap(am, tm)
        if row["msssim_overlap"] > 0:
            row["bd_rate_msssim"] = bd_pair(am_r, am, tm_r, tm, method)[0]
    problems = []
    if q_overlap < MIN_OVERLAP:
        problems.append(f"PSNR ranges overlap {q_overlap:.0%}")
    if r_overlap < MIN_OVERLAP:
        problems.append(f"rate ranges overlap {r_overlap:.0%}")
    row["reliable"] = not problems
    row["note"] = ("unreliable: " + ", ".join(problems)) if problems else ""
    return row


def bd_table(all_curves: list[Curve], anchor_codec: str = ANCHOR,
             method: str = METHOD) -> pd.DataFrame:
    """BD-rate / BD-PSNR of every curve against ``anchor_codec`` on its own dataset."""
    rows = []
    by_dataset: dict[str, list[Curve]] = {}
    for c in all_curves:
        by_dataset.setdefault(c.dataset, []).append(c)
    for dataset, group in by_dataset.items():
        anchors = [c for c in group if c.codec == anchor_codec and not c.train_dataset]
        for c in group:
            if c.codec == anchor_codec and not c.train_dataset:
                continue
            if not anchors:
                rows.append({"dataset": dataset, "codec": c.codec,
                             "train_dataset": c.train_dataset, "anchor": anchor_codec,
                             "method": method, "reliable": False,
                             "note": f"no {anchor_codec} rows on {dataset}"})
                continue
            rows.append(bd_against(anchors[0], c, method))
    return pd.DataFrame(rows, columns=COLUMNS)
