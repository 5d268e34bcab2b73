"""The end-of-run table: one line per dataset × codec × setting, with 95 % intervals.

Confidence intervals are Student-t intervals of the mean over images
(``mean ± t(0.975, n-1) · s / sqrt(n)``): images are the sampling unit, and with the
handful of images of a smoke run a bootstrap would be unstable. A column ``<metric>_ci``
holds the half-width; it is NaN for fewer than two images or an infinite mean.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

GROUP = ["dataset", "codec", "setting"]
#: Metrics averaged per group; each also gets a ``<name>_ci`` half-width column.
METRICS = ("bpp", "psnr", "ssim", "ms_ssim", "encode_ms", "decode_ms")
CONFIDENCE = 0.95


def summarize(rows: pd.DataFrame) -> pd.DataFrame:
    """Means over ``ok`` rows per dataset × codec × setting, with image and error counts.

    Settings keep their codec's order (low to high rate). PSNR is averaged in dB; a
    setting whose every image decoded exactly has PSNR ``inf``.
    """
    if rows.empty:
        return pd.DataFrame(columns=GROUP + ["images", "errors", "unsupported"])
    rows = rows.copy()
    if "setting_rank" not in rows:
        rows["setting_rank"] = 0
    out = []
    for key, group in rows.groupby(GROUP, sort=False):
        ok = group[group["status"] == "ok"]
        line = {
            **dict(zip(GROUP, key)),
            "rank": group["setting_rank"].min(),
            "train_dataset": _first(group, "train_dataset"),
            "codec_kind": _first(group, "codec_kind"),
            "images": int(len(ok)),
            "errors": int((group["status"] == "error").sum()),
            "unsupported": int((group["status"] == "unsupported").sum()),
            "max_abs_error": ok["max_abs_error"].max() if len(ok) else math.nan,
        }
        for name in METRICS:
            line[name] = _mean(ok[name])
            line[f"{name}_ci"] = ci_halfwidth(ok[name])
        out.append(line)
    table = pd.DataFrame(out).sort_values(["dataset", "codec", "rank"], kind="stable")
    return table.drop(columns="rank").reset_index(drop=True)


def _first(group: pd.DataFrame, column: str):
    """The first non-null value of ``column`` (None when absent or all null)."""
    if column not in group:
        return None
    values = group[column].dropna()
    return values.iloc[0] if len(values) else None


def ci_halfwidth(values: pd.Series | np.ndarray, confidence: float = CONFIDENCE) -> float:
    """Half-width of the Student-t confidence interval of the mean of ``values``.

    NaN values are ignored; NaN when fewer than two finite values remain or when any
    value is infinite (a lossless image's PSNR makes the mean infinite).
    """
    arr = pd.to_numeric(pd.Series(np.asarray(values).ravel()), errors="coerce").dropna()
    arr = arr.to_numpy(dtype=float)
    if len(arr) < 2 or not np.isfinite(arr).all():
        return math.nan
    sem = float(np.std(arr, ddof=1)) / math.sqrt(len(arr))
    return float(stats.t.ppf(0.5 + confidence / 2, len(arr) - 1) * sem)


def _mean(values: pd.Series) -> float:
    values = pd.to_numeric(values, errors="coerce").dropna()
    if values.empty:
        return math.nan
    return float(np.mean(values.to_numpy(dtype=float)))


def format_table(table: pd.DataFrame) -> str:
    """A fixed-width text table for the terminal."""
    if table.empty:
        return "(no results)"
    cols = [
        ("dataset", "dataset", "{}"),
        ("codec", "codec", "{}"),
        ("setting", "setting", "{}"),
        ("images", "n", "{:d}"),
        ("errors", "err", "{:d}"),
        ("bpp", "bpp", "{:.3f}"),
        ("psnr", "PSNR dB", "{:.2f}"),
        ("ms_ssim", "MS-SSIM", "{:.4f}"),
        ("encode_ms", "enc ms", "{:.1f}"),
        ("decode_ms", "dec ms", "{:.1f}"),
    ]
    cells = [[head for _, head, _ in cols]]
    for _, row in table.iterrows():
        line = []
        for key, _, fmt in cols:
            value = row[key]
            if isinstance(value, float) and math.isnan(value):
                line.append("-")
            elif isinstance(value, float) and math.isinf(value):
                line.append("inf")
            else:
                line.append(fmt.format(int(value) if fmt == "{:d}" else value))
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
