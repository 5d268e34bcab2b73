"""The end-of-run table: one line per dataset × codec × setting."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

GROUP = ["dataset", "codec", "setting"]


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
        out.append(
            {
                **dict(zip(GROUP, key)),
                "rank": group["setting_rank"].min(),
                "images": int(len(ok)),
                "errors": int((group["status"] == "error").sum()),
                "unsupported": int((group["status"] == "unsupported").sum()),
                "bpp": _mean(ok["bpp"]),
                "psnr": _mean(ok["psnr"]),
                "ssim": _mean(ok["ssim"]),
                "ms_ssim": _mean(ok["ms_ssim"]),
                "max_abs_error": ok["max_abs_error"].max() if len(ok) else math.nan,
                "encode_ms": _mean(ok["encode_ms"]),
                "decode_ms": _mean(ok["decode_ms"]),
            }
        )
    table = pd.DataFrame(out).sort_values(["dataset", "codec", "rank"], kind="stable")
    return table.drop(columns="rank").reset_index(drop=True)


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
