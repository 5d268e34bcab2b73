"""Per-setting means of result rows: the one place every report table averages images.

The summary, the RD curves, Table 1, the body-part breakdown and ``medbench compare`` all
read their per-setting numbers from :func:`setting_means`, so they agree on what "the
PSNR of a setting" is, in particular when some images decode exactly (PSNR ``inf``).

Confidence intervals are Student-t intervals of the mean over images
(``mean ± t(0.975, n-1) · s / sqrt(n)``): images are the sampling unit, and with the
handful of images of a smoke run a bootstrap would be unstable.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from medbench.benchmark.metrics import psnr_from_mse

#: One line of :func:`setting_means` per value of these columns.
KEYS = ["dataset", "codec", "train_dataset", "setting"]
#: Metrics averaged per setting; each also gets a ``<name>_ci`` half-width column.
METRICS = ("bpp", "psnr", "ssim", "ms_ssim", "encode_ms", "decode_ms")
CONFIDENCE = 0.95
COLUMNS = [
    *KEYS, "codec_kind", "setting_rank", "images", "errors", "unsupported", "exact_images",
    "max_abs_error", *[c for m in METRICS for c in (m, f"{m}_ci")], "psnr_pooled", "nmse",
]


def setting_means(rows: pd.DataFrame) -> pd.DataFrame:
    """One line per dataset × codec × train dataset × setting: counts, means and intervals.

    Parameters
    ----------
    rows : pandas.DataFrame
        Result rows (the ``results.csv`` columns). Needs ``dataset``, ``codec``,
        ``setting`` and ``status``; ``train_dataset``, ``setting_rank``, ``mse``,
        ``bit_depth`` and the metric columns are used when present.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`COLUMNS`, one line per setting that has any row (also when none
        is ``ok``), ordered by dataset, codec, train dataset and ``setting_rank`` (low to
        high rate; ties keep the order of ``rows``). ``train_dataset`` is None for
        classical codecs.

        - ``images``, ``errors``, ``unsupported``: rows of each status.
        - ``bpp``, ``ssim``, ``ms_ssim``, ``encode_ms``, ``decode_ms``: means over the
          ``ok`` images (NaN values skipped), ``max_abs_error`` their maximum.
        - ``psnr``: the mean over the ``ok`` images whose PSNR is finite;
          ``exact_images`` counts those that decoded exactly (PSNR ``inf``) and are left
          out of it. ``psnr`` is ``inf`` when every image decoded exactly.
        - ``nmse``: the pooled normalised MSE, the mean over all ``ok`` images of
          ``mse / peak²`` with ``peak = 2**bit_depth - 1`` of each image's own bit depth
          (so settings that mix bit depths pool errors on one [0, 1] scale, the scale
          Table 1 of the seed paper uses); NaN if any ``ok`` image lacks ``mse`` or
          ``bit_depth``.
        - ``psnr_pooled``: the PSNR of ``nmse`` with peak 1. Exact images count with MSE
          0, so it is finite unless every image decoded exactly (then ``inf``).
        - ``<metric>_ci``: the Student-t half-width (:func:`ci_halfwidth`) over the same
          values the mean used (for ``psnr``: the finite ones).
    """
    if rows.empty:
        return pd.DataFrame(columns=COLUMNS)
    rows = rows.copy()
    for column in ("train_dataset", "setting_rank", "codec_kind"):
        if column not in rows:
            rows[column] = None
    out = []
    for key, group in rows.groupby(KEYS, sort=False, dropna=False):
        out.append({**dict(zip(KEYS, key)), **_line(group)})
    table = pd.DataFrame(out, columns=COLUMNS)
    table["train_dataset"] = table["train_dataset"].map(lambda v: None if pd.isna(v) else v)
    order = table.assign(train_key=table["train_dataset"].fillna(""))
    order = order.sort_values(["dataset", "codec", "train_key", "setting_rank"], kind="stable")
    return table.loc[order.index].reset_index(drop=True)


def _line(group: pd.DataFrame) -> dict:
    """The counts and means of one setting's rows."""
    ok = group[group["status"] == "ok"]
    ranks = pd.to_numeric(group["setting_rank"], errors="coerce").dropna()
    kinds = group["codec_kind"].dropna()
    line = {
        "codec_kind": kinds.iloc[0] if len(kinds) else None,
        "setting_rank": int(ranks.min()) if len(ranks) else 0,
        "images": int(len(ok)),
        "errors": int((group["status"] == "error").sum()),
        "unsupported": int((group["status"] == "unsupported").sum()),
        "max_abs_error": _numbers(ok, "max_abs_error").max() if len(ok) else math.nan,
    }
    psnr = _numbers(ok, "psnr")
    exact = psnr == math.inf
    line["exact_images"] = int(exact.sum())
    for name in METRICS:
        values = psnr[~exact] if name == "psnr" else _numbers(ok, name)
        line[name] = _mean(values)
        line[f"{name}_ci"] = ci_halfwidth(values)
    if len(psnr) and exact.all():  # every image exact: no finite value to average
        line["psnr"] = math.inf
    line["nmse"] = _nmse(ok)
    line["psnr_pooled"] = psnr_from_mse(line["nmse"], 1.0)
    return line


def _numbers(frame: pd.DataFrame, column: str) -> pd.Series:
    """``column`` as floats, NaN where absent or not a number."""
    if column not in frame:
        return pd.Series(math.nan, index=frame.index, dtype=float)
    return pd.to_numeric(frame[column], errors="coerce").astype(float)


def _mean(values: pd.Series) -> float:
    values = values.dropna()
    return float(np.mean(values.to_numpy(dtype=float))) if len(values) else math.nan


def _nmse(ok: pd.DataFrame) -> float:
    """Mean of ``mse / peak²`` over ``ok`` images; NaN when any of them lacks a value."""
    if ok.empty:
        return math.nan
    peak = 2.0 ** _numbers(ok, "bit_depth") - 1
    normalised = _numbers(ok, "mse") / peak**2
    return float(normalised.mean()) if normalised.notna().all() else math.nan


def ci_halfwidth(values: pd.Series | np.ndarray, confidence: float = CONFIDENCE) -> float:
    """Half-width of the Student-t confidence interval of the mean of ``values``.

    NaN values are ignored; NaN when fewer than two values remain or when any value is
    infinite (the mean is then infinite too).
    """
    arr = pd.to_numeric(pd.Series(np.asarray(values).ravel()), errors="coerce").dropna()
    arr = arr.to_numpy(dtype=float)
    if len(arr) < 2 or not np.isfinite(arr).all():
        return math.nan
    sem = float(np.std(arr, ddof=1)) / math.sqrt(len(arr))
    return float(stats.t.ppf(0.5 + confidence / 2, len(arr) - 1) * sem)
